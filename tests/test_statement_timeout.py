"""``UCLOUD_2FA_STATEMENT_TIMEOUT``: on PostgreSQL a statement of the extension that runs, or
waits for a lock, longer than it answers 503 ``SERVICE_UNAVAILABLE`` and gives its connection
back, having changed nothing; the limit is one ``SET LOCAL`` per transaction, which pgbouncer in
transaction mode passes (it refuses ``options=-c statement_timeout=...`` at connection time).
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable
from typing import Any

import psycopg
import pytest
from flask import Flask

from helpers import FakeClock
from helpers import add_user
from helpers import answer
from helpers import assert_unavailable
from helpers import begin_login
from helpers import code_for
from helpers import connect
from helpers import counting
from helpers import credentials_locked
from helpers import engine_of
from helpers import failures_of
from helpers import libpq_url
from helpers import login
from helpers import rows_of
from helpers import settings_of
from helpers import two_factor_of
from helpers import wrong_code

MakeApp = Callable[..., Flask]
#: Seconds: long enough for a statement of the tests, short enough to wait for.
TIMEOUT = 0.3


@pytest.mark.parametrize("code", ["right", "wrong"])
def test_an_answer_waiting_for_a_locked_credential_answers_503_and_changes_nothing(
    make_pg_app: MakeApp, clock: FakeClock, code: str
) -> None:
    app = make_pg_app({"UCLOUD_2FA_STATEMENT_TIMEOUT": TIMEOUT})
    client = app.test_client()
    user = add_user(app)
    secret = connect(client, user.headers, clock)
    challenge = begin_login(client, user)
    before = rows_of(app, user.id)
    sent = code_for(secret, clock) if code == "right" else wrong_code(secret, clock)

    with credentials_locked(app, user.id):
        started = time.monotonic()
        response = answer(client, challenge, sent)
        waited = time.monotonic() - started
        # The connection went back to the pool, not to a worker waiting on the lock.
        assert engine_of(app).pool.checkedout() == 0  # type: ignore[attr-defined]

    assert_unavailable(response, secret, sent, challenge)
    assert TIMEOUT <= waited < TIMEOUT + 2
    assert rows_of(app, user.id) == before
    assert failures_of(app, user.id) == 0
    # Once the lock is gone, the same answer is looked at as if nothing had happened.
    again = answer(client, challenge, sent)
    assert again.status_code == (200 if code == "right" else 403), again.json


def test_a_setup_waiting_for_a_locked_credential_answers_503(
    make_pg_app: MakeApp, clock: FakeClock
) -> None:
    app = make_pg_app({"UCLOUD_2FA_STATEMENT_TIMEOUT": TIMEOUT})
    client = app.test_client()
    user = add_user(app)
    first = client.post("/auth/2fa", headers=user.headers)
    assert first.status_code == 200
    before = rows_of(app, user.id)

    with credentials_locked(app, user.id):
        replaced = client.post("/auth/2fa", headers=user.headers)
        assert engine_of(app).pool.checkedout() == 0  # type: ignore[attr-defined]

    assert_unavailable(replaced)
    assert rows_of(app, user.id) == before


@pytest.mark.app_config(UCLOUD_2FA_STATEMENT_TIMEOUT=TIMEOUT)
def test_the_limit_is_one_set_local_per_transaction_on_postgresql_only(
    app: Flask, clock: FakeClock
) -> None:
    client = app.test_client()
    user = add_user(app)
    secret = connect(client, user.headers, clock)
    challenge = begin_login(client, user)

    with counting(engine_of(app)) as statements:
        answered = answer(client, challenge, code_for(secret, clock))

    assert answered.status_code == 200
    limits = [statement for statement in statements if statement.startswith("SET")]
    if engine_of(app).dialect.name == "postgresql":
        # First, so that it covers every statement of the one transaction.
        assert statements[0] == "SET LOCAL statement_timeout = 300"
        assert limits == [statements[0]]
    else:
        assert limits == []
    assert statements.commits == 1


@pytest.mark.parametrize(
    ("value", "seconds"),
    [(None, None), ("", None), (0, None), (5, 5.0), ("0.5", 0.5), (1.25, 1.25)],
)
def test_the_timeout_is_seconds_or_none(
    make_sqlite_app: MakeApp, value: Any, seconds: float | None
) -> None:
    app = make_sqlite_app({"UCLOUD_2FA_STATEMENT_TIMEOUT": value})
    assert settings_of(app).statement_timeout == seconds


@pytest.mark.parametrize("value", ["5s", -1, True, float("inf"), [5]])
def test_a_timeout_that_is_not_seconds_is_refused(make_sqlite_app: MakeApp, value: Any) -> None:
    message = (
        "UCLOUD_2FA_STATEMENT_TIMEOUT must be a number of seconds, like 5 or 0.5, or None for"
        f" no limit, not {value!r}."
    )
    with pytest.raises(ValueError, match=re.escape(message)):
        make_sqlite_app({"UCLOUD_2FA_STATEMENT_TIMEOUT": value})


def test_a_password_attempt_waiting_for_a_locked_counter_answers_503(
    make_pg_app: MakeApp, clock: FakeClock
) -> None:
    """The password-attempt limits run under the same limit: a counter row held elsewhere
    makes the login answer 503 in time, counting nothing."""
    app = make_pg_app({"UCLOUD_2FA_STATEMENT_TIMEOUT": TIMEOUT})
    client = app.test_client()
    user = add_user(app)  # its login made the user's counter rows
    table = two_factor_of(app).models.AttemptCounter.__table__.name
    url = libpq_url(app.config["SQLALCHEMY_DATABASE_URI"])
    with psycopg.connect(url, prepare_threshold=None) as holder:
        before = holder.execute(f'SELECT * FROM "{table}" ORDER BY key_hash').fetchall()
        assert len(holder.execute(f'SELECT 1 FROM "{table}" FOR UPDATE').fetchall()) == 3
        started = time.monotonic()
        answered: list[Any] = []
        attempt = threading.Thread(target=lambda: answered.append(login(client, user)))
        attempt.start()
        attempt.join(timeout=TIMEOUT + 5)  # without the limit it would wait for the holder
        waited = time.monotonic() - started
        stuck = attempt.is_alive()
        holder.rollback()
        attempt.join()
        assert not stuck, "the login waited for the locked counter without a limit"
        response = answered[0]
        assert engine_of(app).pool.checkedout() == 0  # type: ignore[attr-defined]
        after = holder.execute(f'SELECT * FROM "{table}" ORDER BY key_hash').fetchall()
    assert_unavailable(response, user.password)
    assert TIMEOUT <= waited < TIMEOUT + 2
    assert after == before
    assert login(client, user).status_code == 200
