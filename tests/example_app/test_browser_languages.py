"""The browser journey in Danish and German, in Chromium against the example app over HTTP: a
browser set to a language (Playwright's ``locale``, which sets the ``Accept-Language`` Chromium
sends) gets the example's pages and the extension's challenge page in that language, their
buttons and fields named in it.
"""

from __future__ import annotations

from typing import Any

import pyotp

from helpers import Server
from helpers import fresh_code

#: What the journey reads and clicks, by language.
TEXTS = {
    "da": {
        "username": "Brugernavn",
        "password": "Adgangskode",
        "log in": "Log ind",
        "not connected": "ikke slået til",
        "set up": "Opsæt tofaktorgodkendelse",
        "setup code": "Kode fra din godkendelsesapp",
        "confirm": "Bekræft",
        "saved": "Jeg har gemt dem",
        "connected": "slået til",
        "log out": "Log ud",
        "challenge": "Tofaktorgodkendelse",
        "code": "Kode fra din godkendelsesapp",
        "verify": "Bekræft",
        "wrong": "Koden er forkert. Prøv den kode, din app viser nu (4 forsøg tilbage).",
    },
    "de": {
        "username": "Benutzername",
        "password": "Passwort",
        "log in": "Anmelden",
        "not connected": "nicht eingerichtet",
        "set up": "Zwei-Faktor-Authentifizierung einrichten",
        "setup code": "Code aus Ihrer Authenticator-App",
        "confirm": "Bestätigen",
        "saved": "Ich habe sie gespeichert",
        "connected": "eingerichtet",
        "log out": "Abmelden",
        "challenge": "Zwei-Faktor-Authentifizierung",
        "code": "Code aus Ihrer Authenticator-App",
        "verify": "Bestätigen",
        "wrong": "Dieser Code stimmt nicht. Versuchen Sie den Code, den Ihre App jetzt anzeigt"
        " (noch 4 Versuche).",
    },
}


def new_page(browser: Any, language: str) -> Any:
    """A page in a browser context of its own, set to ``language`` (as in Denmark, Germany)."""
    return browser.new_context(locale=f"{language}-{language.upper()}").new_page()


def log_in(page: Any, server: Server, language: str) -> None:
    """Log in on the login page, which is in ``language``, with the server's user."""
    texts = TEXTS[language]
    page.goto(f"{server.url}/login")
    assert page.locator("html").get_attribute("lang") == language
    page.get_by_label(texts["username"]).fill(server.username)
    page.get_by_label(texts["password"]).fill(server.password)
    page.get_by_role("button", name=texts["log in"]).click()


def test_a_danish_setup_then_german_and_danish_logins_with_a_code(
    server: Server, browser: Any
) -> None:
    danish = TEXTS["da"]

    page = new_page(browser, "da")
    log_in(page, server, "da")
    page.wait_for_url(f"{server.url}/settings")
    assert page.locator("#status").inner_text() == danish["not connected"]
    page.get_by_role("button", name=danish["set up"]).click()
    totp = pyotp.TOTP(page.locator("#secret").inner_text().strip())
    page.get_by_label(danish["setup code"]).fill(fresh_code(totp, server.clock))
    page.get_by_role("button", name=danish["confirm"]).click()
    page.get_by_role("link", name=danish["saved"]).click()
    page.wait_for_url(f"{server.url}/settings")
    assert page.locator("#status").inner_text() == danish["connected"]
    page.get_by_role("button", name=danish["log out"]).click()
    page.context.close()

    for language in ("de", "da"):
        texts = TEXTS[language]
        page = new_page(browser, language)
        log_in(page, server, language)
        page.wait_for_url(f"{server.url}/auth/2fa?challengeId=**")
        assert page.locator("html").get_attribute("lang") == language
        assert page.get_by_role("heading", level=1).inner_text() == texts["challenge"]
        field = page.get_by_label(texts["code"])
        if language == "de":  # a wrong code first
            window = {totp.at(server.clock.now + 30 * step) for step in (-1, 0, 1, 2)}
            field.fill(next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in window))
            page.get_by_role("button", name=texts["verify"]).click()
            assert page.locator("#problem").inner_text() == texts["wrong"]
        page.get_by_label(texts["code"]).fill(fresh_code(totp, server.clock))
        page.get_by_role("button", name=texts["verify"]).click()
        page.wait_for_url(f"{server.url}/settings")
        assert page.locator("#status").inner_text() == texts["connected"]
        page.context.close()
