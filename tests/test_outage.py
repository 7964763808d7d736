"""The database down: every answer is a clean 503 ``SERVICE_UNAVAILABLE`` with ``Retry-After``
(JSON in UCloud's shape, an HTML page for the challenge page's form), one log line each and no
traceback; once the database is back, requests succeed again without a restart, and nothing
stored before the outage is lost or changed.

The tests stop and start the session's own PostgreSQL cluster, so no other test's database is
disturbed.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import InterfaceError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from flask_ucloud_2fa import DatabaseUnavailable

from clusters import Cluster
from helpers import BROWSER
from helpers import UNAVAILABLE_RETRY_AFTER
from helpers import FakeClock
from helpers import TestUser
from helpers import add_user
from helpers import answer
from helpers import assert_unavailable
from helpers import assert_unavailable_page
from helpers import begin_browser_login
from helpers import begin_login
from helpers import challenge_attempts
from helpers import code_for
from helpers import connect
from helpers import db_of
from helpers import failures_of
from helpers import integrator_process
from helpers import login
from helpers import rows_of
from helpers import wrong_code

MakeApp = Callable[..., Flask]


def database_answers(app: Flask, client: FlaskClient, user: TestUser, timeout: float) -> float:
    """Seconds until the user's status is answered again (at most ``timeout``)."""
    started = time.monotonic()
    while True:
        response = client.get("/auth/2fa/status", headers=user.headers)
        if response.status_code == 200:
            return time.monotonic() - started
        assert response.status_code == 503, response.get_data(as_text=True)
        assert time.monotonic() - started < timeout, "the database did not come back"
        time.sleep(0.1)


def outage_records(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.levelno >= logging.WARNING]


def test_every_route_answers_503_while_the_database_is_down_and_nothing_is_lost(
    make_fault_app: MakeApp,
    cluster: Cluster,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    app = make_fault_app()
    client = app.test_client()
    user = add_user(app)
    secret = connect(client, user.headers, clock)
    # Before the outage: a login with a code, a login challenge with one wrong answer on it,
    # and a browser's login challenge.
    used_code = code_for(secret, clock)
    assert answer(client, begin_login(client, user), used_code).status_code == 200
    pending = begin_login(client, user)
    assert answer(client, pending, wrong_code(secret, clock)).status_code == 403
    browser = app.test_client()
    form = begin_browser_login(browser, user).fields
    before = rows_of(app, user.id)
    proof = {"verificationCode": code_for(secret, clock, 1)}

    with cluster.stopped():
        caplog.clear()
        answers = {
            "status": client.get("/auth/2fa/status", headers=user.headers),
            "setup": client.post("/auth/2fa", headers=user.headers),
            "answer": answer(client, pending, code_for(secret, clock, 1)),
            "recovery codes": client.post(
                "/auth/2fa/recovery-codes", headers=user.headers, json=proof
            ),
            "disable": client.post("/auth/2fa/disable", headers=user.headers, json=proof),
            "login": login(client, user),
        }
        for name, response in answers.items():
            assert_unavailable(response, secret, used_code, pending), name
        page = browser.post(
            "/auth/2fa/challenge/form",
            data={**form, "verificationCode": code_for(secret, clock, 1)},
            headers=BROWSER,
        )
        assert_unavailable_page(page, secret, form["csrfToken"])
        records = outage_records(caplog)

    # One line per failed request, from the extension, without a traceback.
    assert len(records) == len(answers) + 1, [record.getMessage() for record in records]
    for record in records:
        assert record.name == "flask_ucloud_2fa"
        assert record.exc_info is None
        message = record.getMessage()
        assert "answered 503" in message and "\n" not in message, message
        assert secret not in message and pending not in message

    assert database_answers(app, client, user, timeout=5) < 5
    # Nothing was written during the outage, nothing before it was lost.
    assert rows_of(app, user.id) == before
    assert failures_of(app, user.id) == 1
    assert challenge_attempts(app, pending) == 1
    clock.advance(30)
    # The code used before the outage is still refused (within its window, as a replay) ...
    replayed = answer(client, begin_login(client, user), used_code)
    assert replayed.status_code == 403, replayed.json
    # ... and the challenges of before are answered now.
    assert answer(client, pending, code_for(secret, clock)).status_code == 200
    clock.advance(30)
    finished = browser.post(
        "/auth/2fa/challenge/form",
        data={**form, "verificationCode": code_for(secret, clock)},
        headers=BROWSER,
    )
    assert finished.status_code == 200, finished.get_data(as_text=True)
    assert set(finished.json) == {"accessToken", "refreshToken", "expiresAt"}


def test_every_worker_answers_503_while_the_database_is_down_then_serves_again(
    make_cluster_app: MakeApp, cluster: Cluster, tmp_path: Path
) -> None:
    """Two gunicorn workers: during the outage each answers 503; once the database is back,
    every request succeeds at once, without restarting them (``pool_pre_ping`` replaces the
    connections that died with the database as they leave the pool)."""
    # The servers' clock, which the login's password limits count with.
    local = make_cluster_app(
        {"SQLALCHEMY_ENGINE_OPTIONS": {"pool_pre_ping": True}}, clock=time.time
    )
    user = add_user(local)
    with integrator_process(local, str(tmp_path), "--workers=2") as served:

        def status() -> requests.Response:
            return requests.get(f"{served.url}/auth/2fa/status", headers=user.headers, timeout=10)

        def password_login() -> requests.Response:
            credentials = {"username": user.username, "password": user.password}
            return requests.post(f"{served.url}/auth/login", json=credentials, timeout=10)

        # Every worker has connections in its pool.
        assert [status().status_code for _ in range(10)] == [200] * 10

        with cluster.stopped():
            failed: list[Any] = [call() for call in [status, password_login] * 5]

        back = time.monotonic()
        after = [call().status_code for call in [status, password_login] * 10]
        recovered_in = time.monotonic() - back
        log = served.log.read_text()

    for response in failed:
        assert response.status_code == 503, response.text
        assert response.headers["Retry-After"] == str(UNAVAILABLE_RETRY_AFTER)
        body = response.json()
        assert (body["statusCode"], body["errorCode"]) == (503, "SERVICE_UNAVAILABLE")
        assert body["retryAfter"] == UNAVAILABLE_RETRY_AFTER
    assert after == [200] * 20, after
    assert recovered_in < 5
    assert log.count("answered 503") == len(failed), log
    assert "Traceback" not in log, log


# -- which errors are an outage, and who answers them ------------------------------------------


def failing_app(make_sqlite_app: MakeApp, error: Exception) -> Flask:
    """The integrator app with a view of its own that raises ``error``, as a view does whose
    database is unavailable."""
    app = make_sqlite_app()

    @app.get("/api/failing")
    def failing() -> Any:
        raise error

    return app


def statement_error(cls: type[DBAPIError], invalidated: bool = False) -> DBAPIError:
    return cls(
        "SELECT secret FROM t",
        {"p": "parameter"},
        Exception("it failed"),
        connection_invalidated=invalidated,
    )


@pytest.mark.parametrize(
    "error",
    [
        pytest.param(statement_error(OperationalError), id="operational"),
        pytest.param(statement_error(InterfaceError, invalidated=True), id="dead-connection"),
        pytest.param(PoolTimeout("QueuePool limit of size 5 overflow 10 reached"), id="full-pool"),
    ],
)
def test_an_unavailable_database_in_the_apps_own_view_answers_503(
    make_sqlite_app: MakeApp, error: Exception, caplog: pytest.LogCaptureFixture
) -> None:
    client = failing_app(make_sqlite_app, error).test_client()

    assert_unavailable(client.get("/api/failing"), "secret FROM", "parameter")
    assert_unavailable_page(client.get("/api/failing", headers=BROWSER), "parameter")
    [first, second] = outage_records(caplog)
    assert "GET /api/failing answered 503" in first.getMessage()
    assert "parameter" not in first.getMessage() and "SELECT" not in first.getMessage()


def test_a_database_error_that_is_a_bug_stays_a_500(make_sqlite_app: MakeApp) -> None:
    """An ``InterfaceError`` of a live connection (a parameter of a type the driver cannot
    send, say) is a bug, not an outage."""
    app = failing_app(make_sqlite_app, statement_error(InterfaceError))
    app.testing = False

    response = app.test_client().get("/api/failing")

    assert response.status_code == 500


def test_a_missing_table_on_sqlite_is_a_bug_not_an_outage(
    make_sqlite_app: MakeApp, caplog: pytest.LogCaptureFixture
) -> None:
    """SQLite reports a forgotten migration as an ``OperationalError`` too: it stays a 500, with
    its traceback in the log, not a 503 to wait out."""
    app = make_sqlite_app()
    user = add_user(app)
    with app.app_context():
        db_of(app).session.execute(text("DROP TABLE ucloud_2fa_credential"))
        db_of(app).session.commit()
    app.testing = False

    response = app.test_client().get("/auth/2fa/status", headers=user.headers)

    assert response.status_code == 500
    [record] = [record for record in caplog.records if record.levelno >= logging.ERROR]
    assert "answered 503" not in record.getMessage()
    assert record.exc_info is not None  # the traceback, to find the missing table by


def test_the_apps_own_handler_answers_an_unavailable_database_its_way(
    make_sqlite_app: MakeApp,
) -> None:
    app = failing_app(make_sqlite_app, statement_error(OperationalError))

    @app.errorhandler(DatabaseUnavailable)
    def unavailable(error: DatabaseUnavailable) -> Any:
        return {"error": "temporarily_unavailable"}, 503, {"Retry-After": "30"}

    response = app.test_client().get("/api/failing")

    assert response.status_code == 503
    assert response.json == {"error": "temporarily_unavailable"}
    assert response.headers["Retry-After"] == "30"
