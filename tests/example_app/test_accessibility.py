"""Accessibility of the browser journey, in Chromium: axe-core on every page, a login with the
keyboard alone, the secret in groups of four and a QR code whose text alternative keeps the
secret to itself.

axe-core (``axe-playwright-python``) checks each page as a person reaches it, against WCAG 2 A
and AA and axe's best practices; a violation of impact ``serious`` or ``critical`` fails the
page's test, with axe's report.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from typing import Any

import pyotp
import pytest
from axe_playwright_python.sync_playwright import Axe

from helpers import Server
from helpers import fresh_code
from helpers import log_in

#: The impacts that fail a page; axe's others are "minor" and "moderate".
BLOCKING = {"serious", "critical"}

#: Every page of the journey, in the order a person meets them.
PAGES = [
    "login",
    "login-wrong-password",
    "settings-without-2fa",
    "setup",
    "setup-wrong-code",
    "setup-confirmed",
    "settings-with-2fa-password-only-session",
    "challenge",
    "challenge-wrong-code",
    "settings-with-2fa",
    "recovery-codes",
]


@dataclass
class Journey:
    """What the walk through the pages found: axe's results per page, and the setup page."""

    totp: pyotp.TOTP
    secret_text: str
    secret_groups: list[str]
    #: Each group's box on the screen: left, right and top, in pixels.
    secret_boxes: list[dict[str, float]]
    secret_selection: str
    qr_alt: str
    otpauth_uri: str
    recovery_codes: list[str]
    axe: dict[str, dict[str, Any]] = field(default_factory=dict)


def blocking_violations(results: dict[str, Any]) -> list[dict[str, Any]]:
    """axe's violations of impact serious or critical."""
    return [v for v in results["violations"] if v["impact"] in BLOCKING]


def report(violations: list[dict[str, Any]]) -> str:
    """axe's violations, one line per element, for a failing assertion."""
    return "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} at {', '.join(map(str, node['target']))}"
        for v in violations
        for node in v["nodes"]
    )


def wrong_code(totp: pyotp.TOTP, now: float) -> str:
    """Six digits that are none of the codes the server accepts around ``now``."""
    window = {totp.at(now + 30 * step) for step in range(-2, 3)}
    return next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in window)


def submit(page: Any, button: str) -> None:
    """Press a form's button and wait for the page it leads to."""
    with page.expect_navigation():
        page.get_by_role("button", name=button).click()


@pytest.fixture(scope="module")
def journey(server: Server, browser: Any) -> Iterator[Journey]:
    """One person's walk through every page: log in, set up 2FA with the QR page, log in
    again with a wrong code then a right one, make recovery codes; axe checks each page."""
    axe = Axe()
    context = browser.new_context()
    page = context.new_page()
    checked: dict[str, dict[str, Any]] = {}

    def check(name: str) -> None:
        checked[name] = axe.run(page).response

    page.goto(f"{server.url}/login")
    check("login")
    page.get_by_label("Username").fill(server.username)
    page.get_by_label("Password").fill("not the password")
    submit(page, "Log in")
    assert page.locator("#problem").is_visible()
    check("login-wrong-password")

    log_in(page, server)
    page.wait_for_url(f"{server.url}/settings")
    check("settings-without-2fa")

    submit(page, "Set up two-factor authentication")
    secret = page.locator("#secret")
    secret_text = secret.inner_text()
    groups = secret.locator(".secret-group").all_inner_texts()
    boxes = page.evaluate(
        """() => [...document.querySelectorAll("#secret .secret-group")].map(group => {
            const box = group.getBoundingClientRect();
            return {left: box.left, right: box.right, top: box.top};
        })"""
    )
    # What a person copying the key with the mouse gets: the selection of the whole key.
    selection = page.evaluate(
        """() => {
            const range = document.createRange();
            range.selectNodeContents(document.getElementById("secret"));
            const selection = window.getSelection();
            selection.removeAllRanges();
            selection.addRange(range);
            return selection.toString();
        }"""
    )
    qr_alt = page.locator("img.qr").get_attribute("alt") or ""
    otpauth_uri = page.locator("#otpauth-link").get_attribute("href") or ""
    totp = pyotp.TOTP(re.sub(r"\s", "", secret_text))
    check("setup")

    page.get_by_label("Code from your authenticator app").fill(wrong_code(totp, server.clock.now))
    submit(page, "Confirm")
    assert page.locator("#problem").is_visible()
    check("setup-wrong-code")

    page.get_by_label("Code from your authenticator app").fill(fresh_code(totp, server.clock))
    submit(page, "Confirm")
    check("setup-confirmed")

    page.goto(f"{server.url}/settings")
    assert page.locator("#status").inner_text() == "connected"
    check("settings-with-2fa-password-only-session")

    submit(page, "Log out")
    log_in(page, server)
    page.wait_for_url(f"{server.url}/auth/2fa?challengeId=**")
    check("challenge")

    page.get_by_label("Code from your authenticator app").fill(wrong_code(totp, server.clock.now))
    submit(page, "Verify")
    assert page.locator("#problem").is_visible()
    check("challenge-wrong-code")

    page.get_by_label("Code from your authenticator app").fill(fresh_code(totp, server.clock))
    submit(page, "Verify")
    page.wait_for_url(f"{server.url}/settings")
    check("settings-with-2fa")

    page.locator("#recovery-proof").fill(fresh_code(totp, server.clock))
    submit(page, "Generate recovery codes")
    codes = page.locator("#recovery-codes li").all_inner_texts()
    assert codes
    check("recovery-codes")

    context.close()
    yield Journey(totp, secret_text, groups, boxes, selection, qr_alt, otpauth_uri, codes, checked)


@pytest.mark.parametrize("name", PAGES)
def test_page_has_no_serious_or_critical_axe_violation(journey: Journey, name: str) -> None:
    results = journey.axe[name]
    assert results["passes"], "axe checked nothing"
    violations = blocking_violations(results)
    assert not violations, report(violations)


def test_axe_finds_what_it_must(browser: Any) -> None:
    """The check above fails for a page with violations: an image without a text alternative
    and a field without a label."""
    context = browser.new_context()
    page = context.new_page()
    page.set_content(
        "<!doctype html><html><head><title>t</title></head><body><main><h1>t</h1>"
        '<img src="data:image/png;base64,AAAA"><input type="text" name="code">'
        "</main></body></html>"
    )
    found = {v["id"] for v in blocking_violations(Axe().run(page).response)}
    context.close()
    assert {"image-alt", "label"} <= found


def test_the_secret_is_shown_in_groups_of_four_and_copied_whole(journey: Journey) -> None:
    secret = journey.totp.secret
    assert re.fullmatch(r"[A-Z2-7]{32}", secret)
    assert journey.secret_groups == [secret[i : i + 4] for i in range(0, len(secret), 4)]
    # On the screen, a gap between the groups of a line.
    boxes = journey.secret_boxes
    pairs = zip(boxes, boxes[1:], strict=False)
    gaps = [b["left"] - a["right"] for a, b in pairs if a["top"] == b["top"]]
    assert gaps and min(gaps) >= 4
    # The gaps are the style sheet's, not spaces: copying the key gives the key as UCloud's
    # answer has it.
    assert journey.secret_text == secret
    assert journey.secret_selection == secret


def test_the_qr_code_has_a_text_alternative_that_keeps_the_secret(journey: Journey) -> None:
    alt = journey.qr_alt
    assert "QR code" in alt and "authenticator app" in alt
    assert journey.otpauth_uri.startswith("otpauth://totp/")
    assert journey.totp.secret not in alt.replace(" ", "").upper()
    assert journey.otpauth_uri not in alt and "otpauth" not in alt


# -- the keyboard alone --------------------------------------------------------------------------


def focused(page: Any) -> str:
    """The element that has the keyboard's focus, as HTML."""
    return str(page.evaluate("() => document.activeElement.outerHTML"))


def tab_to(page: Any, selector: str, presses: int = 12) -> None:
    """Press Tab, at most ``presses`` times, until the element of ``selector`` has the focus,
    and check that the focus shows."""
    for pressed in range(presses + 1):
        if page.evaluate("selector => document.activeElement.matches(selector)", selector):
            shown = page.evaluate(
                """() => document.activeElement.matches(":focus-visible")
                    && getComputedStyle(document.activeElement).outlineStyle !== "none" """
            )
            assert shown, f"the focus on {selector} does not show"
            return
        if pressed < presses:
            page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached {selector}; the focus is on {focused(page)}")


def password_with_the_keyboard(page: Any, server: Server) -> None:
    """Log in with the password, with the keyboard alone, up to the challenge page."""
    page.goto(f"{server.url}/login")
    tab_to(page, "#username")
    page.keyboard.type(server.username)
    tab_to(page, "#password")
    page.keyboard.type(server.password)
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server.url}/auth/2fa?challengeId=**")


def test_login_with_a_code_works_with_the_keyboard_alone(
    server: Server, journey: Journey, page: Any
) -> None:
    password_with_the_keyboard(page, server)

    tab_to(page, "#verification-code")
    page.keyboard.type(fresh_code(journey.totp, server.clock))
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server.url}/settings")
    assert page.locator("#username").inner_text() == server.username
    assert page.locator("#status").inner_text() == "connected"


def test_login_with_a_recovery_code_works_with_the_keyboard_alone(
    server: Server, journey: Journey, page: Any
) -> None:
    password_with_the_keyboard(page, server)

    # "Use a recovery code instead" opens with Enter, and its field is next in the Tab order.
    tab_to(page, "details > summary")
    page.keyboard.press("Enter")
    tab_to(page, "#recovery-code", presses=1)
    page.keyboard.type(journey.recovery_codes[0])
    page.keyboard.press("Enter")
    page.wait_for_url(f"{server.url}/settings")
    assert page.locator("#username").inner_text() == server.username


@pytest.mark.parametrize("locale", ["da-DK", "de-DE"])
def test_translated_login_page_has_no_serious_or_critical_axe_violation(
    server: Server, browser: Any, locale: str
) -> None:
    """The page in the browser's language says which language it is in (screen readers read
    it with that voice), and the translation breaks no rule."""
    context = browser.new_context(locale=locale)
    page = context.new_page()
    page.goto(f"{server.url}/login")
    language = page.evaluate("() => document.documentElement.lang")
    results = Axe().run(page).response
    context.close()
    assert language == locale[:2]
    assert results["passes"], "axe checked nothing"
    violations = blocking_violations(results)
    assert not violations, report(violations)
