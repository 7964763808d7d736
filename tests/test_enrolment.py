"""Enrolment: the first recovery codes, made in the transaction that confirms a setup, and a
hint when a setup code is that of a device whose clock is off."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_ucloud_2fa import InvalidCode
from flask_ucloud_2fa import Proof
from flask_ucloud_2fa import TwoFactor
from flask_ucloud_2fa import signals
from flask_ucloud_2fa.store import Store

from helpers import ERROR_KEYS
from helpers import TOKEN_KEYS
from helpers import FakeClock
from helpers import answer
from helpers import answer_with_recovery_code
from helpers import assert_error
from helpers import begin_login
from helpers import canonical
from helpers import challenge_attempts
from helpers import code_for
from helpers import create_setup
from helpers import failures_of
from helpers import rows_of
from helpers import secret_box
from helpers import status
from helpers import stored_hashes

if TYPE_CHECKING:
    # Imported for annotations only: a module-level Test* class would be collected by pytest.
    from helpers import TestUser

RECOVERY_CODE = re.compile(r"[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}-[A-Z2-7]{4}")
CODES_AT_SETUP = pytest.mark.app_config(UCLOUD_2FA_RECOVERY_CODES_AT_SETUP=True)


def confirm(
    client: FlaskClient, user: TestUser, clock: FakeClock, offset_steps: int = 0
) -> tuple[dict[str, str], Any]:
    """Start a setup and answer it with the code a device ``offset_steps`` steps ahead shows;
    the setup and the answer."""
    setup = create_setup(client, user.headers)
    code = code_for(setup["secret"], clock, offset_steps)
    return setup, answer(client, setup["challengeId"], code, user.headers)


def assert_stored_hashed(app: Flask, user: TestUser, codes: list[str]) -> None:
    """The user's stored recovery codes are exactly the keyed hashes of ``codes``, and none
    of the codes is stored in any spelling."""
    stored = stored_hashes(app, user.id)
    box = secret_box(app)
    assert sorted(stored) == sorted(box.keyed_hash(canonical(code)) for code in codes)
    for code in codes:
        assert not any(canonical(code) in value or code in value for value in stored)


# -- recovery codes at setup: the JSON route ---------------------------------------------------


def test_setup_answer_is_exactly_uclouds_by_default(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    _, response = confirm(client, user, clock)

    assert response.status_code == 200
    assert response.json == {}
    assert stored_hashes(app, user.id) == []
    assert status(client, user) == {"connected": True}


@CODES_AT_SETUP
def test_setup_answer_carries_the_first_recovery_codes_when_configured(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    _, response = confirm(client, user, clock)

    assert response.status_code == 200
    assert set(response.json) == {"recoveryCodes"}
    codes = response.json["recoveryCodes"]
    assert len(codes) == len(set(codes)) == 10
    assert all(RECOVERY_CODE.fullmatch(code) for code in codes)
    assert_stored_hashed(app, user, codes)
    assert status(client, user) == {"connected": True}


@pytest.mark.app_config(UCLOUD_2FA_RECOVERY_CODES_AT_SETUP=True, UCLOUD_2FA_RECOVERY_CODES=3)
def test_setup_makes_as_many_codes_as_configured(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    _, response = confirm(client, user, clock)

    assert len(response.json["recoveryCodes"]) == 3
    assert len(stored_hashes(app, user.id)) == 3


@CODES_AT_SETUP
def test_recovery_codes_of_the_setup_work_once_at_login(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    _, response = confirm(client, user, clock)
    codes = response.json["recoveryCodes"]
    clock.advance(30)

    first = answer_with_recovery_code(client, begin_login(client, user), codes[0].lower())
    again = answer_with_recovery_code(client, begin_login(client, user), codes[0])

    assert first.status_code == 200, first.json
    assert set(first.json) == TOKEN_KEYS
    assert_error(again, 403, "INVALID_CODE")
    assert len(stored_hashes(app, user.id)) == 9


@CODES_AT_SETUP
def test_a_wrong_setup_code_makes_no_recovery_codes(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    _, response = confirm(client, user, clock, offset_steps=60)

    assert_error(response, 403, "INVALID_CODE")
    assert "recoveryCodes" not in response.json
    assert stored_hashes(app, user.id) == []
    assert status(client, user) == {"connected": False}


@CODES_AT_SETUP
def test_recovery_codes_and_the_confirmation_are_one_transaction(
    app: Flask,
    client: FlaskClient,
    user: TestUser,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    setup = create_setup(client, user.headers)
    code = code_for(setup["secret"], clock)

    def refuse(*args: Any) -> None:
        raise RuntimeError("no room for recovery codes")

    with monkeypatch.context() as patch:
        patch.setattr(Store, "replace_recovery_codes", refuse)
        with pytest.raises(RuntimeError, match="^no room for recovery codes$"):
            answer(client, setup["challengeId"], code, user.headers)

    # Nothing of the confirmation stayed: not connected, the code and the challenge unspent.
    rows = rows_of(app, user.id)
    [(_, _, connected, last_used_step)] = rows["credentials"]
    assert (bool(connected), last_used_step) == (False, None)
    assert rows["recovery_codes"] == []
    assert challenge_attempts(app, setup["challengeId"]) == 0
    confirmed = answer(client, setup["challengeId"], code, user.headers)
    assert confirmed.status_code == 200
    assert_stored_hashed(app, user, confirmed.json["recoveryCodes"])


# -- recovery codes at setup: the facade -------------------------------------------------------


def test_confirm_setup_returns_the_first_recovery_codes(
    app: Flask, two_factor: TwoFactor, user: TestUser, clock: FakeClock
) -> None:
    sent: list[dict[str, Any]] = []

    def receive(sender: Any, **data: Any) -> None:
        sent.append(data)

    with (
        app.test_request_context(),
        signals.recovery_codes_generated.connected_to(receive, sender=app),
    ):
        created = two_factor.start_setup(user.id, user.username)
        codes = two_factor.confirm_setup(
            created.challenge_id, Proof(code=code_for(created.secret, clock)), user_id=user.id
        )

    assert len(codes) == len(set(codes)) == 10
    assert all(RECOVERY_CODE.fullmatch(code) for code in codes)
    assert_stored_hashed(app, user, codes)
    assert [(data["kind"], data["count"]) for data in sent] == [("setup", 10)]


@pytest.mark.parametrize("value", ["true", 1, 0, None, "False"])
def test_recovery_codes_at_setup_must_be_true_or_false(
    make_sqlite_app: Callable[..., Flask], value: Any
) -> None:
    message = f"UCLOUD_2FA_RECOVERY_CODES_AT_SETUP must be True or False, not {value!r}."
    with pytest.raises(ValueError, match=f"^{re.escape(message)}$"):
        make_sqlite_app({"UCLOUD_2FA_RECOVERY_CODES_AT_SETUP": value})


# -- a device whose clock is off ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("offset_steps", "drift"),
    [
        pytest.param(6, 180, id="3 minutes ahead"),
        pytest.param(-14, -420, id="7 minutes behind"),
        pytest.param(2, 60, id="just outside the window"),
        pytest.param(20, 600, id="10 minutes ahead"),
        pytest.param(-20, -600, id="10 minutes behind"),
    ],
)
def test_setup_code_of_a_drifted_clock_is_refused_with_the_drift(
    app: Flask,
    client: FlaskClient,
    user: TestUser,
    clock: FakeClock,
    offset_steps: int,
    drift: int,
) -> None:
    setup, response = confirm(client, user, clock, offset_steps)

    assert_error(response, 403, "INVALID_CODE")
    assert response.json == {
        "statusCode": 403,
        "why": "Invalid 2FA code. Try again.",
        "errorCode": "INVALID_CODE",
        "remainingAttempts": 4,
        "clockDriftSeconds": drift,
    }
    # Refused and counted as any wrong code.
    assert status(client, user) == {"connected": False}
    assert challenge_attempts(app, setup["challengeId"]) == 1
    assert failures_of(app, user.id) == 1
    # The device's clock set right, its code of now connects.
    assert (
        answer(client, setup["challengeId"], code_for(setup["secret"], clock), user.headers).json
        == {}
    )


@pytest.mark.parametrize("offset_steps", [21, -21, 60])
def test_setup_code_further_than_ten_minutes_away_has_no_drift(
    client: FlaskClient, user: TestUser, clock: FakeClock, offset_steps: int
) -> None:
    setup, response = confirm(client, user, clock, offset_steps)
    secret = setup["secret"]
    # Once in a long while the far code is also that of a step near now: set up again.
    while code_for(secret, clock, offset_steps) in {
        code_for(secret, clock, near) for near in range(-20, 21)
    }:
        setup, response = confirm(client, user, clock, offset_steps)
        secret = setup["secret"]

    assert_error(response, 403, "INVALID_CODE")
    assert set(response.json) == ERROR_KEYS | {"remainingAttempts"}


def test_setup_drift_is_on_the_facades_error(
    app: Flask, two_factor: TwoFactor, user: TestUser, clock: FakeClock
) -> None:
    with app.test_request_context():
        created = two_factor.start_setup(user.id, user.username)
        with pytest.raises(InvalidCode) as refused:
            two_factor.confirm_setup(
                created.challenge_id,
                Proof(code=code_for(created.secret, clock, -8)),
                user_id=user.id,
            )

    assert refused.value.clock_drift_seconds == -240
    assert refused.value.remaining_attempts == 4


@pytest.mark.parametrize("offset_steps", [6, -14])
def test_login_code_of_a_drifted_clock_says_nothing_of_the_drift(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    offset_steps: int,
) -> None:
    user, secret = connected_user

    response = answer(client, begin_login(client, user), code_for(secret, clock, offset_steps))

    assert_error(response, 403, "INVALID_CODE")
    assert set(response.json) == ERROR_KEYS | {"remainingAttempts"}
    assert "clockDriftSeconds" not in response.json
