"""``POST /auth/2fa/challenge``: codes, skew, bad input, attempt limits, expiry and replay."""

from __future__ import annotations

import secrets
from collections.abc import Callable
from datetime import datetime
from datetime import timezone
from typing import TYPE_CHECKING
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from flask_ucloud_2fa import TwoFactor
from flask_ucloud_2fa.statements import EXPIRED_BATCH

from helpers import ERROR_KEYS
from helpers import FakeClock
from helpers import answer
from helpers import assert_error
from helpers import assert_no_secrets
from helpers import begin_login
from helpers import challenge_attempts
from helpers import code_for
from helpers import connect
from helpers import create_setup
from helpers import db_of
from helpers import decrypt_secret
from helpers import login_challenge
from helpers import status
from helpers import two_factor_of
from helpers import wrong_code

if TYPE_CHECKING:
    # Imported for annotations only: a module-level Test* class would be collected by pytest.
    from helpers import TestUser


def credential_state(app: Flask, user: TestUser) -> dict[str, Any] | None:
    credential = two_factor_of(app).models.Credential
    with app.app_context():
        row = (
            db_of(app)
            .session.execute(select(credential).where(credential.user_id == user.id))
            .scalar_one_or_none()
        )
        if row is None:
            return None
        return {
            "secret": decrypt_secret(app, row.encrypted_secret),
            "connected": row.connected,
            "connected_at": row.connected_at,
            "last_used_step": row.last_used_step,
        }


# -- success ----------------------------------------------------------------------------------


def test_right_code_connects(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    created = create_setup(client, user.headers)
    response = answer(
        client, created["challengeId"], code_for(created["secret"], clock), user.headers
    )
    assert response.status_code == 200
    assert response.json == {}
    assert response.headers["Cache-Control"] == "no-store"
    assert status(client, user) == {"connected": True}
    state = credential_state(app, user)
    assert state is not None and state["connected"] is True
    assert state["connected_at"] is not None
    assert challenge_attempts(app, created["challengeId"]) is None


@pytest.mark.parametrize(
    "as_type",
    [
        pytest.param(str, id="string"),
        pytest.param(int, id="integer"),
        # Surrounding whitespace is ignored: people paste codes with it.
        pytest.param(lambda code: f" {code}", id="leading-space"),
        pytest.param(lambda code: f"{code} ", id="trailing-space"),
        pytest.param(lambda code: f"{code}\n", id="trailing-newline"),
    ],
)
def test_code_as_string_or_integer(
    client: FlaskClient, user: TestUser, clock: FakeClock, as_type: Callable[[str], Any]
) -> None:
    created = create_setup(client, user.headers)
    code = as_type(code_for(created["secret"], clock))
    response = answer(client, created["challengeId"], code, user.headers)
    assert response.status_code == 200
    assert response.json == {}
    assert status(client, user) == {"connected": True}


def test_code_with_a_leading_zero_as_integer(
    client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    # A new secret per setup: about one in ten shows a code starting with 0 at this time.
    for _ in range(500):
        created = create_setup(client, user.headers)
        code = code_for(created["secret"], clock)
        if code.startswith("0"):
            break
    else:
        pytest.fail("no code with a leading zero in 500 setups")
    assert int(code) < 100_000
    response = answer(client, created["challengeId"], int(code), user.headers)
    assert response.status_code == 200, response.json
    assert response.json == {}
    assert status(client, user) == {"connected": True}


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_codes_within_one_step_of_skew_are_accepted(
    client: FlaskClient, user: TestUser, clock: FakeClock, offset: int
) -> None:
    created = create_setup(client, user.headers)
    code = code_for(created["secret"], clock, offset)
    response = answer(client, created["challengeId"], code, user.headers)
    assert response.status_code == 200
    assert response.json == {}
    assert status(client, user) == {"connected": True}


@pytest.mark.parametrize("offset", [-2, 2, -3, 3])
def test_codes_two_steps_away_are_refused(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock, offset: int
) -> None:
    created = create_setup(client, user.headers)
    code = code_for(created["secret"], clock, offset)
    if code in {code_for(created["secret"], clock, near) for near in (-1, 0, 1)}:
        # One chance in ~300000 that a far code equals a near one: use another secret.
        created = create_setup(client, user.headers)
        code = code_for(created["secret"], clock, offset)
    response = answer(client, created["challengeId"], code, user.headers)
    assert_error(response, 403, "INVALID_CODE")
    assert_no_secrets(response, created["secret"], code)
    assert status(client, user) == {"connected": False}
    assert challenge_attempts(app, created["challengeId"]) == 1


# -- bad input --------------------------------------------------------------------------------

#: Each case builds the keyword arguments of ``client.post`` from a live challenge id and the
#: right code, so only the one thing under test is wrong.
BAD_REQUESTS: list[Any] = [
    pytest.param(lambda cid, code: {}, id="missing body"),
    pytest.param(
        lambda cid, code: {"data": "challengeId=x", "content_type": "text/plain"},
        id="non-JSON body",
    ),
    pytest.param(
        lambda cid, code: {"data": "{not json", "content_type": "application/json"},
        id="malformed JSON",
    ),
    pytest.param(lambda cid, code: {"json": [cid, code]}, id="JSON array"),
    pytest.param(lambda cid, code: {"json": "text"}, id="JSON string"),
    pytest.param(
        lambda cid, code: {"data": "null", "content_type": "application/json"}, id="JSON null"
    ),
    pytest.param(lambda cid, code: {"json": {"verificationCode": code}}, id="missing challengeId"),
    pytest.param(
        lambda cid, code: {"json": {"challengeId": 12345, "verificationCode": code}},
        id="challengeId integer",
    ),
    pytest.param(
        lambda cid, code: {"json": {"challengeId": [cid], "verificationCode": code}},
        id="challengeId list",
    ),
    pytest.param(
        lambda cid, code: {"json": {"challengeId": None, "verificationCode": code}},
        id="challengeId null",
    ),
    pytest.param(
        lambda cid, code: {"json": {"challengeId": "", "verificationCode": code}},
        id="challengeId empty",
    ),
    pytest.param(
        lambda cid, code: {"json": {"challengeId": "a" * 129, "verificationCode": code}},
        id="challengeId too long",
    ),
    pytest.param(lambda cid, code: {"json": {"challengeId": cid}}, id="missing verificationCode"),
    *(
        pytest.param(
            lambda cid, code, value=value: {
                "json": {"challengeId": cid, "verificationCode": value}
            },
            id=f"verificationCode {name}",
        )
        for name, value in [
            ("true", True),
            ("false", False),
            ("12.0", 12.0),
            ("123456.0", 123456.0),
            ("-1", -1),
            ("1000000", 1_000_000),
            ("'12345'", "12345"),
            ("'1234567'", "1234567"),
            ("'12345a'", "12345a"),
            ("'-12345'", "-12345"),
            ("'+12345'", "+12345"),
            ("'123 456'", "123 456"),
            ("Arabic-Indic digits", "\u0661\u0662\u0663\u0664\u0665\u0666"),
            ("fullwidth digits", "\uff11\uff12\uff13\uff14\uff15\uff16"),
            ("empty string", ""),
            ("null", None),
            ("[]", []),
            ("{}", {}),
        ]
    ),
]


@pytest.mark.parametrize("make_request", BAD_REQUESTS)
def test_bad_input_is_400_and_changes_nothing(
    app: Flask,
    client: FlaskClient,
    user: TestUser,
    clock: FakeClock,
    make_request: Callable[[str, str], dict[str, Any]],
) -> None:
    created = create_setup(client, user.headers)
    code = code_for(created["secret"], clock)
    before = credential_state(app, user)

    response = client.post(
        "/auth/2fa/challenge", headers=user.headers, **make_request(created["challengeId"], code)
    )
    assert_error(response, 400, "BAD_REQUEST")
    assert set(response.json) == ERROR_KEYS
    assert response.mimetype == "application/json"
    assert_no_secrets(response, created["secret"], code)

    assert credential_state(app, user) == before
    assert before is not None and before["connected"] is False
    assert challenge_attempts(app, created["challengeId"]) == 0
    # The challenge is still good for a well-formed answer.
    response = answer(client, created["challengeId"], code, user.headers)
    assert response.status_code == 200
    assert response.json == {}


# -- wrong codes and attempt limits -----------------------------------------------------------


def test_wrong_codes_count_down_then_burn_the_challenge(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    created = create_setup(client, user.headers)
    wrong = wrong_code(created["secret"], clock)
    for attempt, remaining in enumerate([4, 3, 2, 1, 0], start=1):
        response = answer(client, created["challengeId"], wrong, user.headers)
        assert_error(response, 403, "INVALID_CODE")
        # The fifth consecutive failure of the user also starts the per-user back-off.
        backing_off = {"retryAfter"} if attempt == 5 else set()
        assert set(response.json) == ERROR_KEYS | {"remainingAttempts"} | backing_off
        assert response.json["remainingAttempts"] == remaining
        assert response.json.get("retryAfter", 1) == 1
        assert_no_secrets(response, created["secret"], wrong)
        expected_attempts = attempt if remaining else None
        assert challenge_attempts(app, created["challengeId"]) == expected_attempts

    right = code_for(created["secret"], clock)
    response = answer(client, created["challengeId"], right, user.headers)
    assert_error(response, 404, "CHALLENGE_NOT_FOUND")
    assert set(response.json) == ERROR_KEYS
    assert_no_secrets(response, created["secret"], right)

    assert challenge_attempts(app, created["challengeId"]) is None
    state = credential_state(app, user)
    assert state is not None
    assert state["connected"] is False and state["last_used_step"] is None
    assert status(client, user) == {"connected": False}


def test_wrong_code_leaves_the_challenge_answerable(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    created = create_setup(client, user.headers)
    wrong = wrong_code(created["secret"], clock)
    response = answer(client, created["challengeId"], wrong, user.headers)
    assert response.status_code == 403
    assert response.json == {
        "statusCode": 403,
        "why": "Invalid 2FA code. Try again.",
        "errorCode": "INVALID_CODE",
        "remainingAttempts": 4,
    }
    response = answer(
        client, created["challengeId"], code_for(created["secret"], clock), user.headers
    )
    assert response.status_code == 200
    assert response.json == {}


# -- unknown, expired and used challenges -----------------------------------------------------


@pytest.mark.parametrize("with_token", [True, False])
def test_unknown_challenge_is_404(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock, with_token: bool
) -> None:
    created = create_setup(client, user.headers)
    code = code_for(created["secret"], clock)
    response = answer(
        client, secrets.token_urlsafe(32), code, user.headers if with_token else None
    )
    assert_error(response, 404, "CHALLENGE_NOT_FOUND")
    assert set(response.json) == ERROR_KEYS
    assert_no_secrets(response, created["secret"], code)
    assert challenge_attempts(app, created["challengeId"]) == 0
    assert status(client, user) == {"connected": False}


@pytest.mark.parametrize(("seconds", "expired"), [(599, False), (601, True)])
def test_setup_challenge_expires_after_ten_minutes(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock, seconds: int, expired: bool
) -> None:
    created = create_setup(client, user.headers)
    clock.advance(seconds)
    code = code_for(created["secret"], clock)
    response = answer(client, created["challengeId"], code, user.headers)
    if expired:
        assert_error(response, 404, "CHALLENGE_NOT_FOUND")
        assert_no_secrets(response, created["secret"], code)
        assert status(client, user) == {"connected": False}
    else:
        assert response.status_code == 200
        assert response.json == {}
        assert status(client, user) == {"connected": True}


# The login challenge's ten minutes: test_login_step.test_login_challenge_lives_ten_minutes.


@pytest.mark.parametrize("kind", ["setup", "login"])
def test_used_challenge_is_404(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock, kind: str
) -> None:
    if kind == "setup":
        created = create_setup(client, user.headers)
        challenge_id, secret, headers = created["challengeId"], created["secret"], user.headers
    else:
        secret = connect(client, user.headers, clock)
        challenge_id, headers = begin_login(client, user), {}
    first = answer(client, challenge_id, code_for(secret, clock), headers)
    assert first.status_code == 200
    before = credential_state(app, user)

    clock.advance(30)
    again = answer(client, challenge_id, code_for(secret, clock), headers)
    assert_error(again, 404, "CHALLENGE_NOT_FOUND")
    assert "accessToken" not in again.json
    assert credential_state(app, user) == before


# -- replay -----------------------------------------------------------------------------------


def test_login_code_is_not_accepted_twice(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    used = code_for(secret, clock)
    first = answer(client, begin_login(client, user), used)
    assert first.status_code == 200
    assert "accessToken" in first.json
    used_step = credential_state(app, user)["last_used_step"]  # type: ignore[index]

    # The same code in the same time step, on a fresh login challenge.
    challenge_id = begin_login(client, user)
    replay = answer(client, challenge_id, used)
    assert_error(replay, 403, "INVALID_CODE")
    assert "accessToken" not in replay.json
    assert_no_secrets(replay, secret, used)
    assert challenge_attempts(app, challenge_id) == 1

    # A code of an earlier step than the used one is refused too, though within the skew window.
    earlier = code_for(secret, clock, -1)
    assert earlier != used
    older = answer(client, challenge_id, earlier)
    assert_error(older, 403, "INVALID_CODE")
    assert_no_secrets(older, secret, earlier)
    assert challenge_attempts(app, challenge_id) == 2
    assert credential_state(app, user)["last_used_step"] == used_step  # type: ignore[index]

    # The next step's code is new, and logs in.
    later = answer(client, challenge_id, code_for(secret, clock, 1))
    assert later.status_code == 200
    assert "accessToken" in later.json
    assert challenge_attempts(app, challenge_id) is None
    assert credential_state(app, user)["last_used_step"] == used_step + 1  # type: ignore[index]


def test_setup_code_is_not_accepted_at_login_in_the_same_step(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    created = create_setup(client, user.headers)
    code = code_for(created["secret"], clock)
    confirmed = answer(client, created["challengeId"], code, user.headers)
    assert confirmed.status_code == 200

    challenge_id = begin_login(client, user)
    replay = answer(client, challenge_id, code)
    assert_error(replay, 403, "INVALID_CODE")
    assert "accessToken" not in replay.json
    assert_no_secrets(replay, created["secret"], code)
    assert challenge_attempts(app, challenge_id) == 1

    clock.advance(30)
    response = answer(client, challenge_id, code_for(created["secret"], clock))
    assert response.status_code == 200
    assert "accessToken" in response.json


def test_each_new_challenge_clears_a_batch_of_the_oldest_expired_ones(
    app: Flask,
    db: Any,
    two_factor: TwoFactor,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
) -> None:
    user, _ = connected_user
    challenge = two_factor.models.Challenge

    def begin() -> None:
        login_challenge(app, user.id)

    def counts() -> tuple[int, int]:
        """Expired and live challenges now."""
        with app.app_context():
            expires = db.session.execute(select(challenge.expires_at)).scalars().all()
        now = datetime.fromtimestamp(clock.now, timezone.utc).replace(tzinfo=None)
        return sum(at <= now for at in expires), sum(at > now for at in expires)

    for _ in range(EXPIRED_BATCH + 50):
        begin()
        clock.advance(1)
    clock.advance(600 - 2)
    # Still live: the last one, made 599 seconds ago.
    assert counts() == (EXPIRED_BATCH + 49, 1)

    begin()
    assert counts() == (49, 2)
    begin()
    assert counts() == (0, 3)
