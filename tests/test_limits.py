"""Attempt limits under attack: per-challenge attempts, per-user back-off and lock-out.

Every test checks the counters where they live, in the database (``Credential.failures``,
``Credential.blocked_until``, ``Challenge.attempts``), not only what the HTTP answers say.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial
from typing import TYPE_CHECKING
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from flask_ucloud_2fa import LockedOut
from flask_ucloud_2fa import TooManyAttempts
from flask_ucloud_2fa.config import DEFAULTS
from flask_ucloud_2fa.limits import Limits

from helpers import ERROR_KEYS
from helpers import TOKEN_KEYS
from helpers import FakeClock
from helpers import add_user
from helpers import answer
from helpers import assert_blocked
from helpers import assert_error
from helpers import bearer
from helpers import begin_login
from helpers import challenge_attempts
from helpers import challenge_count
from helpers import cli
from helpers import code_for
from helpers import connect
from helpers import credential_value
from helpers import db_of
from helpers import login
from helpers import login_challenge
from helpers import race
from helpers import settings_of
from helpers import two_factor_of
from helpers import utc
from helpers import wrong_code

if TYPE_CHECKING:
    # Imported for annotations only: a module-level Test* class would be collected by pytest.
    from helpers import TestUser

DEFAULT_LIMITS = {
    "UCLOUD_2FA_MAX_ATTEMPTS": 5,
    "UCLOUD_2FA_BACKOFF_AFTER": 5,
    "UCLOUD_2FA_BACKOFF_MAX": 60,
    "UCLOUD_2FA_LOCKOUT_AFTER": 100,
    "UCLOUD_2FA_LOCKOUT_DURATION": 3600,
}
THREADS = 8
ROUNDS = 3


# -- helpers ----------------------------------------------------------------------------------


def limits_state(app: Flask, user_id: int) -> tuple[int, datetime | None] | None:
    """``(failures, blocked_until)`` of the user's credential, or ``None`` without one."""
    credential = two_factor_of(app).models.Credential
    with app.app_context():
        row = (
            db_of(app)
            .session.execute(
                select(credential.failures, credential.blocked_until).where(
                    credential.user_id == user_id
                )
            )
            .one_or_none()
        )
        return None if row is None else (row.failures, row.blocked_until)


def last_used_step(app: Flask, user_id: int) -> int | None:
    step: int | None = credential_value(app, user_id, "last_used_step")
    return step


def fail_once(
    app: Flask, client: FlaskClient, user: TestUser, secret: str, clock: FakeClock
) -> Any:
    """One wrong answer to a fresh login challenge, counted: a 403."""
    challenge_id = login_challenge(app, user.id)
    response = answer(client, challenge_id, wrong_code(secret, clock))
    assert_error(response, 403, "INVALID_CODE")
    assert response.json["remainingAttempts"] == 4
    assert challenge_attempts(app, challenge_id) == 1
    return response


def fail_and_wait(
    app: Flask, client: FlaskClient, user: TestUser, secret: str, clock: FakeClock, times: int
) -> None:
    """``times`` counted wrong answers on fresh login challenges, each after the back-off."""
    state = limits_state(app, user.id)
    assert state is not None
    for _ in range(times):
        failures = state[0] + 1
        response = fail_once(app, client, user, secret, clock)
        state = limits_state(app, user.id)
        assert state is not None and state[0] == failures
        clock.advance(response.json.get("retryAfter", 0))


# -- the configuration and the back-off table -------------------------------------------------


def test_default_limits(app: Flask) -> None:
    for key, value in DEFAULT_LIMITS.items():
        assert DEFAULTS[key] == value
        assert app.config[key] == value
    expected = Limits(
        max_attempts=5, backoff_after=5, backoff_max=60, lockout_after=100, lockout_duration=3600
    )
    assert Limits() == expected
    assert settings_of(app).limits == expected


@pytest.mark.parametrize(
    ("failures", "delay"),
    [
        (0, 0),
        (1, 0),
        (4, 0),
        (5, 1),
        (6, 2),
        (7, 4),
        (8, 8),
        (9, 16),
        (10, 32),
        (11, 60),
        (12, 60),
        (50, 60),
        (99, 60),
        (100, 60),
        (10_000, 60),
    ],
)
def test_default_delay_table(failures: int, delay: int) -> None:
    assert Limits().delay(failures) == delay


@pytest.mark.parametrize(
    ("failures", "delay"),
    [
        (0, 0),
        (1, 0),
        (2, 1),
        (3, 2),
        (4, 4),
        (5, 8),
        (6, 8),
        (9, 8),
        (10, 8),
        (11, 8),
    ],
)
def test_custom_delay_table(failures: int, delay: int) -> None:
    """The back-off only: the lock-out is a budget of its own (below)."""
    limits = Limits(backoff_after=2, backoff_max=8, lockout_after=10, lockout_duration=600)
    assert limits.delay(failures) == delay


def test_the_lockout_budget_admits_answers_while_fewer_than_lockout_after_are_unforgiven() -> None:
    limits = Limits(lockout_after=10, lockout_duration=600)
    # Ten failures at once are forgiven 6000 s later; one more is admitted once one of them is.
    assert limits.horizon(1000) == 1000 + 9 * 600
    assert 1000 + 10 * 600 > limits.horizon(1000)
    assert 1000 + 10 * 600 <= limits.horizon(1600)


# -- brute force against one challenge --------------------------------------------------------


def test_brute_force_on_one_login_challenge_burns_it_after_five(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    challenge_id = login_challenge(app, user.id)
    wrong = wrong_code(secret, clock)
    for attempt, remaining in enumerate([4, 3, 2, 1, 0], start=1):
        response = answer(client, challenge_id, wrong)
        assert_error(response, 403, "INVALID_CODE")
        assert response.json["remainingAttempts"] == remaining
        assert wrong not in response.get_data(as_text=True)
        assert challenge_attempts(app, challenge_id) == (attempt if remaining else None)
        # The fifth consecutive failure of the user also starts the back-off, one second.
        blocked_until = utc(clock, 1) if attempt == 5 else None
        assert limits_state(app, user.id) == (attempt, blocked_until)
        assert response.json.get("retryAfter") == (1 if attempt == 5 else None)

    clock.advance(1)
    gone = answer(client, challenge_id, code_for(secret, clock))
    assert_error(gone, 404, "CHALLENGE_NOT_FOUND")
    assert set(gone.json) == ERROR_KEYS
    assert challenge_attempts(app, challenge_id) is None
    assert limits_state(app, user.id) == (5, utc(clock))


def test_setup_challenge_counts_failures_and_burns_after_five(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    setup = client.post("/auth/2fa", headers=user.headers).json
    challenge_id, secret = setup["challengeId"], setup["secret"]
    wrong = wrong_code(secret, clock)
    for attempt, remaining in enumerate([4, 3, 2, 1, 0], start=1):
        response = answer(client, challenge_id, wrong, user.headers)
        assert_error(response, 403, "INVALID_CODE")
        assert response.json["remainingAttempts"] == remaining
        assert challenge_attempts(app, challenge_id) == (attempt if remaining else None)
        assert limits_state(app, user.id) == (attempt, utc(clock, 1) if attempt == 5 else None)

    clock.advance(1)
    gone = answer(client, challenge_id, code_for(secret, clock), user.headers)
    assert_error(gone, 404, "CHALLENGE_NOT_FOUND")
    assert limits_state(app, user.id) == (5, utc(clock))
    assert client.get("/auth/2fa/status", headers=user.headers).json == {"connected": False}

    # A new setup is a new secret: its counters start over, and it connects.
    fresh = client.post("/auth/2fa", headers=user.headers).json
    assert limits_state(app, user.id) == (0, None)
    connected = answer(
        client, fresh["challengeId"], code_for(fresh["secret"], clock), user.headers
    )
    assert connected.status_code == 200, connected.json
    assert client.get("/auth/2fa/status", headers=user.headers).json == {"connected": True}


# -- brute force across challenges: back-off --------------------------------------------------


@pytest.mark.app_config(UCLOUD_2FA_BACKOFF_AFTER=2, UCLOUD_2FA_BACKOFF_MAX=8)
def test_failures_across_login_challenges_back_off_growing_and_capped(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    spent_step = last_used_step(app, user.id)
    # The wait each consecutive failure starts: none, then doubling from 1 s, capped at 8 s.
    for failures, wait in enumerate([None, 1, 2, 4, 8, 8, 8], start=1):
        challenge_id = login_challenge(app, user.id)
        wrong = wrong_code(secret, clock)
        response = answer(client, challenge_id, wrong)
        assert_error(response, 403, "INVALID_CODE")
        assert response.json["remainingAttempts"] == 4
        assert response.json.get("retryAfter") == wait
        assert challenge_attempts(app, challenge_id) == 1
        if wait is None:
            assert limits_state(app, user.id) == (failures, None)
            continue
        blocked_until = utc(clock, wait)
        assert limits_state(app, user.id) == (failures, blocked_until)

        # While backing off, nothing is looked at: neither the right code on a fresh
        # challenge nor a guess on the old one; neither is counted anywhere.
        fresh = login_challenge(app, user.id)
        right = code_for(secret, clock)
        assert_blocked(answer(client, fresh, right), "TOO_MANY_ATTEMPTS", wait, right, secret)
        assert_blocked(answer(client, challenge_id, wrong), "TOO_MANY_ATTEMPTS", wait, wrong)
        assert limits_state(app, user.id) == (failures, blocked_until)
        assert challenge_attempts(app, fresh) == 0
        assert challenge_attempts(app, challenge_id) == 1
        # The refused right code was not spent either.
        assert last_used_step(app, user.id) == spent_step

        if wait > 1:
            clock.advance(wait - 1)
            blocked = answer(client, fresh, code_for(secret, clock))
            assert_blocked(blocked, "TOO_MANY_ATTEMPTS", 1)
            assert limits_state(app, user.id) == (failures, blocked_until)
            clock.advance(1)
        else:
            clock.advance(wait)

    # The wait is over: answers are looked at again, and the right one logs in.
    assert limits_state(app, user.id) == (7, utc(clock))
    response = answer(client, login_challenge(app, user.id), code_for(secret, clock))
    assert response.status_code == 200, response.json
    assert set(response.json) == TOKEN_KEYS
    assert limits_state(app, user.id) == (0, None)


def test_right_answer_resets_failures_and_back_off(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    fail_and_wait(app, client, user, secret, clock, 7)
    state = limits_state(app, user.id)
    assert state is not None and state[0] == 7 and state[1] is not None

    # A challenge with failed attempts of its own is answered right: all counters clear.
    challenge_id = login_challenge(app, user.id)
    fail = answer(client, challenge_id, wrong_code(secret, clock))
    assert_error(fail, 403, "INVALID_CODE")
    assert fail.json["retryAfter"] == 8
    clock.advance(8)
    response = answer(client, challenge_id, code_for(secret, clock))
    assert response.status_code == 200, response.json
    assert set(response.json) == TOKEN_KEYS
    assert limits_state(app, user.id) == (0, None)
    assert challenge_attempts(app, challenge_id) is None

    # The count starts over: four more failures before any back-off.
    clock.advance(30)
    for failures in range(1, 5):
        response = fail_once(app, client, user, secret, clock)
        assert "retryAfter" not in response.json
        assert limits_state(app, user.id) == (failures, None)
    assert fail_once(app, client, user, secret, clock).json["retryAfter"] == 1


def test_blocked_answer_body_is_ucloud_error_shape_with_retry_after(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    fail_and_wait(app, client, user, secret, clock, 4)
    fail_once(app, client, user, secret, clock)
    challenge_id = login_challenge(app, user.id)
    right = code_for(secret, clock)

    response = answer(client, challenge_id, right)

    assert response.status_code == 429
    assert response.mimetype == "application/json"
    assert response.json == {
        "statusCode": 429,
        "why": TooManyAttempts.why,
        "errorCode": "TOO_MANY_ATTEMPTS",
        "retryAfter": 1,
    }
    assert response.headers["Retry-After"] == "1"
    assert response.headers["Cache-Control"] == "no-store"
    text = response.get_data(as_text=True)
    assert right not in text
    assert secret not in text
    assert challenge_id not in text


# -- lock-out ---------------------------------------------------------------------------------


@pytest.mark.app_config(
    UCLOUD_2FA_LOCKOUT_AFTER=10, UCLOUD_2FA_BACKOFF_MAX=5, UCLOUD_2FA_LOCKOUT_DURATION=600
)
def test_lockout_after_the_budget_of_failures_until_one_is_forgiven(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    start = int(clock.now)
    fail_and_wait(app, client, user, secret, clock, 9)
    assert limits_state(app, user.id) == (9, utc(clock))

    tenth = fail_once(app, client, user, secret, clock)
    # Each failure is forgiven 600 s after the one before, from the first: the tenth spends the
    # budget until the first is forgiven.
    wait = 600 - (int(clock.now) - start)
    assert tenth.json["retryAfter"] == wait
    assert limits_state(app, user.id) == (10, utc(clock, 5))  # the back-off is shorter

    challenge_id = login_challenge(app, user.id)
    right = code_for(secret, clock)
    locked = answer(client, challenge_id, right)
    assert_blocked(locked, "LOCKED_OUT", wait, right, secret)
    assert locked.json["why"] == LockedOut.why
    assert_blocked(
        answer(client, challenge_id, wrong_code(secret, clock)), "LOCKED_OUT", wait, secret
    )
    assert limits_state(app, user.id) == (10, utc(clock, 5))
    assert challenge_attempts(app, challenge_id) == 0

    clock.advance(wait - 1)
    fresh = login_challenge(app, user.id)
    assert_blocked(answer(client, fresh, code_for(secret, clock)), "LOCKED_OUT", 1)

    clock.advance(1)
    response = answer(client, fresh, code_for(secret, clock))
    assert response.status_code == 200, response.json
    assert set(response.json) == TOKEN_KEYS
    assert limits_state(app, user.id) == (0, None)

    # The right answer cleared the back-off but forgave nothing: the next wrong answer spends
    # the budget again, for a whole LOCKOUT_DURATION.
    again = fail_once(app, client, user, secret, clock)
    assert again.json["retryAfter"] == 600
    assert_blocked(
        answer(client, login_challenge(app, user.id), code_for(secret, clock, 1)),
        "LOCKED_OUT",
        600,
    )


@pytest.mark.app_config(
    UCLOUD_2FA_LOCKOUT_AFTER=10, UCLOUD_2FA_BACKOFF_MAX=5, UCLOUD_2FA_LOCKOUT_DURATION=600
)
def test_admin_reset_clears_a_lockout(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    start = int(clock.now)
    fail_and_wait(app, client, user, secret, clock, 9)
    wait = 600 - (int(clock.now) - start)
    assert fail_once(app, client, user, secret, clock).json["retryAfter"] == wait
    pending = login_challenge(app, user.id)
    assert_blocked(answer(client, pending, code_for(secret, clock)), "LOCKED_OUT", wait)

    result = cli(app, "reset", str(user.id), "--yes")

    assert result.exit_code == 0, result.output
    assert f"Reset 2FA of user '{user.id}'" in result.output
    assert limits_state(app, user.id) is None
    assert challenge_count(app, user.id) == 0
    assert_error(answer(client, pending, code_for(secret, clock)), 404, "CHALLENGE_NOT_FOUND")
    # The password alone logs in now, at once: no credential, no back-off left.
    logged_in = login(client, user)
    assert logged_in.status_code == 200, logged_in.json
    assert set(logged_in.json) == TOKEN_KEYS
    headers = bearer(logged_in.json["accessToken"])
    assert client.get("/auth/2fa/status", headers=headers).json == {"connected": False}
    assert limits_state(app, user.id) is None


# -- lock-out abuse ---------------------------------------------------------------------------


def test_attacker_failing_victims_challenges_delays_victim_at_most_backoff_max(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    """Failing someone else's login challenges costs them at most ``BACKOFF_MAX`` seconds.

    The trade-off: failures are counted per user, not per challenge or client, because an
    attacker who knows a password can open as many login challenges as they like; counting per
    challenge would give them ``MAX_ATTEMPTS`` guesses per password login. So the attacker's
    failures do slow the victim down too, but only by the current back-off, at most
    ``UCLOUD_2FA_BACKOFF_MAX`` (60 s by default), and answers sent while backing off are
    refused without being counted, so hammering does not make the wait longer. The victim's
    fresh login challenge survives the wait, and the right code then logs in and clears the
    count. Only after ``UCLOUD_2FA_LOCKOUT_AFTER`` (100) consecutive failures, with no right
    answer in between, is the user locked out (NIST SP 800-63B 5.2.2); reaching that takes the
    attacker the sum of all back-offs (about an hour and a half with the defaults) and the
    password, and an administrator's ``flask ucloud-2fa reset`` ends it.
    """
    user, secret = connected_user
    attacker = app.test_client()
    victim = app.test_client()
    backoff_max = DEFAULT_LIMITS["UCLOUD_2FA_BACKOFF_MAX"]

    for failures in range(1, 31):
        target = login_challenge(app, user.id)
        guess = wrong_code(secret, clock)
        response = answer(attacker, target, guess)
        assert_error(response, 403, "INVALID_CODE")
        wait = response.json.get("retryAfter", 0)
        assert wait <= backoff_max
        state = limits_state(app, user.id)
        assert state is not None and state[0] == failures
        if wait:
            # Hammering while backing off is refused and changes nothing.
            for _ in range(3):
                assert_blocked(answer(attacker, target, guess), "TOO_MANY_ATTEMPTS", wait)
            assert limits_state(app, user.id) == state
            assert challenge_attempts(app, target) == 1
        if failures < 30:
            clock.advance(wait)
    assert limits_state(app, user.id) == (30, utc(clock, backoff_max))

    # The victim logs in right after the attacker's latest failure: the worst case.
    challenge_id = begin_login(victim, user)
    blocked = answer(victim, challenge_id, code_for(secret, clock))
    assert_blocked(blocked, "TOO_MANY_ATTEMPTS", backoff_max)
    assert challenge_attempts(app, challenge_id) == 0

    clock.advance(blocked.json["retryAfter"])
    response = answer(victim, challenge_id, code_for(secret, clock))
    assert response.status_code == 200, response.json
    assert set(response.json) == TOKEN_KEYS
    assert limits_state(app, user.id) == (0, None)


# -- races on PostgreSQL ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "backoff_after", [THREADS + 1, DEFAULT_LIMITS["UCLOUD_2FA_BACKOFF_AFTER"]]
)
def test_parallel_wrong_answers_on_many_challenges_are_all_counted(
    make_pg_app: Callable[..., Flask], clock: FakeClock, backoff_after: int
) -> None:
    app = make_pg_app({"UCLOUD_2FA_BACKOFF_AFTER": backoff_after})
    limits = Limits(backoff_after=backoff_after)
    racer = add_user(app)
    user_id = racer.id
    secret = connect(app.test_client(), racer.headers, clock)
    for _ in range(ROUNDS):
        challenge_ids = [login_challenge(app, user_id) for _ in range(THREADS)]
        wrong = wrong_code(secret, clock)

        outcomes = race(
            app,
            [
                partial(answer, challenge_id=challenge_id, code=wrong)
                for challenge_id in challenge_ids
            ],
        )

        statuses = [outcome.status for outcome in outcomes]
        assert set(statuses) <= {403, 429}, outcomes
        state = limits_state(app, user_id)
        assert state is not None
        failures, blocked_until = state
        # Every answer that was looked at is counted once; one refused while backing off is not.
        assert failures == statuses.count(403)
        if backoff_after > THREADS:
            assert statuses == [403] * THREADS
            assert failures == THREADS
            assert blocked_until is None
        else:
            assert failures >= backoff_after
            # The longest back-off of all the racing failures wins.
            assert blocked_until == utc(clock, limits.delay(failures))
        for challenge_id, outcome in zip(challenge_ids, outcomes, strict=True):
            if outcome.status == 403:
                assert outcome.body["errorCode"] == "INVALID_CODE"
                assert outcome.body["remainingAttempts"] == 4
                assert challenge_attempts(app, challenge_id) == 1
            else:
                assert outcome.body["errorCode"] == "TOO_MANY_ATTEMPTS"
                assert challenge_attempts(app, challenge_id) == 0

        # The user waits out any back-off and logs in, which clears the count for the next round.
        clock.advance(30)
        response = answer(
            app.test_client(), login_challenge(app, user_id), code_for(secret, clock)
        )
        assert response.status_code == 200, response.json
        assert limits_state(app, user_id) == (0, None)
        clock.advance(30)
