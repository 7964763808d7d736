"""Enrolment in Chromium: a code of a phone whose clock is off says so, and the confirmed setup
shows the first recovery codes once, to read, select and download, without a script.

A module of its own, so its server's user (``server`` is one per module) has no 2FA yet.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pyotp

from helpers import Server
from helpers import fresh_code
from helpers import log_in
from helpers import snapshot

RECOVERY_CODE = re.compile(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}")


def test_enrolment_hints_at_the_clock_and_shows_the_first_recovery_codes_once(
    server: Server, page: Any
) -> None:
    log_in(page, server)
    page.wait_for_url(f"{server.url}/settings")
    page.get_by_role("button", name="Set up two-factor authentication").click()
    totp = pyotp.TOTP(re.sub(r"\s", "", page.locator("#secret").inner_text()))

    # A phone whose clock is 3 minutes ahead shows the code of 6 steps later.
    field = page.get_by_label("Code from your authenticator app")
    field.fill(totp.at(server.clock.now + 180))
    page.get_by_role("button", name="Confirm").click()
    problem = page.locator("#problem").inner_text()
    assert "clock seems to be about 3 minutes ahead" in problem
    assert "set its date and time to automatic" in problem
    snapshot(page, "setup-clock-drift")

    page.get_by_label("Code from your authenticator app").fill(fresh_code(totp, server.clock))
    page.get_by_role("button", name="Confirm").click()
    page.wait_for_url(f"{server.url}/settings/2fa/confirm")
    assert page.locator("#store-now").inner_text() == (
        "Store these now: they will not be shown again."
    )
    codes = page.locator("#recovery-codes li").all_inner_texts()
    assert len(set(codes)) == 10
    assert all(RECOVERY_CODE.fullmatch(code) for code in codes)
    snapshot(page, "setup-recovery-codes")

    # Select and copy, with no script: the read-only field selects all of its text, the codes.
    text = page.get_by_label("The same codes as text, to select and copy")
    assert text.get_attribute("readonly") is not None
    assert text.input_value().split("\n") == codes
    text.focus()
    page.keyboard.press("Control+A")
    selected = text.evaluate("area => area.value.slice(area.selectionStart, area.selectionEnd)")
    assert selected.split("\n") == codes

    # Download: a text file of the codes, made by the server, with no request.
    with page.expect_download() as started:
        page.get_by_role("link", name="Download them as a text file").click()
    download = started.value
    assert download.suggested_filename == "recovery-codes.txt"
    assert Path(download.path()).read_text("utf-8").splitlines()[3:] == codes

    page.get_by_role("link", name="I have saved them").click()
    page.wait_for_url(f"{server.url}/settings")
    assert page.locator("#status").inner_text() == "connected"
    # Never shown again: not on the settings page, nor when it is loaded again.
    assert not any(code in page.content() for code in codes)
    page.reload()
    assert not any(code in page.content() for code in codes)
