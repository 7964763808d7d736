"""``GET /auth/2fa/status``: whether the token's user has a connected credential, nothing else."""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import update

from flask_ucloud_2fa import TwoFactor

from helpers import FakeClock
from helpers import answer
from helpers import wrong_code
from integrator import Integrator

if TYPE_CHECKING:
    # Imported for annotations only: a module-level Test* class would be collected by pytest.
    from helpers import TestUser


@pytest.mark.parametrize("setup", ["none", "pending", "pending-after-a-wrong-answer"])
def test_user_without_a_confirmed_setup_is_not_connected(
    client: FlaskClient, user: TestUser, clock: FakeClock, setup: str
) -> None:
    if setup != "none":
        created = client.post("/auth/2fa", headers=user.headers)
        assert created.status_code == 200
    if setup == "pending-after-a-wrong-answer":
        wrong = answer(
            client,
            created.json["challengeId"],
            wrong_code(created.json["secret"], clock),
            user.headers,
        )
        assert wrong.status_code == 403

    response = client.get("/auth/2fa/status", headers=user.headers)
    assert response.status_code == 200
    assert response.json == {"connected": False}


def test_connected_user_is_connected(
    client: FlaskClient, connected_user: tuple[TestUser, str]
) -> None:
    user, secret = connected_user
    response = client.get("/auth/2fa/status", headers=user.headers)
    assert response.status_code == 200
    assert response.json == {"connected": True}
    assert secret not in response.get_data(as_text=True)


def test_status_is_per_user(
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    make_user: Callable[[str], TestUser],
) -> None:
    other = make_user("bob")
    response = client.get("/auth/2fa/status", headers=other.headers)
    assert response.status_code == 200
    assert response.json == {"connected": False}


def test_status_is_not_cached(client: FlaskClient, user: TestUser) -> None:
    response = client.get("/auth/2fa/status", headers=user.headers)
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.mimetype == "application/json"


def _headers_for(app: Flask, integrator: Integrator, user: TestUser, token: str) -> dict[str, str]:
    """The request headers of a request with ``token``: absent, unknown, revoked or expired."""
    if token == "absent":
        return {}
    if token == "unknown":
        return {"Authorization": f"Bearer {secrets.token_urlsafe(32)}"}
    values = {
        "revoked": {"access_token_revoked_at": int(time.time())},
        "expired": {"issued_at": 1, "expires_in": 1},
    }[token]
    token_model, db = integrator.Token, integrator.db
    with app.app_context():
        db.session.execute(
            update(token_model).where(token_model.access_token == user.token).values(**values)
        )
        db.session.commit()
    return user.headers


@pytest.mark.parametrize(
    ("token", "error_code"),
    [
        ("absent", "MISSING_AUTHORIZATION"),
        ("unknown", "INVALID_TOKEN"),
        ("revoked", "INVALID_TOKEN"),
        ("expired", "INVALID_TOKEN"),
    ],
)
def test_status_without_a_valid_token_is_401(
    app: Flask,
    integrator: Integrator,
    client: FlaskClient,
    user: TestUser,
    token: str,
    error_code: str,
) -> None:
    response = client.get("/auth/2fa/status", headers=_headers_for(app, integrator, user, token))
    assert response.status_code == 401
    body = response.json
    assert set(body) == {"statusCode", "why", "errorCode"}
    assert body["statusCode"] == 401
    assert body["errorCode"] == error_code
    assert isinstance(body["why"], str) and body["why"]
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer")
    assert response.headers["Cache-Control"] == "no-store"


def test_status_of_a_connected_user_without_a_token_says_nothing(
    client: FlaskClient, connected_user: tuple[TestUser, str]
) -> None:
    response = client.get("/auth/2fa/status")
    assert response.status_code == 401
    assert set(response.json) == {"statusCode", "why", "errorCode"}
    assert response.headers["WWW-Authenticate"].lower().startswith("bearer")


@pytest.mark.parametrize("arguments", [{}, {"user_id": 1, "token": object()}])
def test_is_connected_takes_a_user_id_or_a_token(
    app: Flask, two_factor: TwoFactor, arguments: dict[str, Any]
) -> None:
    with app.app_context(), pytest.raises(ValueError, match="either a user id or token=..."):
        two_factor.is_connected(**arguments)
