"""The example app ends a user's bearer tokens when what they were made with changes: an
administrator's reset, a password change, disabling 2FA; not when 2FA is turned on.

The browser sessions' side of the same events is in ``test_pages.py``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from example_app import db
from example_app.models import Token

from helpers import FakeClock
from helpers import assert_error
from helpers import cli
from helpers import code_for
from helpers import count
from helpers import credential_value
from helpers import me
from helpers import step_up

if TYPE_CHECKING:
    from helpers import TestUser


def live_tokens(app: Flask, user: TestUser) -> int:
    return count(
        app,
        Token,
        Token.access_token_revoked_at == 0,
        Token.refresh_token_revoked_at == 0,
        user_id=user.id,
    )


def test_turning_2fa_on_keeps_the_token_that_did_it(
    client: FlaskClient, password_token_user: tuple[TestUser, str]
) -> None:
    """UCloud's web client asks for the status with the enrolling token right after."""
    user, _ = password_token_user

    status = client.get("/auth/2fa/status", headers=user.headers)

    assert status.status_code == 200
    assert status.json == {"connected": True}
    assert me(client, user.token).status_code == 200


def test_an_administrators_reset_revokes_every_token_of_the_user(
    app: Flask,
    client: FlaskClient,
    password_token_user: tuple[TestUser, str],
    make_user: Callable[[str], TestUser],
    clock: FakeClock,
) -> None:
    user, secret = password_token_user
    password_token = user.token
    step_up(client, user, secret, clock)
    other = make_user("bob")

    result = cli(app, "reset", str(user.id), "--yes")

    assert result.exit_code == 0, result.output
    assert live_tokens(app, user) == 0
    for token in (password_token, user.token):
        assert me(client, token).status_code == 401
    assert me(client, other.token).status_code == 200
    # The password alone logs in again, with a new token.
    response = client.post(
        "/auth/login", json={"username": user.username, "password": user.password}
    )
    assert me(client, response.json["accessToken"]).status_code == 200


def test_disabling_2fa_revokes_every_other_token_of_the_user(
    app: Flask,
    client: FlaskClient,
    password_token_user: tuple[TestUser, str],
    make_user: Callable[[str], TestUser],
    clock: FakeClock,
) -> None:
    other = make_user("bob")
    user, secret = password_token_user
    password_token = user.token
    step_up(client, user, secret, clock)
    earlier = user.token
    step_up(client, user, secret, clock)

    response = client.post(
        "/auth/2fa/disable",
        headers=user.headers,
        json={"verificationCode": code_for(secret, clock)},
    )

    assert response.status_code == 200, response.json
    for token in (password_token, earlier):
        assert me(client, token).status_code == 401
    # The token that disabled 2FA, with a second-factor proof, keeps working.
    assert client.get("/auth/2fa/status", headers=user.headers).json == {"connected": False}
    assert live_tokens(app, user) == 1
    assert me(client, other.token).status_code == 200


def test_a_password_only_token_cannot_disable_2fa_or_make_recovery_codes(
    app: Flask, client: FlaskClient, password_token_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    """A token from before 2FA was turned on (or a stolen password's) reads the status but
    cannot lock the user out, and its attempt counts no failure."""
    user, secret = password_token_user

    for path in ("/auth/2fa/disable", "/auth/2fa/recovery-codes"):
        response = client.post(
            path, headers=user.headers, json={"verificationCode": code_for(secret, clock)}
        )
        assert_error(response, 401, "INSUFFICIENT_USER_AUTHENTICATION")

    assert credential_value(app, user.id, "connected")
    assert credential_value(app, user.id, "failures") == 0
    assert live_tokens(app, user) == 1
    assert client.get("/auth/2fa/status", headers=user.headers).json == {"connected": True}


def test_a_password_change_revokes_every_token_of_the_user(
    app: Flask, client: FlaskClient, user: TestUser, make_user: Callable[[str], TestUser]
) -> None:
    other = make_user("bob")

    result = app.test_cli_runner().invoke(
        args=["set-password", user.username, "--password", "new password"]
    )

    assert result.exit_code == 0, result.output
    assert result.output == "Changed the password of 'alice'; their logins have ended.\n"
    assert me(client, user.token).status_code == 401
    assert live_tokens(app, user) == 0
    assert me(client, other.token).status_code == 200
    old = client.post("/auth/login", json={"username": user.username, "password": user.password})
    assert old.status_code == 401
    new = client.post("/auth/login", json={"username": user.username, "password": "new password"})
    assert new.status_code == 200


def test_set_password_asks_for_the_password_twice(app: Flask, user: TestUser) -> None:
    result = app.test_cli_runner().invoke(
        args=["set-password", user.username], input="s3cret\ns3cret\n"
    )

    assert result.exit_code == 0, result.output
    assert "s3cret" not in result.output
    with app.app_context():
        stored = db.session.execute(select(Token.access_token_revoked_at)).scalar_one()
        assert stored != 0


def test_set_password_of_an_unknown_user_is_refused(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    result = app.test_cli_runner().invoke(args=["set-password", "mallory", "--password", "x"])

    assert result.exit_code != 0
    assert "Error: There is no user 'mallory'." in result.output
    assert me(client, user.token).status_code == 200
