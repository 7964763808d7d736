"""Remembered browsers in Chromium: a browser remembered after a right code logs in again with
the password alone, and a login asked for again (``prompt=login``) still asks for the code;
forgotten on the settings page, it is asked for a code again.

A module of its own, so its server's user (``server`` is one per module) has no 2FA yet.
"""

from __future__ import annotations

import re
from typing import Any

import pyotp

from helpers import Server
from helpers import fresh_code
from helpers import log_in
from helpers import snapshot

CHALLENGE = "/auth/2fa?challengeId=**"


def test_a_remembered_browser_skips_the_code_until_it_is_forgotten(
    server: Server, page: Any
) -> None:
    settings = f"{server.url}/settings"
    # Set up 2FA on the settings page, then log out.
    log_in(page, server)
    page.wait_for_url(settings)
    page.get_by_role("button", name="Set up two-factor authentication").click()
    totp = pyotp.TOTP(re.sub(r"\s", "", page.locator("#secret").inner_text()))
    page.get_by_label("Code from your authenticator app").fill(fresh_code(totp, server.clock))
    page.get_by_role("button", name="Confirm").click()
    page.goto(settings)
    assert page.locator("#status").inner_text() == "connected"
    assert "No browser is remembered" in page.locator("#remembered-browsers").inner_text()
    page.locator("#logout").click()
    page.wait_for_url(f"{server.url}/login")

    # Log in with a code, the box ticked.
    log_in(page, server)
    page.wait_for_url(f"{server.url}{CHALLENGE}")
    box = page.get_by_label("Remember this browser for 30 days")
    assert not box.is_checked()
    page.get_by_label("Code from your authenticator app").fill(fresh_code(totp, server.clock))
    box.check()
    snapshot(page, "challenge-remember-browser")
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(settings)
    [cookie] = [c for c in page.context.cookies() if c["name"] == "ucloud_2fa_remember"]
    assert (cookie["httpOnly"], cookie["sameSite"], cookie["path"]) == (True, "Lax", "/")
    listed = page.locator("#remembered-browsers li")
    assert listed.count() == 1
    assert "Chrome on Linux (this browser)" in listed.inner_text()
    snapshot(page, "settings-remembered-browsers")

    # Logged out and in again: no code, and a login without the second factor.
    page.locator("#logout").click()
    page.wait_for_url(f"{server.url}/login")
    log_in(page, server)
    page.wait_for_url(settings)
    assert page.locator("#username").inner_text() == server.username
    assert page.locator("#second-factor-needed").is_visible()

    # Logging in again to use the second factor asks for the code all the same.
    page.locator("#log-in-again").click()
    page.wait_for_url(f"{server.url}/login?**")
    page.get_by_label("Password").fill(server.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{server.url}{CHALLENGE}")
    page.get_by_label("Code from your authenticator app").fill(fresh_code(totp, server.clock))
    page.get_by_role("button", name="Verify").click()
    page.wait_for_url(settings)
    assert page.locator("#recovery-codes-form").is_visible()

    # Forgotten on the settings page: the next login asks for a code again.
    page.get_by_role(
        "button", name=re.compile(r"^Forget Chrome on Linux \(this browser\)")
    ).click()
    page.wait_for_url(settings)
    assert "That browser is forgotten" in page.locator("#notices").inner_text()
    assert "No browser is remembered" in page.locator("#remembered-browsers").inner_text()
    page.locator("#logout").click()
    page.wait_for_url(f"{server.url}/login")
    log_in(page, server)
    page.wait_for_url(f"{server.url}{CHALLENGE}")
    assert not page.get_by_label("Remember this browser for 30 days").is_checked()
