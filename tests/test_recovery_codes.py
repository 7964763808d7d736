"""Recovery codes: made on a second-factor proof, shown once, stored as keyed hashes, accepted
once at the login step in place of a TOTP code, and counted by the same attempt limits."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from functools import partial
from typing import TYPE_CHECKING
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from helpers import TOKEN_KEYS
from helpers import UNKNOWN_RECOVERY_CODE
from helpers import FakeClock
from helpers import add_user
from helpers import answer
from helpers import answer_with_recovery_code
from helpers import assert_error
from helpers import begin_login
from helpers import canonical
from helpers import challenge_count
from helpers import code_for
from helpers import connect_and_step_up
from helpers import count
from helpers import db_of
from helpers import failures_of
from helpers import me
from helpers import new_codes
from helpers import race
from helpers import secret_box
from helpers import step_up
from helpers import stored_hashes
from helpers import two_factor_of
from helpers import wrong_code
from integrator import integrator_of

if TYPE_CHECKING:
    # Imported for annotations only: a module-level Test* class would be collected by pytest.
    from helpers import TestUser

RECOVERY_CODE = re.compile(r"[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}")


# -- helpers -----------------------------------------------------------------------------------


def regenerate(client: FlaskClient, user: TestUser, **proof: Any) -> Any:
    return client.post("/auth/2fa/recovery-codes", headers=user.headers, json=proof)


def every_stored_value(app: Flask) -> list[str]:
    """Every value of every column of every table of the app, as text."""
    values: list[str] = []
    db = db_of(app)
    with app.app_context():
        for table in db.metadata.sorted_tables:
            for row in db.session.execute(select(table)):
                values.extend(str(value) for value in row)
    return values


# -- generating codes --------------------------------------------------------------------------


def test_valid_code_returns_ten_distinct_recovery_codes(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user

    response = regenerate(client, user, verificationCode=code_for(secret, clock))

    assert response.status_code == 200, response.json
    assert set(response.json) == {"recoveryCodes"}
    codes = response.json["recoveryCodes"]
    assert len(codes) == 10
    assert all(RECOVERY_CODE.fullmatch(code) for code in codes), codes
    # 16 base32 characters carry 80 bits, more than the 64 promised.
    assert all(len(canonical(code)) * 5 >= 64 for code in codes)
    assert len(set(codes)) == 10
    assert response.headers["Cache-Control"] == "no-store"


def test_recovery_codes_are_stored_as_keyed_hashes_only(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user

    codes = new_codes(client, user.headers, secret, clock)

    hashes = stored_hashes(app, user.id)
    assert len(hashes) == 10
    assert len(set(hashes)) == 10
    plain_forms = {form for code in codes for form in (code, canonical(code), code.lower())}
    unkeyed = {hashlib.sha256(form.encode()).hexdigest() for form in plain_forms}
    assert not set(hashes) & plain_forms
    assert not set(hashes) & unkeyed
    # They are the keyed hashes of the codes under the configured keys, and nothing else.
    box = secret_box(app)
    assert set(hashes) == {box.keyed_hash(canonical(code)) for code in codes}
    stored = every_stored_value(app)
    for form in plain_forms:
        assert not any(form in value for value in stored), form


@pytest.mark.app_config(UCLOUD_2FA_RECOVERY_CODES=3)
def test_number_of_codes_is_configurable(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user

    codes = new_codes(client, user.headers, secret, clock)

    assert len(codes) == 3
    assert len(stored_hashes(app, user.id)) == 3


def test_code_used_for_generating_is_spent(
    client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    code = code_for(secret, clock)
    assert regenerate(client, user, verificationCode=code).status_code == 200
    challenge_id = begin_login(client, user)

    reused = answer(client, challenge_id, code)

    assert_error(reused, 403, "INVALID_CODE")
    assert reused.json["remainingAttempts"] == 4
    # The next step's code still finishes the same login.
    clock.advance(30)
    finished = answer(client, challenge_id, code_for(secret, clock))
    assert finished.status_code == 200
    assert set(finished.json) == TOKEN_KEYS


def make_bad_body(kind: str, code: str, recovery: str) -> Any:
    return {
        "empty": {},
        "both": {"verificationCode": code, "recoveryCode": recovery},
        "short code": {"verificationCode": code[:5]},
        "boolean code": {"verificationCode": True},
        "too short recovery code": {"recoveryCode": recovery[:-1]},
        "recovery code outside base32": {"recoveryCode": recovery[:-1] + "1"},
        "integer recovery code": {"recoveryCode": 1234},
        "not an object": [code],
    }[kind]


@pytest.mark.parametrize(
    "kind",
    [
        "empty",
        "both",
        "short code",
        "boolean code",
        "too short recovery code",
        "recovery code outside base32",
        "integer recovery code",
        "not an object",
    ],
)
def test_bad_proof_is_400_and_changes_nothing(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    kind: str,
) -> None:
    user, secret = connected_user
    codes = new_codes(client, user.headers, secret, clock)
    before = stored_hashes(app, user.id)

    response = client.post(
        "/auth/2fa/recovery-codes",
        headers=user.headers,
        json=make_bad_body(kind, code_for(secret, clock), codes[0]),
    )

    assert_error(response, 400, "BAD_REQUEST")
    assert sorted(stored_hashes(app, user.id)) == sorted(before)
    assert failures_of(app, user.id) == 0
    # Neither proof was spent: the code of this step still works.
    assert regenerate(client, user, verificationCode=code_for(secret, clock)).status_code == 200


@pytest.mark.parametrize("proof", ["verificationCode", "recoveryCode"])
def test_wrong_proof_is_403_and_keeps_the_codes(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    proof: str,
) -> None:
    user, secret = connected_user
    codes = new_codes(client, user.headers, secret, clock)
    before = stored_hashes(app, user.id)
    wrong = wrong_code(secret, clock) if proof == "verificationCode" else UNKNOWN_RECOVERY_CODE

    response = regenerate(client, user, **{proof: wrong})

    assert_error(response, 403, "INVALID_CODE")
    assert "recoveryCodes" not in response.json
    assert "remainingAttempts" not in response.json  # no challenge is involved
    assert sorted(stored_hashes(app, user.id)) == sorted(before)
    assert failures_of(app, user.id) == 1
    # The old codes still work.
    finished = answer_with_recovery_code(client, begin_login(client, user), codes[0])
    assert finished.status_code == 200


def test_another_users_recovery_code_is_no_proof(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    make_user: Callable[[str], TestUser],
    clock: FakeClock,
) -> None:
    alice, alice_secret = connected_user
    alice_codes = new_codes(client, alice.headers, alice_secret, clock)
    bob = make_user("bob")
    setup = client.post("/auth/2fa", headers=bob.headers).json
    confirmed = answer(client, setup["challengeId"], code_for(setup["secret"], clock), bob.headers)
    assert confirmed.status_code == 200
    clock.advance(30)
    step_up(client, bob, setup["secret"], clock)

    response = regenerate(client, bob, recoveryCode=alice_codes[0])

    assert_error(response, 403, "INVALID_CODE")
    assert len(stored_hashes(app, alice.id)) == 10
    assert stored_hashes(app, bob.id) == []


def test_user_without_2fa_is_409(app: Flask, client: FlaskClient, user: TestUser) -> None:
    response = regenerate(client, user, verificationCode="123456")

    assert_error(response, 409, "NOT_CONNECTED")
    assert count(app, two_factor_of(app).models.RecoveryCode) == 0


def test_user_with_a_pending_setup_is_409(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    setup = client.post("/auth/2fa", headers=user.headers).json

    response = regenerate(client, user, verificationCode=code_for(setup["secret"], clock))

    assert_error(response, 409, "NOT_CONNECTED")
    assert stored_hashes(app, user.id) == []
    # The setup's code was not spent: it still confirms the setup.
    confirmed = answer(
        client, setup["challengeId"], code_for(setup["secret"], clock), user.headers
    )
    assert confirmed.status_code == 200


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer not-a-token"}], ids=["no-token", "bad-token"]
)
def test_without_a_valid_token_is_401(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    headers: dict[str, str],
) -> None:
    user, secret = connected_user

    response = client.post(
        "/auth/2fa/recovery-codes",
        headers=headers,
        json={"verificationCode": code_for(secret, clock)},
    )

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer")
    assert "recoveryCodes" not in (response.json or {})
    assert stored_hashes(app, user.id) == []
    # The code was not spent.
    assert regenerate(client, user, verificationCode=code_for(secret, clock)).status_code == 200


# -- logging in with a recovery code -----------------------------------------------------------


@pytest.mark.parametrize(
    "spelling",
    [
        pytest.param(lambda code: code, id="as-shown"),
        pytest.param(str.lower, id="lower-case"),
        pytest.param(canonical, id="without-dashes"),
        pytest.param(lambda code: canonical(code).lower(), id="lower-case-without-dashes"),
    ],
)
def test_login_with_a_recovery_code_gives_tokens(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    spelling: Callable[[str], str],
) -> None:
    user, secret = connected_user
    codes = new_codes(client, user.headers, secret, clock)
    challenge_id = begin_login(client, user)

    response = answer_with_recovery_code(client, challenge_id, spelling(codes[3]))

    assert response.status_code == 200, response.json
    assert set(response.json) == TOKEN_KEYS
    who = me(client, response.json["accessToken"])
    assert who.json["username"] == user.username
    # "otp": the second factor was passed; "rc": with a recovery code, not the app.
    assert who.json["amr"] == ["pwd", "otp", "rc"]
    assert len(stored_hashes(app, user.id)) == 9
    assert challenge_count(app, user.id) == 0


def test_recovery_code_is_single_use(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    codes = new_codes(client, user.headers, secret, clock)
    first = answer_with_recovery_code(client, begin_login(client, user), codes[0])
    assert first.status_code == 200
    tokens = count(app, integrator_of(app).Token)
    challenge_id = begin_login(client, user)

    again = answer_with_recovery_code(client, challenge_id, codes[0].lower())

    assert_error(again, 403, "INVALID_CODE")
    assert again.json["remainingAttempts"] == 4
    assert len(stored_hashes(app, user.id)) == 9
    assert count(app, integrator_of(app).Token) == tokens
    # Another of the codes finishes the same challenge.
    other = answer_with_recovery_code(client, challenge_id, codes[1])
    assert other.status_code == 200
    assert len(stored_hashes(app, user.id)) == 8


def test_recovery_code_clears_the_users_failures(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    codes = new_codes(client, user.headers, secret, clock)
    challenge_id = begin_login(client, user)
    wrong = answer(client, challenge_id, wrong_code(secret, clock))
    assert wrong.status_code == 403
    assert failures_of(app, user.id) == 1

    assert answer_with_recovery_code(client, challenge_id, codes[0]).status_code == 200

    assert failures_of(app, user.id) == 0


def test_recovery_code_on_a_setup_challenge_is_400(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    make_user: Callable[[str], TestUser],
    clock: FakeClock,
) -> None:
    alice, alice_secret = connected_user
    alice_codes = new_codes(client, alice.headers, alice_secret, clock)
    bob = make_user("bob")
    setup = client.post("/auth/2fa", headers=bob.headers).json

    for code in (alice_codes[0], UNKNOWN_RECOVERY_CODE):
        response = client.post(
            "/auth/2fa/challenge",
            headers=bob.headers,
            json={"challengeId": setup["challengeId"], "recoveryCode": code},
        )
        assert_error(response, 400, "BAD_REQUEST")

    assert client.get("/auth/2fa/status", headers=bob.headers).json == {"connected": False}
    assert challenge_count(app, bob.id) == 1
    assert failures_of(app, bob.id) == 0
    assert len(stored_hashes(app, alice.id)) == 10
    confirmed = answer(client, setup["challengeId"], code_for(setup["secret"], clock), bob.headers)
    assert confirmed.status_code == 200
    clock.advance(30)
    step_up(client, bob, setup["secret"], clock)


def test_user_without_recovery_codes_cannot_use_one(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str]
) -> None:
    user, _ = connected_user
    challenge_id = begin_login(client, user)

    response = answer_with_recovery_code(client, challenge_id, UNKNOWN_RECOVERY_CODE)

    assert_error(response, 403, "INVALID_CODE")
    assert response.json["remainingAttempts"] == 4


# -- regenerating ------------------------------------------------------------------------------


def test_regenerating_with_a_totp_code_invalidates_the_old_codes(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    old = new_codes(client, user.headers, secret, clock)

    new = new_codes(client, user.headers, secret, clock)

    assert not set(old) & set(new)
    assert len(stored_hashes(app, user.id)) == 10
    challenge_id = begin_login(client, user)
    # Four of the old codes (a fifth wrong answer would burn the challenge).
    for code in old[:4]:
        assert_error(answer_with_recovery_code(client, challenge_id, code), 403, "INVALID_CODE")
    assert answer_with_recovery_code(client, challenge_id, new[0]).status_code == 200
    assert len(stored_hashes(app, user.id)) == 9


def test_regenerating_with_a_recovery_code_invalidates_the_old_codes(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    old = new_codes(client, user.headers, secret, clock)

    response = regenerate(client, user, recoveryCode=old[0].lower())

    assert response.status_code == 200, response.json
    new = response.json["recoveryCodes"]
    assert len(new) == 10
    assert not set(old) & set(new)
    assert len(stored_hashes(app, user.id)) == 10
    box = secret_box(app)
    assert set(stored_hashes(app, user.id)) == {box.keyed_hash(canonical(c)) for c in new}
    # Neither the code used as proof nor the other old codes work any more.
    assert_error(regenerate(client, user, recoveryCode=old[0]), 403, "INVALID_CODE")
    challenge_id = begin_login(client, user)
    assert_error(answer_with_recovery_code(client, challenge_id, old[1]), 403, "INVALID_CODE")
    assert answer_with_recovery_code(client, challenge_id, new[1]).status_code == 200


# -- attempt limits ----------------------------------------------------------------------------


def test_wrong_recovery_codes_count_toward_the_challenge_attempts(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    codes = new_codes(client, user.headers, secret, clock)
    challenge_id = begin_login(client, user)

    remaining = []
    for attempt in range(5):
        if attempt == 2:  # a wrong TOTP code counts on the same counter
            response = answer(client, challenge_id, wrong_code(secret, clock))
        else:
            response = answer_with_recovery_code(client, challenge_id, UNKNOWN_RECOVERY_CODE)
        assert_error(response, 403, "INVALID_CODE")
        remaining.append(response.json["remainingAttempts"])

    assert remaining == [4, 3, 2, 1, 0]
    assert challenge_count(app, user.id) == 0
    assert failures_of(app, user.id) == 5
    # The burned challenge takes no right code either, and spends none.
    clock.advance(60)
    burned = answer_with_recovery_code(client, challenge_id, codes[0])
    assert_error(burned, 404, "CHALLENGE_NOT_FOUND")
    assert len(stored_hashes(app, user.id)) == 10


def test_wrong_recovery_codes_back_off_the_user(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    codes = new_codes(client, user.headers, secret, clock)
    for _ in range(5):
        challenge_id = begin_login(client, user)
        wrong = answer_with_recovery_code(client, challenge_id, UNKNOWN_RECOVERY_CODE)
        assert_error(wrong, 403, "INVALID_CODE")
    challenge_id = begin_login(client, user)

    blocked = answer_with_recovery_code(client, challenge_id, codes[0])

    assert_error(blocked, 429, "TOO_MANY_ATTEMPTS")
    assert int(blocked.headers["Retry-After"]) == blocked.json["retryAfter"] >= 1
    assert len(stored_hashes(app, user.id)) == 10  # nothing was checked, nothing spent
    clock.advance(blocked.json["retryAfter"])
    assert answer_with_recovery_code(client, challenge_id, codes[0]).status_code == 200


# -- races on PostgreSQL -----------------------------------------------------------------------


def test_one_recovery_code_on_parallel_login_challenges_logs_in_once(
    pg_app: Flask, clock: FakeClock
) -> None:
    racer = add_user(pg_app)
    client = pg_app.test_client()
    secret = connect_and_step_up(client, racer, clock)
    codes = new_codes(client, racer.headers, secret, clock)
    recovery = two_factor_of(pg_app).models.RecoveryCode
    token_model = integrator_of(pg_app).Token

    for round_, code in enumerate(codes[:3]):
        challenge_ids = [begin_login(client, racer) for _ in range(8)]
        tokens_before = count(pg_app, token_model)

        outcomes = race(
            pg_app,
            [
                partial(answer_with_recovery_code, challenge_id=challenge_id, code=code)
                for challenge_id in challenge_ids
            ],
        )

        statuses = sorted(outcome.status for outcome in outcomes)
        assert statuses.count(200) == 1, statuses
        # Losers were refused the spent code, or (once the losers' failures pile up) told
        # to back off before anything was checked.
        assert set(statuses) - {200} <= {403, 429}, statuses
        winner = next(outcome for outcome in outcomes if outcome.status == 200)
        assert set(winner.body) == TOKEN_KEYS
        assert count(pg_app, token_model) == tokens_before + 1
        assert count(pg_app, recovery) == 10 - (round_ + 1)
        who = me(client, winner.body["accessToken"])
        assert who.json["amr"] == ["pwd", "otp", "rc"]
        assert who.json["username"] == racer.username
        clock.advance(61)  # past any back-off the losers caused
