"""The example app behind pgbouncer in transaction mode, as its environment says: psycopg then
prepares no statement on the server connections, which pgbouncer hands to another client at
each transaction, so many logins on few connections all succeed, each for its own user.

Without it psycopg prepares a statement on its fifth run on a connection (logins commit, so its
count survives from one login to the next), and the next transaction, on another server
connection, finds it missing or another client's under the same name: 500s, and 401s for the
right password.
"""

from __future__ import annotations

import threading
from typing import Any

import pytest
from flask import Flask

from example_app import db

from helpers import TestUser

THREADS = 4
ROUNDS = 25


@pytest.fixture
def app(pooled_app: Flask) -> Flask:
    """The example app behind pgbouncer (``make_user`` uses it too)."""
    return pooled_app


def test_its_environment_turns_server_side_prepared_statements_off(app: Flask) -> None:
    with app.app_context(), db.engine.connect() as connection:
        assert connection.connection.driver_connection.prepare_threshold is None  # type: ignore[union-attr]


def test_many_logins_on_few_connections_all_get_their_own_answer(
    app: Flask, make_user: Any
) -> None:
    users: list[TestUser] = [make_user(f"pooled-{index}") for index in range(THREADS)]
    answers: list[tuple[TestUser, int, Any]] = []
    barrier = threading.Barrier(THREADS)

    def log_in(user: TestUser) -> None:
        client = app.test_client()
        barrier.wait(timeout=10)
        for _ in range(ROUNDS):
            login = client.post(
                "/auth/login", json={"username": user.username, "password": user.password}
            )
            answers.append((user, login.status_code, login.json))

    threads = [threading.Thread(target=log_in, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(answers) == THREADS * ROUNDS
    assert [(status, body) for _, status, body in answers if status != 200] == []
    client = app.test_client()
    for user, _, body in answers[::7]:  # each token is its own user's
        me = client.get("/api/me", headers={"Authorization": f"Bearer {body['accessToken']}"})
        assert me.json["username"] == user.username
