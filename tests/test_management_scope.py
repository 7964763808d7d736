"""Who may manage the second factor: tokens meant for it (UCLOUD_2FA_MANAGEMENT_SCOPE), and,
to turn it off or see new recovery codes, a login that used it. A refusal checks no proof and
counts no failure."""

from __future__ import annotations

import secrets
import time
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from helpers import FakeClock
from helpers import TestUser
from helpers import add_user
from helpers import assert_error
from helpers import bearer
from helpers import begin_login
from helpers import code_for
from helpers import connect
from helpers import credential_value
from helpers import failures_of
from helpers import stored_hashes
from integrator import integrator_of

SCOPE = "ucloud-2fa"


def third_party_token(app: Flask, user: TestUser, scope: str = "openid profile") -> str:
    """A valid token of ``user`` that an OAuth client got: not meant for managing 2FA."""
    parts = integrator_of(app)
    access_token = secrets.token_urlsafe(32)
    with app.app_context():
        parts.db.session.add(
            parts.Token(
                user_id=user.id,
                client_id="third-party",
                token_type="Bearer",  # nosec B106 - a token type, not a password
                access_token=access_token,
                scope=scope,
                issued_at=int(time.time()),
                expires_in=3600,
                amr="pwd otp",
            )
        )
        parts.db.session.commit()
    return access_token


@pytest.mark.app_config(UCLOUD_2FA_MANAGEMENT_SCOPE=SCOPE)
def test_a_token_without_the_management_scope_cannot_set_up(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    other = bearer(third_party_token(app, user))

    assert_error(client.post("/auth/2fa", headers=other), 403, "INSUFFICIENT_SCOPE")
    # It still reads the status, and the app's own token still sets up.
    assert client.get("/auth/2fa/status", headers=other).json == {"connected": False}
    assert client.post("/auth/2fa", headers=user.headers).status_code == 200


@pytest.mark.app_config(UCLOUD_2FA_MANAGEMENT_SCOPE=SCOPE)
def test_a_token_without_the_management_scope_cannot_confirm_a_setup(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    setup = client.post("/auth/2fa", headers=user.headers).json
    body = {
        "challengeId": setup["challengeId"],
        "verificationCode": code_for(setup["secret"], clock),
    }

    refused = client.post(
        "/auth/2fa/challenge", headers=bearer(third_party_token(app, user)), json=body
    )

    assert_error(refused, 403, "INSUFFICIENT_SCOPE")
    assert credential_value(app, user.id, "connected") is False
    assert failures_of(app, user.id) == 0


@pytest.mark.app_config(UCLOUD_2FA_MANAGEMENT_SCOPE=SCOPE)
@pytest.mark.parametrize("path", ["/auth/2fa/disable", "/auth/2fa/recovery-codes"])
def test_a_token_without_the_management_scope_cannot_disable_or_fail_for_the_user(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    path: str,
) -> None:
    user, secret = connected_user
    other = bearer(third_party_token(app, user))

    for _ in range(3):  # wrong codes: a lock-out for the user, were they counted
        refused = client.post(path, headers=other, json={"verificationCode": "000000"})
        assert_error(refused, 403, "INSUFFICIENT_SCOPE")

    assert failures_of(app, user.id) == 0
    assert credential_value(app, user.id, "connected") is True
    right = client.post(
        path, headers=user.headers, json={"verificationCode": code_for(secret, clock)}
    )
    assert right.status_code == 200, right.json


@pytest.mark.parametrize("path", ["/auth/2fa/disable", "/auth/2fa/recovery-codes"])
def test_disabling_and_new_codes_need_a_login_that_used_the_second_factor(
    app: Flask,
    client: FlaskClient,
    password_token_user: tuple[TestUser, str],
    clock: FakeClock,
    path: str,
) -> None:
    user, secret = password_token_user  # the token of a password login from before 2FA

    refused = client.post(
        path, headers=user.headers, json={"verificationCode": code_for(secret, clock)}
    )

    assert_error(refused, 401, "INSUFFICIENT_USER_AUTHENTICATION")
    assert 'error="insufficient_user_authentication"' in refused.headers["WWW-Authenticate"]
    assert failures_of(app, user.id) == 0
    assert credential_value(app, user.id, "connected") is True
    assert stored_hashes(app, user.id) == []


def test_the_status_and_login_answers_need_no_management_scope(
    make_app: Any, clock: FakeClock
) -> None:
    app = make_app({"UCLOUD_2FA_MANAGEMENT_SCOPE": SCOPE})
    client = app.test_client()
    user = add_user(app)
    secret = connect(client, user.headers, clock)
    other = bearer(third_party_token(app, user, scope="openid"))
    assert client.get("/auth/2fa/status", headers=other).json == {"connected": True}
    answered = client.post(
        "/auth/2fa/challenge",
        json={
            "challengeId": begin_login(client, user),
            "verificationCode": code_for(secret, clock),
        },
    )
    assert answered.status_code == 200, answered.json


@pytest.mark.parametrize("value", ["two scopes", " padded", 7])
def test_the_management_scope_is_one_scope(make_app: Any, value: Any) -> None:
    with pytest.raises(ValueError, match="UCLOUD_2FA_MANAGEMENT_SCOPE must be one OAuth scope"):
        make_app({"UCLOUD_2FA_MANAGEMENT_SCOPE": value})
