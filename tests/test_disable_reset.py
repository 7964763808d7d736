"""Turning 2FA off: a user disables it with a second-factor proof, an administrator resets a
user from the CLI (``flask ucloud-2fa ...``). Nothing of the old credential survives either."""

from __future__ import annotations

import base64
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any

import pytest
from click.testing import Result
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func
from sqlalchemy import select

import example_app
from example_app import db

from conftest import FakeClock
from conftest import answer
from conftest import code_for
from conftest import wrong_code

if TYPE_CHECKING:
    # Imported for annotations only: a module-level Test* class would be collected by pytest.
    from conftest import TestUser

TOKEN_KEYS = {"accessToken", "refreshToken", "expiresAt"}
#: Well-formed, but never one of anybody's codes.
UNKNOWN_RECOVERY_CODE = "A2A2-A2A2-A2A2-A2A2"


# -- helpers -----------------------------------------------------------------------------------


def assert_error(response: Any, status: int, error_code: str) -> None:
    assert response.status_code == status, response.json
    assert response.json["statusCode"] == status
    assert response.json["errorCode"] == error_code
    assert response.json["why"]


def disable(client: FlaskClient, user: TestUser, body: Any) -> Any:
    return client.post("/auth/2fa/disable", headers=user.headers, json=body)


def new_codes(client: FlaskClient, user: TestUser, secret: str, clock: FakeClock) -> list[str]:
    """Fresh recovery codes; moves the clock a step on, so the code is not needed again."""
    response = client.post(
        "/auth/2fa/recovery-codes",
        headers=user.headers,
        json={"verificationCode": code_for(secret, clock)},
    )
    assert response.status_code == 200, response.json
    codes: list[str] = response.json["recoveryCodes"]
    clock.advance(30)
    return codes


def login(client: FlaskClient, user: TestUser) -> Any:
    return client.post("/auth/login", json={"username": user.username, "password": user.password})


def begin_login(client: FlaskClient, user: TestUser) -> str:
    response = login(client, user)
    assert response.status_code == 200, response.json
    assert set(response.json) == {"2fa"}
    challenge_id: str = response.json["2fa"]
    return challenge_id


def connect(client: FlaskClient, user: TestUser, clock: FakeClock) -> str:
    """Set up and confirm 2FA for ``user``; the secret. Moves the clock a step on."""
    setup = client.post("/auth/2fa", headers=user.headers)
    assert setup.status_code == 200, setup.json
    confirmed = answer(
        client, setup.json["challengeId"], code_for(setup.json["secret"], clock), user.headers
    )
    assert confirmed.status_code == 200, confirmed.json
    clock.advance(30)
    secret: str = setup.json["secret"]
    return secret


def rows_of(app: Flask, user: TestUser) -> dict[str, Any]:
    """What the database holds about the user's 2FA."""
    models = example_app.two_factor.models
    credential, challenge, recovery = models.Credential, models.Challenge, models.RecoveryCode
    user_id = str(user.id)
    with app.app_context():
        credentials = db.session.execute(
            select(
                credential.id,
                credential.encrypted_secret,
                credential.connected,
                credential.last_used_step,
            ).where(credential.user_id == user_id)
        ).all()
        ids = [row.id for row in credentials]
        return {
            "credentials": [tuple(row) for row in credentials],
            "challenges": sorted(
                db.session.execute(
                    select(challenge.id_hash, challenge.kind, challenge.attempts).where(
                        challenge.user_id == user_id
                    )
                ).all()
            ),
            "recovery_codes": sorted(
                db.session.execute(
                    select(recovery.code_hash).where(recovery.credential_id.in_(ids))
                ).scalars()
            ),
        }


def failures_of(app: Flask, user: TestUser) -> int:
    credential = example_app.two_factor.models.Credential
    with app.app_context():
        failures: int = db.session.execute(
            select(credential.failures).where(credential.user_id == str(user.id))
        ).scalar_one()
        return failures


def count(app: Flask, model: Any) -> int:
    with app.app_context():
        total: int = db.session.execute(select(func.count()).select_from(model)).scalar_one()
        return total


def assert_nothing_left(app: Flask, user: TestUser) -> None:
    assert rows_of(app, user) == {"credentials": [], "challenges": [], "recovery_codes": []}


def assert_logs_in_with_the_password_alone(client: FlaskClient, user: TestUser) -> None:
    response = login(client, user)
    assert response.status_code == 200, response.json
    assert set(response.json) == TOKEN_KEYS
    me = client.get("/api/me", headers={"Authorization": f"Bearer {response.json['accessToken']}"})
    assert me.json["amr"] == ["pwd"]


@pytest.fixture
def armed_user(
    client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> tuple[TestUser, str, list[str]]:
    """A connected user with recovery codes and a pending login challenge; the user, the
    secret and the codes."""
    user, secret = connected_user
    codes = new_codes(client, user, secret, clock)
    begin_login(client, user)
    return user, secret, codes


# -- disabling ---------------------------------------------------------------------------------


def test_disable_with_a_right_code_removes_everything(
    app: Flask,
    client: FlaskClient,
    armed_user: tuple[TestUser, str, list[str]],
    clock: FakeClock,
) -> None:
    user, secret, _ = armed_user
    before = rows_of(app, user)
    assert len(before["credentials"]) == 1
    assert len(before["challenges"]) == 1
    assert len(before["recovery_codes"]) == 10

    response = disable(client, user, {"verificationCode": code_for(secret, clock)})

    assert response.status_code == 200, response.json
    assert response.json == {}
    assert client.get("/auth/2fa/status", headers=user.headers).json == {"connected": False}
    assert_nothing_left(app, user)
    assert_logs_in_with_the_password_alone(client, user)


def test_disable_with_a_recovery_code(
    app: Flask, client: FlaskClient, armed_user: tuple[TestUser, str, list[str]]
) -> None:
    user, _, codes = armed_user

    response = disable(client, user, {"recoveryCode": codes[4].lower().replace("-", "")})

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
    bob_secret = connect(client, bob, clock)
    new_codes(client, bob, bob_secret, clock)
    begin_login(client, bob)
    bob_before = rows_of(app, bob)

    response = disable(client, alice, {"verificationCode": code_for(alice_secret, clock)})

    assert response.status_code == 200
    assert rows_of(app, bob) == bob_before
    assert client.get("/auth/2fa/status", headers=bob.headers).json == {"connected": True}


def test_user_can_set_up_again_after_disabling(
    app: Flask, client: FlaskClient, armed_user: tuple[TestUser, str, list[str]], clock: FakeClock
) -> None:
    user, old_secret, old_codes = armed_user
    assert disable(client, user, {"recoveryCode": old_codes[0]}).status_code == 200

    new_secret = connect(client, user, clock)

    assert new_secret != old_secret
    assert client.get("/auth/2fa/status", headers=user.headers).json == {"connected": True}
    challenge_id = begin_login(client, user)
    # Nothing of the old credential counts: neither its recovery codes nor its secret.
    old_code = client.post(
        "/auth/2fa/challenge", json={"challengeId": challenge_id, "recoveryCode": old_codes[1]}
    )
    assert_error(old_code, 403, "INVALID_CODE")
    finished = client.post(
        "/auth/2fa/challenge",
        json={"challengeId": challenge_id, "verificationCode": code_for(new_secret, clock)},
    )
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
    before = rows_of(app, user)
    wrong = wrong_code(secret, clock) if proof == "verificationCode" else UNKNOWN_RECOVERY_CODE

    response = disable(client, user, {proof: wrong})

    assert_error(response, 403, "INVALID_CODE")
    assert rows_of(app, user) == before
    assert failures_of(app, user) == 1
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
    before = rows_of(app, user)

    assert_error(disable(client, user, {"verificationCode": code}), 403, "INVALID_CODE")
    assert_error(disable(client, user, {"recoveryCode": codes[0]}), 403, "INVALID_CODE")

    assert rows_of(app, user) == before
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
    before = rows_of(app, user)

    response = disable(client, user, body)

    assert_error(response, 400, "BAD_REQUEST")
    assert rows_of(app, user) == before
    assert failures_of(app, user) == 0


def test_disable_body_that_is_not_json_is_400(
    app: Flask, client: FlaskClient, armed_user: tuple[TestUser, str, list[str]]
) -> None:
    user, _, _ = armed_user
    before = rows_of(app, user)

    response = client.post(
        "/auth/2fa/disable",
        headers={**user.headers, "Content-Type": "application/json"},
        data="{not json",
    )

    assert_error(response, 400, "BAD_REQUEST")
    assert rows_of(app, user) == before


def test_disable_without_2fa_is_409(app: Flask, client: FlaskClient, user: TestUser) -> None:
    response = disable(client, user, {"verificationCode": "123456"})

    assert_error(response, 409, "NOT_CONNECTED")
    assert_nothing_left(app, user)


def test_disable_with_a_pending_setup_is_409_and_keeps_the_setup(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    setup = client.post("/auth/2fa", headers=user.headers).json
    before = rows_of(app, user)

    response = disable(client, user, {"verificationCode": code_for(setup["secret"], clock)})

    assert_error(response, 409, "NOT_CONNECTED")
    assert rows_of(app, user) == before
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
    before = rows_of(app, user)

    response = client.post(
        "/auth/2fa/disable", headers=headers, json={"verificationCode": code_for(secret, clock)}
    )

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer")
    assert rows_of(app, user) == before
    assert failures_of(app, user) == 0


# -- the administrator's CLI -------------------------------------------------------------------


def cli(app: Flask, *args: str, input: str | None = None) -> Result:
    result: Result = app.test_cli_runner().invoke(args=["ucloud-2fa", *args], input=input)
    return result


def test_cli_status_of_a_connected_user(
    app: Flask, armed_user: tuple[TestUser, str, list[str]]
) -> None:
    user, secret, codes = armed_user
    [(_, encrypted_secret, _, _)] = rows_of(app, user)["credentials"]

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
    bob_secret = connect(client, bob, clock)
    new_codes(client, bob, bob_secret, clock)
    bob_before = rows_of(app, bob)
    models = example_app.two_factor.models

    result = cli(app, "reset", str(user.id), "--yes")

    assert result.exit_code == 0, result.output
    assert str(user.id) in result.output
    assert secret not in result.output
    assert_nothing_left(app, user)
    assert rows_of(app, bob) == bob_before
    assert count(app, models.Credential) == 1
    assert count(app, models.RecoveryCode) == 10
    assert count(app, models.Challenge) == 0
    assert client.get("/auth/2fa/status", headers=user.headers).json == {"connected": False}
    assert_logs_in_with_the_password_alone(client, user)
    assert cli(app, "status", str(user.id)).output.endswith("has no 2FA credential.\n")


def test_cli_reset_of_a_pending_setup(app: Flask, client: FlaskClient, user: TestUser) -> None:
    client.post("/auth/2fa", headers=user.headers)

    result = cli(app, "reset", str(user.id), "--yes")

    assert result.exit_code == 0, result.output
    assert_nothing_left(app, user)


def test_user_sets_up_2fa_again_after_a_reset(
    app: Flask,
    client: FlaskClient,
    armed_user: tuple[TestUser, str, list[str]],
    clock: FakeClock,
) -> None:
    user, old_secret, old_codes = armed_user
    assert cli(app, "reset", str(user.id), "--yes").exit_code == 0

    new_secret = connect(client, user, clock)

    assert new_secret != old_secret
    assert client.get("/auth/2fa/status", headers=user.headers).json == {"connected": True}
    challenge_id = begin_login(client, user)
    stale = client.post(
        "/auth/2fa/challenge", json={"challengeId": challenge_id, "recoveryCode": old_codes[0]}
    )
    assert_error(stale, 403, "INVALID_CODE")
    finished = client.post(
        "/auth/2fa/challenge",
        json={"challengeId": challenge_id, "verificationCode": code_for(new_secret, clock)},
    )
    assert finished.status_code == 200
    assert set(finished.json) == TOKEN_KEYS


def test_cli_reset_ends_a_back_off(
    app: Flask, client: FlaskClient, armed_user: tuple[TestUser, str, list[str]], clock: FakeClock
) -> None:
    user, secret, _ = armed_user
    for _ in range(5):
        disable(client, user, {"verificationCode": wrong_code(secret, clock)})
    assert disable(client, user, {"verificationCode": "000000"}).status_code == 429

    assert cli(app, "reset", str(user.id), "--yes").exit_code == 0

    new_secret = connect(client, user, clock)
    status = cli(app, "status", str(user.id))
    assert "consecutive_failures: 0" in status.output.splitlines()
    assert "blocked_until" not in status.output
    allowed = disable(client, user, {"verificationCode": code_for(new_secret, clock)})
    assert allowed.status_code == 200


def test_cli_reset_asks_first(app: Flask, armed_user: tuple[TestUser, str, list[str]]) -> None:
    user, _, _ = armed_user
    before = rows_of(app, user)

    result = cli(app, "reset", str(user.id), input="n\n")

    assert result.exit_code != 0
    assert "Aborted" in result.output
    assert rows_of(app, user) == before


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
    before = rows_of(app, user)

    result = cli(app, "reset", "nobody", "--yes")

    assert result.exit_code != 0
    assert "User 'nobody' has no 2FA credential." in result.output
    assert rows_of(app, user) == before


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


def test_generated_key_works_as_the_encryption_key(app: Flask, tmp_path: Any) -> None:
    key = cli(app, "generate-key").output.strip()
    other = example_app.create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/generated-key.sqlite",
            "UCLOUD_2FA_ENCRYPTION_KEYS": [key],
        }
    )
    try:
        with other.app_context():
            box = example_app.two_factor.settings.box
            assert box.decrypt(box.encrypt("JBSWY3DPEHPK3PXP")) == "JBSWY3DPEHPK3PXP"
            assert Fernet(key).decrypt(box.encrypt("JBSWY3DPEHPK3PXP").encode()) == (
                b"JBSWY3DPEHPK3PXP"
            )
    finally:
        with other.app_context():
            db.session.remove()
            db.engine.dispose()
