"""Fixtures for the example app's tests: the example app (``example_app/``) instead of the
integrator app, on SQLite and on PostgreSQL, in the test's own instance folder.

``database_url``, ``postgresql_url`` and ``connected_user`` come from ``tests/conftest.py``.
The browser tests' fixtures are here too: the example app over HTTP (``server``, one per test
module), Chromium (``browser``) and a ``page`` of its own per test.
"""

from __future__ import annotations

import os
import secrets
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash
from werkzeug.serving import make_server

import example_app
from example_app import create_app
from example_app import db
from example_app.models import User

from clusters import engine_options
from helpers import CHROMIUM
from helpers import FAST_HASH
from helpers import FakeClock
from helpers import Server
from helpers import TestUser
from helpers import free_port
from helpers import require_service

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
    """The example app on a clean database, with the tests' engine options (a pool big enough
    for every racing thread; through pgbouncer, no server-side prepared statements)."""
    return create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": engine_options(database_url),
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
def cluster_app(cluster_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[Flask]:
    """The example app on the session's own PostgreSQL cluster, which the test may stop."""
    app = example_app_on(cluster_url, tmp_path)
    yield app
    drop_example_app(app)


@pytest.fixture
def pooled_app(
    pgbouncer_url: str, tmp_path: Path, clock: FakeClock, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Flask]:
    """The example app behind pgbouncer in transaction mode, told so by its environment as a
    deployment tells it (``FLASK_DATABASE_TRANSACTION_POOLING=true``), with a pool of two
    connections, so that each runs the same statements many times."""
    monkeypatch.setenv("FLASK_DATABASE_TRANSACTION_POOLING", "true")
    engine = {"pool_size": 2, "max_overflow": 0}
    app = example_app_on(pgbouncer_url, tmp_path, SQLALCHEMY_ENGINE_OPTIONS=engine)
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


# -- the browser tests: the example app over HTTP on 127.0.0.1, and Chromium ------------------


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """The example app on a fresh SQLite database with a user, served by a threaded HTTP server
    on a free port, its extension on a fake clock; one per test module."""
    workdir = tmp_path_factory.mktemp("browser")
    callback = f"http://127.0.0.1:{free_port()}/callback"
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    app = create_app(
        {
            "SQLALCHEMY_DATABASE_URI": f"sqlite:///{workdir}/browser.sqlite",
            "SECRET_KEY": secrets.token_urlsafe(32),
            "UCLOUD_2FA_ENCRYPTION_KEYS": [Fernet.generate_key().decode()],
            "OAUTH_DEMO_REDIRECT_URIS": [callback],
            "OAUTH_JWT_KEY_PEM": key.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            ).decode(),
        },
        instance_path=str(workdir),
    )
    username, password = "alice", secrets.token_urlsafe(12)
    with app.app_context():
        user = User(username=username)
        user.set_password(password)
        db.session.add(user)
        db.session.commit()
    # Near the real time, so the ID token's times stay plausible.
    clock = FakeClock(now=time.time() // 30 * 30 + 5)
    real_clock, example_app.two_factor.clock = example_app.two_factor.clock, clock
    http = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield Server(f"http://127.0.0.1:{http.server_port}", callback, username, password, clock)
    finally:
        http.shutdown()
        thread.join(timeout=10)
        example_app.two_factor.clock = real_clock
        with app.app_context():
            db.engine.dispose()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Chromium, driven by Playwright."""
    if not os.path.exists(CHROMIUM):
        require_service(f"Chromium is not installed at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-quic",
                "--no-first-run",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
            ],
        )
        yield chromium
        chromium.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A page in a browser context of its own: no cookie of another test."""
    context = browser.new_context()
    page = context.new_page()
    yield page
    context.close()
