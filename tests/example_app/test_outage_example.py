"""The example app while its database is down: its JSON login (as UCloud's web client sends
it, too) and the extension's routes answer 503 ``SERVICE_UNAVAILABLE`` in UCloud's shape, its
pages an HTML page, all with ``Retry-After``; once the database is back, logins work again.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient

from example_app import create_app
from example_app import db

from clusters import Cluster
from helpers import TestUser
from helpers import assert_unavailable
from helpers import assert_unavailable_page

BROWSER = {"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"}


@pytest.fixture
def app(cluster_app: Flask) -> Flask:
    """The example app on the cluster the test stops (``make_user`` uses it too)."""
    return cluster_app


def login_form(client: FlaskClient, user: TestUser) -> dict[str, str]:
    """The login page's form, filled in, as a browser sends it."""
    page = client.get("/login", headers=BROWSER).get_data(as_text=True)
    [token] = re.findall(r'name="csrf_token" value="([^"]+)"', page)
    return {"csrf_token": token, "username": user.username, "password": user.password}


def test_logins_and_pages_answer_503_while_the_database_is_down(
    app: Flask, client: FlaskClient, user: TestUser, cluster: Cluster
) -> None:
    credentials = {"username": user.username, "password": user.password}
    browser = app.test_client()
    form = login_form(browser, user)
    logged_in = app.test_client()
    assert (
        logged_in.post("/login", data=login_form(logged_in, user), headers=BROWSER).status_code
        == 302
    )

    with cluster.stopped():
        json_login = client.post("/auth/login", json=credentials)
        web_client_login = client.post(
            "/auth/login?service=web",
            data={"service": "web", **credentials},
            content_type="multipart/form-data",
            headers={"Accept": "application/json"},
        )
        status = client.get("/auth/2fa/status", headers=user.headers)
        login_page = browser.post("/login", data=form, headers=BROWSER)
        settings_page = logged_in.get("/settings", headers=BROWSER)

    for response in (json_login, web_client_login, status):
        assert_unavailable(response, user.password, user.token)
    for response in (login_page, settings_page):
        assert_unavailable_page(response, user.password)

    again = client.post("/auth/login", json=credentials)
    assert again.status_code == 200, again.json
    assert {"accessToken", "refreshToken"} <= set(again.json)
    assert browser.post("/login", data=form, headers=BROWSER).status_code == 302
    assert logged_in.get("/settings", headers=BROWSER).status_code == 200


def test_an_app_started_while_the_database_is_down_serves_once_it_is_back(
    app: Flask, user: TestUser, cluster: Cluster, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A worker replaced during an outage starts (gunicorn stops altogether when one fails to
    boot), answers 503 meanwhile, and serves once the database is back."""
    config = {"TESTING": True, "SQLALCHEMY_DATABASE_URI": app.config["SQLALCHEMY_DATABASE_URI"]}
    credentials = {"username": user.username, "password": user.password}
    with cluster.stopped():
        started = create_app(config, instance_path=str(tmp_path / "started-during-the-outage"))
        assert_unavailable(started.test_client().post("/auth/login", json=credentials))
    assert "tables were not checked: OperationalError" in caplog.text

    back = started.test_client().post("/auth/login", json=credentials)
    assert back.status_code == 200, back.json
    with started.app_context():
        db.engine.dispose()
