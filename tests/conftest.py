"""Fixtures: the integrator app (``tests/integrator.py``) on SQLite and on PostgreSQL, a fake
clock, users with tokens.

PostgreSQL tests use ``UCLOUD_2FA_TEST_POSTGRESQL_URL`` (default: the local server) and run in a
database of their own, created for the run and dropped after it. Without a reachable server they
skip with a message, except under ``CI=true``, where a missing server fails the run.

Races (``@pytest.mark.race``, and every test on ``make_pg_app``) also run through pgbouncer in
transaction pooling mode, as production deployments do, in front of a PostgreSQL cluster of the
session's own (:mod:`clusters`), which fault tests may also stop and start.
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

from clusters import Cluster
from clusters import Pgbouncer
from clusters import engine_options
from clusters import pgbouncer
from clusters import private_cluster
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


@pytest.fixture(scope="session")
def cluster() -> Iterator[Cluster]:
    """The session's own PostgreSQL cluster, which a test may stop and start."""
    with private_cluster() as started:
        yield started


@pytest.fixture(scope="session")
def cluster_url(cluster: Cluster) -> str:
    """A database of its own on :func:`cluster`, connected to directly."""
    return cluster.create_database("faults")


@pytest.fixture(scope="session")
def pooler(cluster: Cluster) -> Iterator[Pgbouncer]:
    """pgbouncer in transaction pooling mode in front of :func:`cluster`."""
    with pgbouncer(cluster) as started:
        yield started


@pytest.fixture(scope="session")
def pgbouncer_url(cluster: Cluster, pooler: Pgbouncer) -> str:
    """A database of its own on :func:`cluster`, through pgbouncer."""
    cluster.create_database("pooled")
    return pooler.url("pooled")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "race: a race; on PostgreSQL it runs directly and through pgbouncer too"
    )


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """Each test that uses the database runs on SQLite and on PostgreSQL; a race also through
    pgbouncer."""
    if "database_url" in metafunc.fixturenames:
        databases = ["sqlite", "postgresql"]
        if metafunc.definition.get_closest_marker("race"):
            databases.append("pgbouncer")
        metafunc.parametrize("database_url", databases, indirect=True)


@pytest.fixture
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """The database of the test's parameter (see :func:`pytest_generate_tests`)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/test.sqlite"
    url: str = request.getfixturevalue(f"{request.param}_url")
    return url


@pytest.fixture(params=["postgresql", "pgbouncer"])
def race_url(request: pytest.FixtureRequest) -> str:
    """PostgreSQL for races: directly, and through pgbouncer."""
    url: str = request.getfixturevalue(f"{request.param}_url")
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
                "SQLALCHEMY_ENGINE_OPTIONS": engine_options(database_url),
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
def make_pg_app(race_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[MakeApp]:
    """Makes the integrator app on PostgreSQL (only, directly and through pgbouncer), with
    extra configuration, for races."""
    yield from _apps_on(race_url, tmp_path, clock)


@pytest.fixture
def pg_app(make_pg_app: MakeApp) -> Flask:
    """The integrator app on PostgreSQL (only, directly and through pgbouncer), for races."""
    return make_pg_app()


@pytest.fixture
def make_cluster_app(cluster_url: str, tmp_path: Path, clock: FakeClock) -> Iterator[MakeApp]:
    """Makes the integrator app on the session's own cluster, which the test may stop."""
    yield from _apps_on(cluster_url, tmp_path, clock)


@pytest.fixture(params=["cluster", "pgbouncer"])
def make_fault_app(
    request: pytest.FixtureRequest, tmp_path: Path, clock: FakeClock
) -> Iterator[MakeApp]:
    """Makes the integrator app on the session's own cluster, which the test may stop,
    directly and through pgbouncer."""
    yield from _apps_on(request.getfixturevalue(f"{request.param}_url"), tmp_path, clock)


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
