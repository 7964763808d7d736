"""The example app's JSON login as UCloud's web client speaks it, byte for byte.

``frontend-web/webclient/app/Login/Login.tsx`` posts the password login as multipart form data
to ``/auth/login?service=web`` with ``Accept: application/json``, answers a ``{"2fa": ...}``
with ``{"challengeId", "verificationCode"}`` where the code is the raw text typed (not
trimmed), and keeps ``accessToken`` and ``csrfToken`` of the answer (``setTokens``); its
refresh sends the CSRF token as ``X-CSRFToken``. Errors are shown from ``why``.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from example_app.models import Token

from helpers import FakeClock
from helpers import bearer
from helpers import code_for
from helpers import count

if TYPE_CHECKING:
    from helpers import TestUser

#: A boundary as Chromium makes them; fixed, so the body below is exactly what it sends.
BOUNDARY = "----WebKitFormBoundaryq7dH2vRbLz1Xo9Ke"
#: The fields UCloud's client reads from a completed login.
TOKEN_FIELDS = {"accessToken", "csrfToken", "refreshToken", "expiresAt"}


def web_client_body(username: str, password: str) -> bytes:
    """The ``FormData`` of ``Login.tsx`` (``service``, ``username``, ``password``), encoded."""
    body = b""
    for name, value in (("service", "web"), ("username", username), ("password", password)):
        body += (
            f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'
        ).encode()
    return body + f"--{BOUNDARY}--\r\n".encode()


def web_client_login(client: FlaskClient, username: str, password: str) -> Any:
    body = web_client_body(username, password)
    return client.open(
        "/auth/login?service=web",
        method="POST",
        input_stream=None,
        data=body,
        headers={
            "Content-Type": f"multipart/form-data; boundary={BOUNDARY}",
            "Content-Length": str(len(body)),
            "Accept": "application/json",
        },
    )


def web_client_refresh(client: FlaskClient, refresh_token: str, csrf_token: str) -> Any:
    return client.post(
        "/auth/refresh/web",
        headers={
            "Authorization": f"Bearer {refresh_token}",
            "X-CSRFToken": csrf_token,
            "Accept": "application/json",
        },
    )


def assert_tokens(client: FlaskClient, response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.json
    assert set(response.json) == TOKEN_FIELDS
    assert "Set-Cookie" not in response.headers  # nothing logs a browser in
    assert client.get("/api/me", headers=bearer(response.json["accessToken"])).status_code == 200
    tokens: dict[str, Any] = response.json
    return tokens


def test_the_multipart_body_is_the_one_the_web_client_sends(user: TestUser) -> None:
    assert web_client_body("alice", "pw") == (
        b"------WebKitFormBoundaryq7dH2vRbLz1Xo9Ke\r\n"
        b'Content-Disposition: form-data; name="service"\r\n\r\nweb\r\n'
        b"------WebKitFormBoundaryq7dH2vRbLz1Xo9Ke\r\n"
        b'Content-Disposition: form-data; name="username"\r\n\r\nalice\r\n'
        b"------WebKitFormBoundaryq7dH2vRbLz1Xo9Ke\r\n"
        b'Content-Disposition: form-data; name="password"\r\n\r\npw\r\n'
        b"------WebKitFormBoundaryq7dH2vRbLz1Xo9Ke--\r\n"
    )


def test_the_web_client_logs_in_with_2fa_and_an_untrimmed_code(
    client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user

    challenge = web_client_login(client, user.username, user.password)

    assert challenge.status_code == 200, challenge.json
    assert set(challenge.json) == {"2fa"}
    assert "Set-Cookie" not in challenge.headers
    answer = client.post(
        "/auth/2fa/challenge",
        json={
            "challengeId": challenge.json["2fa"],
            "verificationCode": f" {code_for(secret, clock)} ",
        },
        headers={"Accept": "application/json"},
    )
    tokens = assert_tokens(client, answer)
    me = client.get("/api/me", headers=bearer(tokens["accessToken"]))
    assert me.json["amr"] == ["pwd", "otp"]


def test_the_web_client_logs_in_without_2fa(client: FlaskClient, user: TestUser) -> None:
    assert_tokens(client, web_client_login(client, user.username, user.password))


def test_a_wrong_password_from_the_web_client_has_a_why(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    tokens_before = count(app, Token)

    response = web_client_login(client, user.username, "wrong")

    assert response.status_code == 401
    assert response.json == {
        "statusCode": 401,
        "why": "Incorrect username or password.",
        "errorCode": "INVALID_CREDENTIALS",
    }
    assert count(app, Token) == tokens_before


def test_an_url_encoded_login_is_accepted(client: FlaskClient, user: TestUser) -> None:
    response = client.post(
        "/auth/login",
        data={"service": "web", "username": user.username, "password": user.password},
        headers={"Accept": "application/json"},
    )

    assert_tokens(client, response)


@pytest.mark.parametrize(
    "data",
    [{"username": "alice"}, {"password": "x"}, {"username": ["alice", "bob"], "password": "x"}],
    ids=["no-password", "no-username", "two-usernames"],
)
def test_incomplete_form_logins_are_400(
    app: Flask, client: FlaskClient, user: TestUser, data: dict[str, Any]
) -> None:
    tokens_before = count(app, Token)

    response = client.post("/auth/login", data=data, headers={"Accept": "application/json"})

    assert response.status_code == 400
    assert response.json["errorCode"] == "BAD_REQUEST"
    assert count(app, Token) == tokens_before


def test_a_form_posted_by_a_browser_page_is_refused(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    # What another site's <form> makes a victim's browser send: no login, no cookie.
    tokens_before = count(app, Token)

    response = client.post(
        "/auth/login",
        data={"username": user.username, "password": user.password},
        headers={"Accept": "text/html,application/xhtml+xml,*/*;q=0.8"},
    )

    assert response.status_code == 406
    assert response.json["errorCode"] == "NOT_ACCEPTABLE"
    assert "Set-Cookie" not in response.headers
    assert count(app, Token) == tokens_before


def test_the_web_client_refreshes_with_its_csrf_token(client: FlaskClient, user: TestUser) -> None:
    first = assert_tokens(client, web_client_login(client, user.username, user.password))

    second = assert_tokens(
        client, web_client_refresh(client, first["refreshToken"], first["csrfToken"])
    )

    assert second["csrfToken"] != first["csrfToken"]
    assert client.get("/api/me", headers=bearer(first["accessToken"])).status_code == 401
    assert_tokens(client, web_client_refresh(client, second["refreshToken"], second["csrfToken"]))


@pytest.mark.parametrize(
    "headers",
    [
        {"X-CSRFToken": "wrong"},
        {},
        {"Authorization": "Bearer nope"},
        {"Authorization": "Basic bm9wZTpub3Bl"},
    ],
    ids=["wrong-csrf", "no-csrf", "unknown-refresh-token", "basic"],
)
def test_a_refresh_without_both_tokens_is_refused(
    client: FlaskClient, user: TestUser, headers: dict[str, str]
) -> None:
    tokens = assert_tokens(client, web_client_login(client, user.username, user.password))
    sent = {"Authorization": f"Bearer {tokens['refreshToken']}", **headers}

    response = client.post("/auth/refresh/web", headers=sent)

    assert response.status_code == 401
    assert response.json["errorCode"] == "INVALID_REFRESH_TOKEN"
    # The refresh token was not used up.
    assert_tokens(client, web_client_refresh(client, tokens["refreshToken"], tokens["csrfToken"]))


def test_the_csrf_token_of_another_login_is_refused(client: FlaskClient, user: TestUser) -> None:
    one = assert_tokens(client, web_client_login(client, user.username, user.password))
    other = assert_tokens(client, web_client_login(client, user.username, user.password))

    response = web_client_refresh(client, one["refreshToken"], other["csrfToken"])

    assert response.status_code == 401


def test_a_replayed_refresh_token_revokes_the_login(
    client: FlaskClient, user: TestUser, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, logger="example_app.audit")
    first = assert_tokens(client, web_client_login(client, user.username, user.password))
    second = assert_tokens(
        client, web_client_refresh(client, first["refreshToken"], first["csrfToken"])
    )

    replay = web_client_refresh(client, first["refreshToken"], first["csrfToken"])

    assert replay.status_code == 401
    assert client.get("/api/me", headers=bearer(second["accessToken"])).status_code == 401
    assert (
        web_client_refresh(client, second["refreshToken"], second["csrfToken"]).status_code == 401
    )
    assert any(r.name == "example_app.audit" for r in caplog.records)


def test_an_oauth_refresh_token_is_refused_here(client: FlaskClient, user: TestUser) -> None:
    # The app's own refresh route serves the JSON login's tokens only.
    response = web_client_refresh(client, "x" * 64, "y")

    assert response.status_code == 401
