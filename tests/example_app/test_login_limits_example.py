"""The example app's password attempts, limited by the extension's facade on both login routes:
the page answers a 429 page, the JSON route (UCloud's web client too) a 429 in UCloud's shape,
each with ``Retry-After``; the two routes count together, and a victim elsewhere logs in."""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from flask import Flask
from flask.testing import FlaskClient
from test_pages import page
from test_pages import post_login
from test_pages import user_id_of
from test_ucloud_web_client import web_client_login

from helpers import FakeClock
from helpers import assert_blocked

if TYPE_CHECKING:
    from helpers import TestUser

#: Two consecutive failures of a user at an address start a back-off.
BACKOFF_AFTER_TWO = {"UCLOUD_2FA_BACKOFF_AFTER": 2, "UCLOUD_2FA_BACKOFF_MAX": 60}


@pytest.mark.app_config(**BACKOFF_AFTER_TWO)
def test_the_login_page_answers_429_with_retry_after(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    for _ in range(2):
        assert post_login(client, user, password="not the password").status_code == 401
    response = post_login(client, user)  # the right password waits too
    assert response.status_code == 429
    assert response.headers["Retry-After"] == "1"
    shown = page(response)
    assert shown.text("problem") == "Too many login attempts. Wait before trying again."
    assert shown.field("username")["value"] == user.username
    assert user_id_of(client) is None


@pytest.mark.app_config(**BACKOFF_AFTER_TWO)
def test_the_json_and_page_logins_count_together(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    assert post_login(client, user, password="not the password").status_code == 401
    assert web_client_login(client, user.username, "not the password").status_code == 401
    refused = web_client_login(client, user.username, user.password)
    assert_blocked(refused, "TOO_MANY_ATTEMPTS", 1, user.password)
    json_refused = client.post(
        "/auth/login", json={"username": user.username, "password": user.password}
    )
    assert_blocked(json_refused, "TOO_MANY_ATTEMPTS", 1)
    clock.advance(1)
    response = web_client_login(client, user.username, user.password)
    assert response.status_code == 200, response.json
    assert "accessToken" in response.json


@pytest.mark.app_config(**BACKOFF_AFTER_TWO)
def test_guesses_from_elsewhere_leave_the_user_free_to_log_in(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    attacker = app.test_client()
    for _ in range(3):
        attacker.post(
            "/auth/login",
            json={"username": user.username, "password": "guess"},
            environ_base={"REMOTE_ADDR": "203.0.113.9"},
        )
    assert (
        attacker.post(
            "/auth/login",
            json={"username": user.username, "password": user.password},
            environ_base={"REMOTE_ADDR": "203.0.113.9"},
        ).status_code
        == 429
    )
    assert post_login(client, user).status_code in (302, 303)
    assert user_id_of(client) is not None
