"""Deleting a user deletes their 2FA, so a new user who gets the same id starts without it.

With ``user_table="user"`` the database does it (a foreign key with ``ON DELETE CASCADE``);
without it, user ids are text and the app calls ``two_factor.reset(user_id)``. On SQLite a new
user gets the deleted user's id by itself (the largest rowid is reused); on PostgreSQL the test
inserts the old id explicitly, as a restore or a hand-made row would.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable
from typing import Any

from flask import Flask
from werkzeug.security import generate_password_hash

from flask_ucloud_2fa import signals

from helpers import FAST_HASH
from helpers import NOTHING
from helpers import FakeClock
from helpers import TestUser
from helpers import add_user
from helpers import arm
from helpers import assert_logs_in_with_the_password_alone
from helpers import count
from helpers import rows_of
from integrator import integrator_of

MakeApp = Callable[..., Flask]


def armed(app: Flask, clock: FakeClock, username: str) -> TestUser:
    """A new user with a row in each of the extension's tables."""
    user = add_user(app, username)
    arm(app.test_client(), user, clock)
    return user


def delete_user(app: Flask, user_id: int) -> None:
    parts = integrator_of(app)
    with app.app_context():
        parts.db.session.delete(parts.db.session.get(parts.User, user_id))
        parts.db.session.commit()


def user_with_the_id_of(app: Flask, old_id: int) -> TestUser:
    """A new user who gets ``old_id``: by itself on SQLite, explicitly on PostgreSQL."""
    parts = integrator_of(app)
    username, password = f"new-{secrets.token_hex(4)}", secrets.token_urlsafe(12)
    with app.app_context():
        reuse = {} if parts.db.engine.dialect.name == "sqlite" else {"id": old_id}
        user = parts.User(
            username=username, password_hash=generate_password_hash(password, FAST_HASH), **reuse
        )
        parts.db.session.add(user)
        parts.db.session.commit()
        assert user.id == old_id
    return TestUser(old_id, username, password, token="")


def test_deleting_a_user_deletes_their_2fa(make_app: MakeApp, clock: FakeClock) -> None:
    app = make_app()  # user_table="user"
    bob = armed(app, clock, "bob")
    bob_rows = rows_of(app, bob.id)
    alice = armed(app, clock, "alice")  # the newest user: SQLite gives her id out again
    assert rows_of(app, alice.id) != NOTHING

    delete_user(app, alice.id)

    assert rows_of(app, alice.id) == NOTHING
    assert rows_of(app, bob.id) == bob_rows
    models = integrator_of(app).two_factor.models
    assert count(app, models.Credential) == 1
    assert count(app, models.Challenge) == 1
    assert count(app, models.RecoveryCode) == 10
    newcomer = user_with_the_id_of(app, alice.id)
    assert_logs_in_with_the_password_alone(app.test_client(), newcomer)
    assert rows_of(app, newcomer.id) == NOTHING


def test_without_user_table_the_app_resets_a_deleted_user(
    make_app: MakeApp, clock: FakeClock
) -> None:
    app = make_app(user_table=None)
    two_factor = integrator_of(app).two_factor
    alice = armed(app, clock, "alice")
    user_id = str(alice.id)  # ids are stored as text

    delete_user(app, alice.id)

    # Nothing refers to the user table: the 2FA of the id outlives the user...
    assert len(rows_of(app, user_id)["credentials"]) == 1
    with app.app_context():
        assert two_factor.is_connected(user_id) is True
    # ...until the app resets it, which is what the reset signal reports.
    sent: list[dict[str, Any]] = []

    def receive(sender: Any, **kwargs: Any) -> None:
        sent.append({"sender": sender, **kwargs})

    with signals.reset.connected_to(receive), app.app_context():
        assert two_factor.reset(user_id) is True

    assert sent == [
        {"sender": app, "user_id": user_id, "outcome": "success", "client_address": None}
    ]
    assert rows_of(app, user_id) == NOTHING
    newcomer = user_with_the_id_of(app, alice.id)
    assert_logs_in_with_the_password_alone(app.test_client(), newcomer)
    with app.app_context():
        assert two_factor.reset(user_id) is False  # nothing left to reset
