"""The browser journey in Chromium, against the example app served over HTTP on 127.0.0.1.

Playwright drives Debian's Chromium (``/usr/bin/chromium``; never ``playwright install``). The
server runs in this process, on a thread, so the test moves the extension's clock by hand: each
code is of a new time step at once, with no wait for the next one. Run with
``UCLOUD_2FA_SCREENSHOTS=1`` to save a screenshot of each page under
``docs/_static/screenshots/`` for the docs.
"""

from __future__ import annotations

import base64
import hashlib
import secrets
from collections.abc import Iterator
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlsplit

import pyotp
import pytest
import requests
from authlib.integrations.requests_client import OAuth2Session
from joserfc import jwt
from joserfc.jwk import KeySet

from helpers import Server
from helpers import fresh_code
from helpers import log_in
from helpers import snapshot

CLIENT_ID = "demo-client"


@pytest.fixture(scope="module")
def connected(server: Server, browser: Any) -> Iterator[pyotp.TOTP]:
    """The user sets up 2FA from the settings page, reading the secret shown, and logs out."""
    context = browser.new_context()
    page = context.new_page()
    log_in(page, server)
    page.wait_for_url(f"{server.url}/settings")
    assert page.locator("#status").inner_text() == "not connected"
    snapshot(page, "settings-not-connected")
    page.get_by_role("button", name="Set up two-factor authentication").click()
    qr = page.locator("img[src^='data:image/png;base64,']")
    assert qr.count() == 1
    totp = pyotp.TOTP(page.locator("#secret").inner_text().strip())
    snapshot(page, "setup")
    page.locator("#code").fill(fresh_code(totp, server.clock))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(f"{server.url}/settings/2fa/confirm")
    assert page.locator("#recovery-codes li").count() == 10
    page.get_by_role("link", name="I have saved them").click()
    page.wait_for_url(f"{server.url}/settings")
    assert page.locator("#status").inner_text() == "connected"
    snapshot(page, "settings-connected")
    page.locator("#logout").click()
    page.wait_for_url(f"{server.url}/login")
    context.close()
    yield totp


def test_login_asks_for_a_code_refuses_a_wrong_one_and_accepts_the_right_one(
    server: Server, page: Any, connected: pyotp.TOTP
) -> None:
    totp = connected
    log_in(page, server)
    page.wait_for_url(f"{server.url}/auth/2fa?challengeId=**")
    field = page.get_by_label("Code from your authenticator app")
    assert field.get_attribute("autocomplete") == "one-time-code"
    assert field.get_attribute("inputmode") == "numeric"
    snapshot(page, "challenge")
    # No logged-in session before the second factor: the settings page still wants a login.
    settings = page.request.get(f"{server.url}/settings", max_redirects=0)
    assert settings.status == 302 and "/login" in settings.headers["location"]

    window = {totp.at(server.clock.now + 30 * step) for step in (-1, 0, 1, 2)}
    field.fill(next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in window))
    page.get_by_role("button", name="Verify").click()
    problem = page.locator("#problem")
    assert "not right" in problem.inner_text() and "4 attempts left" in problem.inner_text()
    snapshot(page, "challenge-wrong-code")

    page.get_by_label("Code from your authenticator app").fill(fresh_code(totp, server.clock))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(f"{server.url}/settings")
    assert page.locator("#username").inner_text() == server.username
    assert page.locator("#status").inner_text() == "connected"


def _pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode()).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def test_authorization_code_flow_with_pkce_and_openid_connect(
    server: Server, page: Any, connected: pyotp.TOTP
) -> None:
    totp = connected
    verifier, challenge = _pkce()
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    client = OAuth2Session(
        CLIENT_ID,
        redirect_uri=server.callback,
        scope="openid profile",
        token_endpoint_auth_method="none",
        code_challenge_method="S256",
    )
    authorize_url, _ = client.create_authorization_url(
        f"{server.url}/oauth/authorize", state=state, nonce=nonce, code_verifier=verifier
    )
    assert f"code_challenge={challenge}" in authorize_url
    # The client's redirect URI: answered here, the browser never leaves the machine.
    page.route(f"{server.callback}**", lambda route: route.fulfill(body="signed in"))

    page.goto(authorize_url)
    page.wait_for_url(f"{server.url}/login?**")
    page.get_by_label("Username").fill(server.username)
    page.get_by_label("Password").fill(server.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server.url}/auth/2fa?challengeId=**")
    page.get_by_label("Code from your authenticator app").fill(fresh_code(totp, server.clock))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(f"{server.callback}?**")
    answered_at = int(server.clock.now)

    query = parse_qs(urlsplit(page.url).query)
    assert query["state"] == [state]
    token = client.fetch_token(
        f"{server.url}/oauth/token",
        authorization_response=page.url,
        code_verifier=verifier,
        state=state,
    )
    assert {"access_token", "refresh_token", "id_token"} <= set(token)

    jwks = requests.get(f"{server.url}/oauth/jwks", timeout=10).json()
    id_token = jwt.decode(token["id_token"], KeySet.import_key_set(jwks), algorithms=["RS256"])
    claims = id_token.claims
    assert claims["iss"] == server.url
    assert claims["aud"] in (CLIENT_ID, [CLIENT_ID])
    assert claims["nonce"] == nonce
    assert claims["amr"] == ["pwd", "otp"]
    assert claims["auth_time"] == answered_at  # when the second factor was answered

    me = requests.get(
        f"{server.url}/api/me",
        headers={"Authorization": f"Bearer {token['access_token']}"},
        timeout=10,
    )
    assert me.status_code == 200
    assert me.json()["username"] == server.username
    assert me.json()["amr"] == ["pwd", "otp"]
