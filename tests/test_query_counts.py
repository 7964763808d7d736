"""How many SQL statements the hot paths run, counted on the engine (issue 5).

Counted with ``before_cursor_execute``, so each statement sent to the database counts once,
including the ones SQLAlchemy sends for the ORM; ``BEGIN`` and ``COMMIT`` are not statements
there and are not counted. Runs on SQLite and on PostgreSQL through the ``app`` fixture.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING
from typing import Any

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import event

import example_app
from example_app import db

from conftest import FakeClock
from conftest import code_for

if TYPE_CHECKING:
    from conftest import TestUser


@contextmanager
def counting(app: Flask) -> Iterator[list[str]]:
    """The statements the app's engine runs inside the block, first word and table."""
    statements: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", record)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)


def begin_login(app: Flask, user: TestUser) -> str:
    with app.app_context():
        challenge = example_app.two_factor.service().begin_login(str(user.id), ["pwd"], {})
    assert challenge is not None
    return challenge


def test_protected_route_is_one_token_lookup(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    # The baseline the others are counted against: Authlib's SELECT of the token.
    with counting(app) as statements:
        assert client.get("/api/me", headers=user.headers).status_code == 200
    token_lookups = [s for s in statements if s.startswith("SELECT") and " token" in s]
    assert len(token_lookups) == 1, statements


def test_status_is_the_token_lookup_and_one_query(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    with counting(app) as statements:
        response = client.get("/auth/2fa/status", headers=user.headers)
    assert response.json == {"connected": False}
    # SELECT token (Authlib's validator); SELECT connected FROM ucloud_2fa_credential.
    assert len(statements) == 2, statements
    assert "FROM token" in statements[0]
    assert "FROM ucloud_2fa_credential" in statements[1]


def test_correct_answer_runs_a_fixed_number_of_statements(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
) -> None:
    user, secret = connected_user
    challenge_id = begin_login(app, user)
    with counting(app) as statements:
        response = client.post(
            "/auth/2fa/challenge",
            json={"challengeId": challenge_id, "verificationCode": code_for(secret, clock)},
        )
    assert response.status_code == 200, response.json
    # The extension: SELECT challenge JOIN credential; UPDATE credential (spend the time step);
    # DELETE challenge (spend it). Then the example app's login_completed hook: INSERT token,
    # and, because the hook commits and then reads the token's attributes back, SELECT token.
    # (No token lookup: a login challenge is answered without a bearer token.)
    assert len(statements) == 5, statements
    assert [s.split()[0] for s in statements] == ["SELECT", "UPDATE", "DELETE", "INSERT", "SELECT"]
    assert "FROM ucloud_2fa_challenge JOIN ucloud_2fa_credential" in statements[0]


def test_wrong_answer_runs_a_fixed_number_of_statements(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
) -> None:
    user, secret = connected_user
    valid = {code_for(secret, clock, offset) for offset in (-1, 0, 1)}
    wrong = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in valid)
    challenge_id = begin_login(app, user)
    with counting(app) as statements:
        response = client.post(
            "/auth/2fa/challenge", json={"challengeId": challenge_id, "verificationCode": wrong}
        )
    assert response.status_code == 403, response.json
    # SELECT challenge JOIN credential; UPDATE credential failures + 1 RETURNING;
    # UPDATE challenge attempts + 1 RETURNING.
    assert len(statements) == 3, statements
    assert [s.split()[0] for s in statements] == ["SELECT", "UPDATE", "UPDATE"]
    assert "ucloud_2fa_credential" in statements[1]
    assert "ucloud_2fa_challenge" in statements[2]
