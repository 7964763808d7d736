"""The example auth server: its CLI, its password login, its protected resource, its config."""

from __future__ import annotations

import hashlib
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

import example_app
from example_app import create_app
from example_app import db
from example_app.models import Token
from example_app.models import User

from helpers import FakeClock
from helpers import bearer
from helpers import code_for
from helpers import count

if TYPE_CHECKING:
    # Imported for annotations only: a module-level Test* class would be collected by pytest.
    from helpers import TestUser

INVALID_CREDENTIALS = {
    "statusCode": 401,
    "why": "Incorrect username or password.",
    "errorCode": "INVALID_CREDENTIALS",
}
BAD_LOGIN_BODY = {
    "statusCode": 400,
    "why": "Send username and password, as a JSON object or form fields.",
    "errorCode": "BAD_REQUEST",
}


# -- flask create-user -------------------------------------------------------------------------


def test_create_user_makes_a_user_who_can_log_in(app: Flask, client: FlaskClient) -> None:
    result = app.test_cli_runner().invoke(args=["create-user", "carol", "--password", "s3cret"])

    assert result.exit_code == 0, result.output
    assert result.output == "Created user 'carol'.\n"
    assert count(app, User, username="carol") == 1
    response = client.post("/auth/login", json={"username": "carol", "password": "s3cret"})
    assert response.status_code == 200
    assert set(response.json) == {"accessToken", "csrfToken", "refreshToken", "expiresAt"}


def test_create_user_asks_for_the_password_twice(app: Flask, client: FlaskClient) -> None:
    result = app.test_cli_runner().invoke(args=["create-user", "carol"], input="s3cret\ns3cret\n")

    assert result.exit_code == 0, result.output
    assert "Created user 'carol'." in result.output
    assert "s3cret" not in result.output
    response = client.post("/auth/login", json={"username": "carol", "password": "s3cret"})
    assert response.status_code == 200


def test_create_user_twice_is_refused(app: Flask, client: FlaskClient) -> None:
    runner = app.test_cli_runner()
    first = runner.invoke(args=["create-user", "carol", "--password", "first"])
    assert first.exit_code == 0, first.output

    second = runner.invoke(args=["create-user", "carol", "--password", "second"])

    assert second.exit_code != 0
    assert "already exists" in second.output
    assert count(app, User, username="carol") == 1
    # The first password still works; the second was never stored.
    ok = client.post("/auth/login", json={"username": "carol", "password": "first"})
    assert ok.status_code == 200
    refused = client.post("/auth/login", json={"username": "carol", "password": "second"})
    assert refused.status_code == 401


# -- flask delete-user -------------------------------------------------------------------------


def test_delete_user_deletes_their_tokens_and_2fa(
    app: Flask,
    client: FlaskClient,
    make_user: Any,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
) -> None:
    user, secret = connected_user
    other = make_user("bob")
    models = example_app.two_factor.models
    recovery = client.post(
        "/auth/2fa/recovery-codes",
        headers=user.headers,
        json={"verificationCode": code_for(secret, clock)},
    )
    assert recovery.status_code == 200, recovery.json
    pending = client.post(
        "/auth/login", json={"username": user.username, "password": user.password}
    )
    assert set(pending.json) == {"2fa"}
    assert count(app, models.Credential, user_id=user.id) == 1
    assert count(app, models.Challenge, user_id=user.id) >= 1
    assert count(app, models.RecoveryCode) == 10

    result = app.test_cli_runner().invoke(args=["delete-user", user.username])

    assert result.exit_code == 0, result.output
    assert result.output == "Deleted user 'alice'.\n"
    # The database's foreign keys cascaded: nothing of the user is left.
    assert count(app, User, id=user.id) == 0
    assert count(app, Token, user_id=user.id) == 0
    assert count(app, models.Credential, user_id=user.id) == 0
    assert count(app, models.Challenge, user_id=user.id) == 0
    assert count(app, models.RecoveryCode) == 0
    assert client.get("/api/me", headers=user.headers).status_code == 401
    # Someone else's account is untouched.
    assert count(app, User, id=other.id) == 1
    assert client.get("/api/me", headers=other.headers).status_code == 200


def test_delete_user_of_an_unknown_name_is_refused(app: Flask, user: TestUser) -> None:
    result = app.test_cli_runner().invoke(args=["delete-user", "mallory"])

    assert result.exit_code != 0
    assert "Error: There is no user 'mallory'." in result.output
    assert count(app, User) == 1


# -- POST /auth/login --------------------------------------------------------------------------


@pytest.mark.parametrize("who", ["wrong-password", "unknown-user"])
def test_bad_credentials_are_401(
    app: Flask, client: FlaskClient, user: TestUser, who: str
) -> None:
    tokens_before = count(app, Token)
    body = (
        {"username": user.username, "password": user.password + "x"}
        if who == "wrong-password"
        else {"username": "mallory", "password": user.password}
    )

    response = client.post("/auth/login", json=body)

    assert response.status_code == 401
    assert response.json == INVALID_CREDENTIALS
    assert count(app, Token) == tokens_before


@pytest.mark.parametrize(
    "request_kwargs",
    [
        {"data": "not json", "content_type": "text/plain"},
        {"data": "{not json", "content_type": "application/json"},
        {"json": ["alice", "x"]},
        {"json": "alice"},
        {"json": None},
        {"json": {}},
        {"json": {"username": "alice"}},
        {"json": {"password": "x"}},
        {"json": {"username": 1, "password": "x"}},
        {"json": {"username": "alice", "password": 1}},
        {"json": {"username": "alice", "password": None}},
        {"json": {"username": ["alice"], "password": "x"}},
        {"json": {"username": "alice", "password": {"x": 1}}},
    ],
    ids=[
        "text",
        "broken-json",
        "array",
        "string",
        "null",
        "empty-object",
        "no-password",
        "no-username",
        "integer-username",
        "integer-password",
        "null-password",
        "array-username",
        "object-password",
    ],
)
def test_bad_login_bodies_are_400(
    app: Flask, client: FlaskClient, user: TestUser, request_kwargs: dict[str, Any]
) -> None:
    tokens_before = count(app, Token)

    response = client.post("/auth/login", **request_kwargs)

    assert response.status_code == 400
    assert response.json == BAD_LOGIN_BODY
    assert count(app, Token) == tokens_before


def test_the_token_table_holds_only_hashes_of_the_login_tokens(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    response = client.post(
        "/auth/login", json={"username": user.username, "password": user.password}
    )
    issued = [response.json["accessToken"], response.json["refreshToken"], user.token]

    with app.app_context():
        rows = db.session.execute(select(Token.access_token, Token.refresh_token)).all()
    stored = {value for row in rows for value in row}

    assert not set(issued) & stored
    assert {hashlib.sha256(token.encode()).hexdigest() for token in issued} <= stored
    assert client.get("/api/me", headers=bearer(response.json["accessToken"])).status_code == 200
    for hashed in stored:
        assert client.get("/api/me", headers=bearer(hashed)).status_code == 401


def test_login_tokens_carry_the_scope_that_manages_2fa(app: Flask, user: TestUser) -> None:
    assert app.config["UCLOUD_2FA_MANAGEMENT_SCOPE"] == "ucloud-2fa"
    with app.app_context():
        assert db.session.execute(select(Token.scope)).scalar_one() == "ucloud-2fa"


def test_login_answers_are_not_cached(
    client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    login = {"username": user.username, "password": user.password}

    challenge = client.post("/auth/login", json=login)
    tokens = client.post(
        "/auth/2fa/challenge",
        json={"challengeId": challenge.json["2fa"], "verificationCode": code_for(secret, clock)},
    )
    refused = client.post("/auth/login", json={**login, "password": "wrong"})

    assert set(tokens.json) == {"accessToken", "csrfToken", "refreshToken", "expiresAt"}
    for response in (challenge, tokens, refused):
        assert response.headers["Cache-Control"] == "no-store"


def test_a_login_without_2fa_is_not_cached(client: FlaskClient, user: TestUser) -> None:
    response = client.post(
        "/auth/login", json={"username": user.username, "password": user.password}
    )

    assert "accessToken" in response.json
    assert response.headers["Cache-Control"] == "no-store"


# -- GET /api/me -------------------------------------------------------------------------------


def test_me_without_a_token_is_401(client: FlaskClient, user: TestUser) -> None:
    response = client.get("/api/me")

    assert response.status_code == 401
    assert response.json["error"] == "missing_authorization"
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer ")


@pytest.mark.parametrize("authorization", ["Bearer not-a-token", "Bearer ", "Basic YWxpY2U6eA=="])
def test_me_with_a_bad_token_is_401(
    client: FlaskClient, user: TestUser, authorization: str
) -> None:
    response = client.get("/api/me", headers={"Authorization": authorization})

    assert response.status_code == 401
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer ")


def test_me_with_a_token(client: FlaskClient, user: TestUser) -> None:
    response = client.get("/api/me", headers=user.headers)

    assert response.status_code == 200
    assert response.json["username"] == "alice"
    assert response.json["amr"] == ["pwd"]


# -- the SQLite file ---------------------------------------------------------------------------


def test_the_sqlite_file_is_readable_by_its_owner_only(tmp_path: Path) -> None:
    """It holds password hashes and 2FA secrets, like the key files beside it (0600)."""
    app = create_app(
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/fresh.sqlite"},
        instance_path=str(tmp_path),
    )
    with app.app_context():
        db.session.add(User(username="erin", password_hash="x"))
        db.session.commit()
        for name in ("fresh.sqlite", "fresh.sqlite-wal", "fresh.sqlite-shm"):
            path = tmp_path / name
            assert stat.S_IMODE(path.stat().st_mode) == 0o600, name
        assert stat.S_IMODE((tmp_path / "secret_key").stat().st_mode) == 0o600
        db.session.remove()
        db.engine.dispose()


def test_an_older_sqlite_file_is_made_private(tmp_path: Path) -> None:
    path = tmp_path / "older.sqlite"
    path.touch(mode=0o644)
    path.chmod(0o644)

    app = create_app({"SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}"}, instance_path=str(tmp_path))
    with app.app_context():
        db.engine.dispose()

    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# -- configuration from the environment --------------------------------------------------------


@pytest.fixture
def env_app(monkeypatch: pytest.MonkeyPatch, tmp_path: os.PathLike[str]) -> Iterator[Flask]:
    """The example app configured only by ``FLASK_*`` environment variables."""
    monkeypatch.setenv("FLASK_UCLOUD_2FA_ISSUER", "Env Issuer")
    monkeypatch.setenv("FLASK_SQLALCHEMY_DATABASE_URI", f"sqlite:///{tmp_path}/env.sqlite")
    app = create_app(instance_path=str(tmp_path))
    yield app
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


def test_config_comes_from_the_environment(env_app: Flask, tmp_path: os.PathLike[str]) -> None:
    assert env_app.config["UCLOUD_2FA_ISSUER"] == "Env Issuer"
    assert env_app.config["SQLALCHEMY_DATABASE_URI"] == f"sqlite:///{tmp_path}/env.sqlite"
    assert os.path.exists(os.path.join(tmp_path, "env.sqlite"))
    with env_app.app_context():
        user = User(username="erin")
        user.set_password("pw")
        db.session.add(user)
        db.session.commit()
    client = env_app.test_client()
    login = client.post("/auth/login", json={"username": "erin", "password": "pw"})
    assert login.status_code == 200
    headers = {"Authorization": f"Bearer {login.json['accessToken']}"}

    setup = client.post("/auth/2fa", headers=headers)

    assert setup.status_code == 200
    assert setup.json["otpAuthUri"] == (
        f"otpauth://totp/Env%20Issuer:erin?secret={setup.json['secret']}&issuer=Env%20Issuer"
        "&algorithm=SHA1&digits=6&period=30"
    )
