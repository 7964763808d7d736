"""Fixtures: the integrator app (``tests/integrator.py``) on SQLite and on PostgreSQL, a fake
clock, users with tokens.

PostgreSQL tests use ``UCLOUD_2FA_TEST_POSTGRESQL_URL`` (default: the local server) and run in a
database of their own, created for the run and dropped after it. Without a reachable server they
skip with a message, except under ``CI=true``, where a missing server fails the run.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import Callable
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from cryptography.fernet import Fernet
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import create_engine
from sqlalchemy import make_url
from sqlalchemy import text
from sqlalchemy.exc import OperationalError

from flask_ucloud_2fa import TwoFactor

from helpers import FakeClock
from helpers import TestUser
from helpers import add_user
from helpers import connect
from helpers import connect_and_step_up
from helpers import require_service
from integrator import Integrator
from integrator import create_app
from integrator import integrator_of

POSTGRESQL_URL = os.environ.get(
    "UCLOUD_2FA_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
#: The encryption key of every app of the run, unless a test configures its own.
ENCRYPTION_KEY = Fernet.generate_key().decode()

MakeApp = Callable[..., Flask]


@pytest.fixture(scope="session")
def postgresql_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this run, dropped at the end."""
    admin = create_engine(POSTGRESQL_URL, isolation_level="AUTOCOMMIT")
    try:
        connection = admin.connect()
    except OperationalError as error:
        admin.dispose()
        require_service(f"PostgreSQL is not reachable at {POSTGRESQL_URL}: {error.orig}")
    name = f"ucloud_2fa_test_{secrets.token_hex(6)}"
    connection.execute(text(f'CREATE DATABASE "{name}"'))
    try:
        yield make_url(POSTGRESQL_URL).set(database=name).render_as_string(hide_password=False)
    finally:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.close()
        admin.dispose()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test that uses the database runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/test.sqlite"
    url: str = request.getfixturevalue("postgresql_url")
    return url


@pytest.fixture
def clock() -> FakeClock:
    """The extension's clock in the test's apps: moved by hand, 5 s into a TOTP time step."""
    return FakeClock()


def _apps_on(database_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[MakeApp]:
    """Makes integrator apps on one clean database; drops their tables at the end."""
    apps: list[Flask] = []

    def make(config: dict[str, Any] | None = None, **options: Any) -> Flask:
        """An app with extra ``config``; ``options`` go to the factory (``user_table=``)."""
        app = create_app(
            {
                "TESTING": True,
                "SQLALCHEMY_DATABASE_URI": database_url,
                # PostgreSQL gets a pool big enough for every racing thread.
                "SQLALCHEMY_ENGINE_OPTIONS": (
                    {"pool_size": 20} if database_url.startswith("postgresql") else {}
                ),
                "UCLOUD_2FA_ISSUER": "Test Auth Server",
                "UCLOUD_2FA_ENCRYPTION_KEYS": [ENCRYPTION_KEY],
                **(config or {}),
            },
            instance_path=str(tmp_path),
            clock=options.pop("clock", clock),
            **options,
        )
        apps.append(app)
        return app

    yield make
    for app in reversed(apps):
        db = integrator_of(app).db
        with app.app_context():
            db.session.remove()
            db.drop_all()
            db.engine.dispose()


@pytest.fixture
def make_app(database_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[MakeApp]:
    """``make_app(config=None, *, user_table=...)``: integrator apps on the test's database,
    as separate processes would run them."""
    yield from _apps_on(database_url, tmp_path, clock)


@pytest.fixture
def make_sqlite_app(tmp_path: Path, clock: FakeClock) -> Iterator[MakeApp]:
    """Makes the integrator app on SQLite (only), for tests the database does not matter to."""
    yield from _apps_on(f"sqlite:///{tmp_path}/sqlite-only.sqlite", tmp_path, clock)


@pytest.fixture
def app(request: pytest.FixtureRequest, make_app: MakeApp) -> Flask:
    """The integrator app on a clean database.

    ``@pytest.mark.app_config(KEY=value, ...)`` on a test adds to its configuration.
    """
    marker = request.node.get_closest_marker("app_config")
    return make_app(marker.kwargs if marker else None)


@pytest.fixture
def make_pg_app(postgresql_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[MakeApp]:
    """Makes the integrator app on PostgreSQL (only), with extra configuration, for races."""
    yield from _apps_on(postgresql_url, tmp_path, clock)


@pytest.fixture
def pg_app(make_pg_app: MakeApp) -> Flask:
    """The integrator app on PostgreSQL (only), for races."""
    return make_pg_app()


@pytest.fixture
def integrator(app: Flask) -> Integrator:
    """The app's parts: ``db``, ``User``, ``Token``, ``two_factor``, ``finish_login``."""
    return integrator_of(app)


@pytest.fixture
def db(integrator: Integrator) -> Any:
    return integrator.db


@pytest.fixture
def two_factor(integrator: Integrator) -> TwoFactor:
    """The app's extension."""
    return integrator.two_factor


@pytest.fixture
def make_user(app: Flask) -> Callable[[str], TestUser]:
    """Create a user and log in with the password; the user has a bearer token."""
    return lambda username: add_user(app, username)


@pytest.fixture
def user(make_user: Callable[[str], TestUser]) -> TestUser:
    return make_user("alice")


@pytest.fixture
def connected_user(client: FlaskClient, user: TestUser, clock: FakeClock) -> tuple[TestUser, str]:
    """``user`` with 2FA connected, and a token from a login that used it (as disabling and
    new recovery codes need); returns the user and the TOTP secret.

    The clock has moved on past every code used, so none is reusable.
    """
    return user, connect_and_step_up(client, user, clock)


@pytest.fixture
def password_token_user(
    client: FlaskClient, user: TestUser, clock: FakeClock
) -> tuple[TestUser, str]:
    """``user`` with 2FA connected who still holds the token of their password login from
    before: a token whose login did not use the second factor. The user and the secret."""
    return user, connect(client, user.headers, clock)
