"""Fixtures for the example app's tests: the example app (``example_app/``) instead of the
integrator app, on SQLite and on PostgreSQL, in the test's own instance folder.

``database_url``, ``postgresql_url`` and ``connected_user`` come from ``tests/conftest.py``.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash

import example_app
from example_app import create_app
from example_app import db
from example_app.models import User

from helpers import FAST_HASH
from helpers import FakeClock
from helpers import TestUser

# pytest-flask's fixtures keep a request context pushed: one for the whole test, and the last
# request's in its ``client``. A request then reuses that app context and its ``g``, where
# Flask-Login keeps the request's user, so one browser's login would leak into another's
# requests. Here each request has contexts of its own, as in a server.


@pytest.fixture(autouse=True)
def _push_request_context() -> None:
    """Overrides pytest-flask's fixture of that name: no request context for the whole test."""


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    """A browser: a test client that keeps no context after its requests."""
    return app.test_client()


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    """The clock of the example app's extension, moved by hand.

    The example's ``TwoFactor`` is made once, at import, with the real clock, as an app's is;
    the tests replace its ``clock`` for the test's duration.
    """
    fake = FakeClock()
    monkeypatch.setattr(example_app.two_factor, "clock", fake)
    return fake


def example_app_on(database_url: str, instance_path: Path, **config: Any) -> Flask:
    """The example app on a clean database; PostgreSQL gets a pool big enough for every racing
    thread."""
    return create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": (
                {"pool_size": 20} if database_url.startswith("postgresql") else {}
            ),
            **config,
        },
        instance_path=str(instance_path),
    )


def drop_example_app(app: Flask) -> None:
    with app.app_context():
        db.session.remove()
        db.drop_all()
        db.engine.dispose()


@pytest.fixture
def app(
    request: pytest.FixtureRequest, database_url: str, tmp_path: Path, clock: FakeClock
) -> Iterator[Flask]:
    """The example app on a clean database.

    ``@pytest.mark.app_config(KEY=value, ...)`` on a test adds to its configuration.
    """
    marker = request.node.get_closest_marker("app_config")
    app = example_app_on(database_url, tmp_path, **(marker.kwargs if marker else {}))
    yield app
    drop_example_app(app)


@pytest.fixture
def make_user(app: Flask, client: FlaskClient) -> Callable[[str], TestUser]:
    """Create a user and log in with the password; the user has a bearer token."""

    def make(username: str) -> TestUser:
        password = secrets.token_urlsafe(12)
        with app.app_context():
            # A cheap hash: the example's scrypt would cost 0.3 s per user and login here.
            user = User(
                username=username, password_hash=generate_password_hash(password, FAST_HASH)
            )
            db.session.add(user)
            db.session.commit()
            user_id = user.id
        response = client.post("/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.json
        return TestUser(user_id, username, password, response.json["accessToken"])

    return make


@pytest.fixture
def user(make_user: Callable[[str], TestUser]) -> TestUser:
    return make_user("alice")
