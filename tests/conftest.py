"""Fixtures: the example app on SQLite and on PostgreSQL, a fake clock, users with tokens.

PostgreSQL tests use ``UCLOUD_2FA_TEST_POSTGRESQL_URL`` (default: the local server) and run in a
database of their own, created for the run and dropped after it. Without a reachable server they
skip with a message, except under ``CI=true``, where a missing server fails the run.
"""

from __future__ import annotations

import os
import secrets
import threading
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import pyotp
import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import Engine
from sqlalchemy import create_engine
from sqlalchemy import event
from sqlalchemy import make_url
from sqlalchemy import text
from sqlalchemy.exc import OperationalError
from werkzeug.security import generate_password_hash

import example_app
from example_app import create_app
from example_app import db as example_db
from example_app.models import User

POSTGRESQL_URL = os.environ.get(
    "UCLOUD_2FA_TEST_POSTGRESQL_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
)
IN_CI = os.environ.get("CI") == "true"
FAST_HASH = "pbkdf2:sha256:1"


def require_service(reason: str) -> None:
    """Skip for a missing service on a developer's machine; fail under ``CI=true``."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: nothing may be skipped)", pytrace=False)
    pytest.skip(reason)


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
def database_url(request: pytest.FixtureRequest, tmp_path: os.PathLike[str]) -> str:
    """Each test that uses the database runs once on SQLite and once on PostgreSQL."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path}/test.sqlite"
    url: str = request.getfixturevalue("postgresql_url")
    return url


@dataclass
class FakeClock:
    """A clock the tests move by hand; starts 5 s into a TOTP time step."""

    now: float

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> FakeClock:
    fake = FakeClock(now=1_800_000_000 - 1_800_000_000 % 30 + 5)
    monkeypatch.setattr(example_app.two_factor, "clock", fake)
    return fake


def example_app_on(database_url: str, **config: Any) -> Flask:
    """The example app on a clean database, for tests; PostgreSQL gets a pool big enough for
    every racing thread."""
    return create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "SQLALCHEMY_ENGINE_OPTIONS": {"pool_size": 20} if "postgresql" in database_url else {},
            **config,
        }
    )


def drop_example_app(app: Flask) -> None:
    with app.app_context():
        example_db.session.remove()
        example_db.drop_all()
        example_db.engine.dispose()


@pytest.fixture
def app(request: pytest.FixtureRequest, database_url: str, clock: FakeClock) -> Iterator[Flask]:
    """The example app on a clean database.

    ``@pytest.mark.app_config(KEY=value, ...)`` on a test adds to its configuration.
    """
    marker = request.node.get_closest_marker("app_config")
    app = example_app_on(database_url, **(marker.kwargs if marker else {}))
    yield app
    drop_example_app(app)


@pytest.fixture
def make_pg_app(postgresql_url: str, clock: FakeClock) -> Iterator[Callable[..., Flask]]:
    """Makes the example app on PostgreSQL (only), with extra configuration, for races."""
    apps: list[Flask] = []

    def make(**config: Any) -> Flask:
        apps.append(example_app_on(postgresql_url, **config))
        return apps[-1]

    yield make
    for app in apps:
        drop_example_app(app)


@pytest.fixture
def pg_app(make_pg_app: Callable[..., Flask]) -> Flask:
    """The example app on PostgreSQL (only), for races."""
    return make_pg_app()


@dataclass
class Outcome:
    status: int
    body: Any


def race(app: Flask, calls: list[Callable[[FlaskClient], Any]]) -> list[Outcome]:
    """Run every call in a thread of its own, each with its own client, released together by
    a barrier so the requests hit the database at once; their outcomes, in order."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[Outcome | None] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        client = app.test_client()
        try:
            barrier.wait(timeout=10)
            response = calls[index](client)
            outcomes[index] = Outcome(response.status_code, response.json)
        except BaseException as error:  # reported below, on the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a racing request hung"
    if errors:
        raise errors[0]
    return [outcome for outcome in outcomes if outcome is not None]


@dataclass
class TestUser:
    __test__ = False  # a fixture's value, not a test class

    id: int
    username: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


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
            example_db.session.add(user)
            example_db.session.commit()
            user_id = user.id
        response = client.post("/auth/login", json={"username": username, "password": password})
        assert response.status_code == 200, response.json
        return TestUser(user_id, username, password, response.json["accessToken"])

    return make


@pytest.fixture
def user(make_user: Callable[[str], TestUser]) -> TestUser:
    return make_user("alice")


def answer(
    client: FlaskClient, challenge_id: str, code: Any, headers: dict[str, str] | None = None
) -> Any:
    """``POST /auth/2fa/challenge`` with a verification code."""
    return client.post(
        "/auth/2fa/challenge",
        headers=headers or {},
        json={"challengeId": challenge_id, "verificationCode": code},
    )


def wrong_code(secret: str, clock: FakeClock) -> str:
    """A six-digit code that no step of the skew window accepts."""
    valid = {code_for(secret, clock, offset) for offset in (-1, 0, 1)}
    return next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in valid)


def code_for(secret: str, clock: FakeClock, offset_steps: int = 0) -> str:
    """The TOTP code an authenticator app shows at ``clock`` plus ``offset_steps`` steps."""
    return pyotp.TOTP(secret).at(clock.now + 30 * offset_steps)


@pytest.fixture
def connected_user(client: FlaskClient, user: TestUser, clock: FakeClock) -> tuple[TestUser, str]:
    """``user`` with 2FA connected; returns the user and the TOTP secret.

    The clock then moves one step on, so the code that confirmed the setup is not reusable.
    """
    setup = client.post("/auth/2fa", headers=user.headers).json
    answer = client.post(
        "/auth/2fa/challenge",
        headers=user.headers,
        json={
            "challengeId": setup["challengeId"],
            "verificationCode": code_for(setup["secret"], clock),
        },
    )
    assert answer.status_code == 200, answer.json
    clock.advance(30)
    return user, setup["secret"]


def decrypt_secret(encrypted: str) -> str:
    """The plaintext of a stored, encrypted TOTP secret (inside an app context)."""
    return example_app.two_factor.settings.box.decrypt(encrypted)


class Statements(list[str]):
    """The statements an engine ran, whitespace collapsed, and how many commits."""

    commits = 0


@contextmanager
def counting(engine: Engine) -> Iterator[Statements]:
    """The statements and commits ``engine`` runs inside the block."""
    statements = Statements()

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    def commit(_conn: Any) -> None:
        statements.commits += 1

    event.listen(engine, "before_cursor_execute", record)
    event.listen(engine, "commit", commit)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)
        event.remove(engine, "commit", commit)
