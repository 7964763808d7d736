"""Turning 2FA off: a user disables it with a second-factor proof, an administrator resets a
user from the CLI (``flask ucloud-2fa ...``). Nothing of the old credential survives either."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient

from helpers import NOTHING
from helpers import TOKEN_KEYS
from helpers import UNKNOWN_RECOVERY_CODE
from helpers import FakeClock
from helpers import answer
from helpers import answer_with_recovery_code
from helpers import arm
from helpers import assert_error
from helpers import assert_logs_in_with_the_password_alone
from helpers import begin_login
from helpers import canonical
from helpers import cli
from helpers import code_for
from helpers import connect
from helpers import count
from helpers import failures_of
from helpers import rows_of
from helpers import secret_box
from helpers import two_factor_of
from helpers import wrong_code

MakeApp = Callable[..., Flask]

if TYPE_CHECKING:
    # Imported for annotations only: a module-level Test* class would be collected by pytest.
    from helpers import TestUser


# -- helpers -----------------------------------------------------------------------------------


def disable(client: FlaskClient, user: TestUser, body: Any) -> Any:
    return client.post("/auth/2fa/disable", headers=user.headers, json=body)


def assert_nothing_left(app: Flask, user: TestUser) -> None:
    assert rows_of(app, user.id) == NOTHING


@pytest.fixture
def armed_user(
    client: FlaskClient, user: TestUser, clock: FakeClock
) -> tuple[TestUser, str, list[str]]:
    """A connected user with recovery codes and a pending login challenge; the user, the
    secret and the codes."""
    return user, *arm(client, user, clock)


# -- disabling ---------------------------------------------------------------------------------


@pytest.mark.parametrize("proof", ["verificationCode", "recoveryCode"])
def test_disable_with_a_right_proof_removes_everything(
    app: Flask,
    client: FlaskClient,
    armed_user: tuple[TestUser, str, list[str]],
    clock: FakeClock,
    proof: str,
) -> None:
    user, secret, codes = armed_user
    before = rows_of(app, user.id)
    assert len(before["credentials"]) == 1
    assert len(before["challenges"]) == 1
    assert len(before["recovery_codes"]) == 10
    # A recovery code may be typed in lower case and without its dashes.
    right = code_for(secret, clock) if proof == "verificationCode" else canonical(codes[4]).lower()

    response = disable(client, user, {proof: right})

    assert response.status_code == 200, response.json
    assert response.json == {}
    assert client.get("/auth/2fa/status", headers=user.headers).json == {"connected": False}
    assert_nothing_left(app, user)
    assert_logs_in_with_the_password_alone(client, user)


def test_disable_leaves_other_users_alone(
    app: Flask,
    client: FlaskClient,
    armed_user: tuple[TestUser, str, list[str]],
    make_user: Callable[[str], TestUser],
    clock: FakeClock,
) -> None:
    alice, alice_secret, _ = armed_user
    bob = make_user("bob")
    arm(client, bob, clock)
    bob_before = rows_of(app, bob.id)

    response = disable(client, alice, {"verificationCode": code_for(alice_secret, clock)})

    assert response.status_code == 200
    assert rows_of(app, bob.id) == bob_before
    assert client.get("/auth/2fa/status", headers=bob.headers).json == {"connected": True}


@pytest.mark.parametrize("turn_off", ["disable", "cli-reset"])
def test_user_sets_up_2fa_again_after_turning_it_off(
    app: Flask,
    client: FlaskClient,
    armed_user: tuple[TestUser, str, list[str]],
    clock: FakeClock,
    turn_off: str,
) -> None:
    user, old_secret, old_codes = armed_user
    if turn_off == "disable":
        assert disable(client, user, {"recoveryCode": old_codes[0]}).status_code == 200
    else:
        assert cli(app, "reset", str(user.id), "--yes").exit_code == 0

    new_secret = connect(client, user.headers, clock)

    assert new_secret != old_secret
    assert client.get("/auth/2fa/status", headers=user.headers).json == {"connected": True}
    challenge_id = begin_login(client, user)
    # Nothing of the old credential counts: neither its recovery codes nor its secret.
    old_code = answer_with_recovery_code(client, challenge_id, old_codes[1])
    assert_error(old_code, 403, "INVALID_CODE")
    finished = answer(client, challenge_id, code_for(new_secret, clock))
    assert finished.status_code == 200
    assert set(finished.json) == TOKEN_KEYS


@pytest.mark.parametrize("proof", ["verificationCode", "recoveryCode"])
def test_disable_with_a_wrong_proof_is_403_and_keeps_everything(
    app: Flask,
    client: FlaskClient,
    armed_user: tuple[TestUser, str, list[str]],
    clock: FakeClock,
    proof: str,
) -> None:
    user, secret, codes = armed_user
    before = rows_of(app, user.id)
    wrong = wrong_code(secret, clock) if proof == "verificationCode" else UNKNOWN_RECOVERY_CODE

    response = disable(client, user, {proof: wrong})

    assert_error(response, 403, "INVALID_CODE")
    assert rows_of(app, user.id) == before
    assert failures_of(app, user.id) == 1
    assert client.get("/auth/2fa/status", headers=user.headers).json == {"connected": True}
    # The login still needs the second factor, and the kept codes still give it.
    challenge_id = begin_login(client, user)
    finished = client.post(
        "/auth/2fa/challenge", json={"challengeId": challenge_id, "recoveryCode": codes[0]}
    )
    assert finished.status_code == 200


def test_disable_with_a_spent_code_is_403(
    app: Flask, client: FlaskClient, armed_user: tuple[TestUser, str, list[str]], clock: FakeClock
) -> None:
    user, secret, codes = armed_user
    code = code_for(secret, clock)
    challenge_id = begin_login(client, user)
    answered = client.post(
        "/auth/2fa/challenge", json={"challengeId": challenge_id, "verificationCode": code}
    )
    assert answered.status_code == 200
    used_recovery = client.post(
        "/auth/2fa/challenge",
        json={"challengeId": begin_login(client, user), "recoveryCode": codes[0]},
    )
    assert used_recovery.status_code == 200
    before = rows_of(app, user.id)

    assert_error(disable(client, user, {"verificationCode": code}), 403, "INVALID_CODE")
    assert_error(disable(client, user, {"recoveryCode": codes[0]}), 403, "INVALID_CODE")

    assert rows_of(app, user.id) == before
    assert client.get("/auth/2fa/status", headers=user.headers).json == {"connected": True}


def test_wrong_proofs_at_disable_back_off_the_user(
    app: Flask, client: FlaskClient, armed_user: tuple[TestUser, str, list[str]], clock: FakeClock
) -> None:
    user, secret, _ = armed_user
    wrong = wrong_code(secret, clock)
    for _ in range(5):
        assert_error(disable(client, user, {"verificationCode": wrong}), 403, "INVALID_CODE")

    blocked = disable(client, user, {"verificationCode": code_for(secret, clock)})

    assert_error(blocked, 429, "TOO_MANY_ATTEMPTS")
    assert int(blocked.headers["Retry-After"]) == blocked.json["retryAfter"] >= 1
    assert client.get("/auth/2fa/status", headers=user.headers).json == {"connected": True}
    clock.advance(30)
    allowed = disable(client, user, {"verificationCode": code_for(secret, clock)})
    assert allowed.status_code == 200
    assert_nothing_left(app, user)


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="empty"),
        pytest.param({"verificationCode": "CODE", "recoveryCode": "RECOVERY"}, id="both"),
        pytest.param({"verificationCode": "12345"}, id="five-digits"),
        pytest.param({"recoveryCode": "ABCD-EFGH"}, id="short-recovery-code"),
        pytest.param([], id="not-an-object"),
    ],
)
def test_disable_without_a_proper_proof_is_400(
    app: Flask,
    client: FlaskClient,
    armed_user: tuple[TestUser, str, list[str]],
    clock: FakeClock,
    body: Any,
) -> None:
    user, secret, codes = armed_user
    if isinstance(body, dict) and body.get("verificationCode") == "CODE":
        body = {"verificationCode": code_for(secret, clock), "recoveryCode": codes[0]}
    before = rows_of(app, user.id)

    response = disable(client, user, body)

    assert_error(response, 400, "BAD_REQUEST")
    assert rows_of(app, user.id) == before
    assert failures_of(app, user.id) == 0


def test_disable_body_that_is_not_json_is_400(
    app: Flask, client: FlaskClient, armed_user: tuple[TestUser, str, list[str]]
) -> None:
    user, _, _ = armed_user
    before = rows_of(app, user.id)

    response = client.post(
        "/auth/2fa/disable",
        headers={**user.headers, "Content-Type": "application/json"},
        data="{not json",
    )

    assert_error(response, 400, "BAD_REQUEST")
    assert rows_of(app, user.id) == before


def test_disable_without_2fa_is_409(app: Flask, client: FlaskClient, user: TestUser) -> None:
    response = disable(client, user, {"verificationCode": "123456"})

    assert_error(response, 409, "NOT_CONNECTED")
    assert_nothing_left(app, user)


def test_disable_with_a_pending_setup_is_409_and_keeps_the_setup(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    setup = client.post("/auth/2fa", headers=user.headers).json
    before = rows_of(app, user.id)

    response = disable(client, user, {"verificationCode": code_for(setup["secret"], clock)})

    assert_error(response, 409, "NOT_CONNECTED")
    assert rows_of(app, user.id) == before
    confirmed = answer(
        client, setup["challengeId"], code_for(setup["secret"], clock), user.headers
    )
    assert confirmed.status_code == 200


@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer not-a-token"}], ids=["no-token", "bad-token"]
)
def test_disable_without_a_valid_token_is_401(
    app: Flask,
    client: FlaskClient,
    armed_user: tuple[TestUser, str, list[str]],
    clock: FakeClock,
    headers: dict[str, str],
) -> None:
    user, secret, _ = armed_user
    before = rows_of(app, user.id)

    response = client.post(
        "/auth/2fa/disable", headers=headers, json={"verificationCode": code_for(secret, clock)}
    )

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer")
    assert rows_of(app, user.id) == before
    assert failures_of(app, user.id) == 0


# -- the administrator's CLI -------------------------------------------------------------------


def test_cli_status_of_a_connected_user(
    app: Flask, armed_user: tuple[TestUser, str, list[str]]
) -> None:
    user, secret, codes = armed_user
    [(_, encrypted_secret, _, _)] = rows_of(app, user.id)["credentials"]

    result = cli(app, "status", str(user.id))

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert f"user_id: {user.id}" in lines
    assert "connected: yes" in lines
    assert "recovery_codes_left: 10" in lines
    assert "consecutive_failures: 0" in lines
    assert "pending_challenges: 1" in lines
    assert secret not in result.output
    assert secret.lower() not in result.output
    assert encrypted_secret not in result.output
    assert not any(code in result.output for code in codes)


def test_cli_status_counts_used_codes_and_failures(
    app: Flask,
    client: FlaskClient,
    armed_user: tuple[TestUser, str, list[str]],
    clock: FakeClock,
) -> None:
    user, secret, codes = armed_user
    answered = client.post(
        "/auth/2fa/challenge",
        json={"challengeId": begin_login(client, user), "recoveryCode": codes[0]},
    )
    assert answered.status_code == 200
    wrong = disable(client, user, {"verificationCode": wrong_code(secret, clock)})
    assert wrong.status_code == 403

    result = cli(app, "status", str(user.id))

    assert result.exit_code == 0, result.output
    assert "recovery_codes_left: 9" in result.output.splitlines()
    assert "consecutive_failures: 1" in result.output.splitlines()


def test_cli_status_of_a_pending_setup(app: Flask, client: FlaskClient, user: TestUser) -> None:
    setup = client.post("/auth/2fa", headers=user.headers).json

    result = cli(app, "status", str(user.id))

    assert result.exit_code == 0, result.output
    assert "connected: no (setup pending)" in result.output.splitlines()
    assert "recovery_codes_left: 0" in result.output.splitlines()
    assert setup["secret"] not in result.output


def test_cli_status_of_an_unknown_user(app: Flask) -> None:
    result = cli(app, "status", "999999")

    assert result.exit_code == 0, result.output
    assert result.output == "User '999999' has no 2FA credential.\n"


def test_cli_reset_removes_everything_of_the_user(
    app: Flask,
    client: FlaskClient,
    armed_user: tuple[TestUser, str, list[str]],
    make_user: Callable[[str], TestUser],
    clock: FakeClock,
) -> None:
    user, secret, _ = armed_user
    bob = make_user("bob")
    arm(client, bob, clock)
    bob_before = rows_of(app, bob.id)
    models = two_factor_of(app).models

    result = cli(app, "reset", str(user.id), "--yes")

    assert result.exit_code == 0, result.output
    assert str(user.id) in result.output
    assert secret not in result.output
    assert_nothing_left(app, user)
    assert rows_of(app, bob.id) == bob_before
    assert count(app, models.Credential) == 1
    assert count(app, models.RecoveryCode) == 10
    assert count(app, models.Challenge) == 1  # bob's pending login
    assert client.get("/auth/2fa/status", headers=user.headers).json == {"connected": False}
    assert_logs_in_with_the_password_alone(client, user)
    assert cli(app, "status", str(user.id)).output.endswith("has no 2FA credential.\n")


def test_cli_reset_of_a_pending_setup(app: Flask, client: FlaskClient, user: TestUser) -> None:
    client.post("/auth/2fa", headers=user.headers)

    result = cli(app, "reset", str(user.id), "--yes")

    assert result.exit_code == 0, result.output
    assert_nothing_left(app, user)


def test_cli_reset_ends_a_back_off(
    app: Flask, client: FlaskClient, armed_user: tuple[TestUser, str, list[str]], clock: FakeClock
) -> None:
    user, secret, _ = armed_user
    for _ in range(5):
        disable(client, user, {"verificationCode": wrong_code(secret, clock)})
    assert disable(client, user, {"verificationCode": "000000"}).status_code == 429

    assert cli(app, "reset", str(user.id), "--yes").exit_code == 0

    new_secret = connect(client, user.headers, clock)
    status = cli(app, "status", str(user.id))
    assert "consecutive_failures: 0" in status.output.splitlines()
    assert "blocked_until" not in status.output
    allowed = disable(client, user, {"verificationCode": code_for(new_secret, clock)})
    assert allowed.status_code == 200


def test_cli_reset_asks_first(app: Flask, armed_user: tuple[TestUser, str, list[str]]) -> None:
    user, _, _ = armed_user
    before = rows_of(app, user.id)

    result = cli(app, "reset", str(user.id), input="n\n")

    assert result.exit_code != 0
    assert "Aborted" in result.output
    assert rows_of(app, user.id) == before


def test_cli_reset_confirmed_at_the_prompt(
    app: Flask, armed_user: tuple[TestUser, str, list[str]]
) -> None:
    user, _, _ = armed_user

    result = cli(app, "reset", str(user.id), input="y\n")

    assert result.exit_code == 0, result.output
    assert_nothing_left(app, user)


def test_cli_reset_of_an_unknown_user_fails(
    app: Flask, armed_user: tuple[TestUser, str, list[str]]
) -> None:
    user, _, _ = armed_user
    before = rows_of(app, user.id)

    result = cli(app, "reset", "999999", "--yes")

    assert result.exit_code != 0
    assert "User '999999' has no 2FA credential." in result.output
    assert rows_of(app, user.id) == before


def test_cli_generate_key_prints_a_fernet_key(app: Flask) -> None:
    first = cli(app, "generate-key")
    second = cli(app, "generate-key")

    assert first.exit_code == 0, first.output
    assert first.output.endswith("\n")
    key = first.output.strip()
    assert len(first.output.splitlines()) == 1
    assert len(base64.urlsafe_b64decode(key)) == 32
    fernet = Fernet(key)
    assert fernet.decrypt(fernet.encrypt(b"secret")) == b"secret"
    assert second.output.strip() != key


def test_generated_key_works_as_the_encryption_key(app: Flask, make_app: MakeApp) -> None:
    key = cli(app, "generate-key").output.strip()
    other = make_app({"UCLOUD_2FA_ENCRYPTION_KEYS": [key]})

    box = secret_box(other)
    assert box.decrypt(box.encrypt("JBSWY3DPEHPK3PXP")) == "JBSWY3DPEHPK3PXP"
    assert Fernet(key).decrypt(box.encrypt("JBSWY3DPEHPK3PXP").encode()) == b"JBSWY3DPEHPK3PXP"


@pytest.mark.parametrize("command", [["status"], ["reset", "--yes"]])
def test_cli_refuses_a_user_id_the_user_table_cannot_hold(app: Flask, command: list[str]) -> None:
    result = cli(app, *command, "nobody")

    assert result.exit_code == 2, result.output
    assert "Invalid value for USER_ID: 'nobody' is not a user id of this app's user table" in (
        result.output
    )
