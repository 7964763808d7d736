"""Languages: the challenge page and the JSON errors in Danish and German with the same
``errorCode``, English by default, without Flask-Babel and for a language without a catalogue;
the app's own locale selector when it initialised Flask-Babel.

And the sources of the translations, for the extension and the example app alike: every
user-visible string of a template is marked for translation, and every catalogue translates
every message the sources mark, compiled as it is written.
"""

from __future__ import annotations

import gettext
import re
import sys
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any

import jinja2
import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po
from flask import Flask
from flask.testing import FlaskClient
from flask_babel import Babel
from jinja2 import nodes
from werkzeug.datastructures import LanguageAccept
from werkzeug.http import parse_accept_header

import flask_ucloud_2fa
from flask_ucloud_2fa import DatabaseUnavailable
from flask_ucloud_2fa import InvalidCode
from flask_ucloud_2fa import TwoFactorError
from flask_ucloud_2fa import error_response
from flask_ucloud_2fa import localized_why
from flask_ucloud_2fa.catalogues import negotiate

from helpers import BROWSER
from helpers import FakeClock
from helpers import answer
from helpers import assert_error
from helpers import begin_login
from helpers import browser_login
from helpers import connect
from helpers import wrong_code

if TYPE_CHECKING:
    from helpers import TestUser

ROOT = Path(__file__).resolve().parents[1]
LANGUAGES = ["da", "de"]

# -- the challenge page and the JSON errors ----------------------------------------------------

#: What the challenge page says, by language: its heading, the code field's label and button.
CHALLENGE_PAGE = {
    "en": ("Two-factor authentication", "Code from your authenticator app", "Verify"),
    "da": ("Tofaktorgodkendelse", "Kode fra din godkendelsesapp", "Bekræft"),
    "de": ("Zwei-Faktor-Authentifizierung", "Code aus Ihrer Authenticator-App", "Bestätigen"),
}
#: What a wrong code on the page says with four attempts left, by language.
WRONG_CODE = {
    "en": "That code is not right. Try the code your app shows now (4 attempts left).",
    "da": "Koden er forkert. Prøv den kode, din app viser nu (4 forsøg tilbage).",
    "de": "Dieser Code stimmt nicht. Versuchen Sie den Code, den Ihre App jetzt anzeigt"
    " (noch 4 Versuche).",
}
#: ``why`` of a body that is not a JSON object, and of a wrong code, by language.
NOT_AN_OBJECT = {
    "en": "The body must be a JSON object.",
    "da": "Indholdet skal være et JSON-objekt.",
    "de": "Der Inhalt muss ein JSON-Objekt sein.",
}
INVALID_CODE = {
    "en": "Invalid 2FA code. Try again.",
    "da": "Ugyldig 2FA-kode. Prøv igen.",
    "de": "Ungültiger 2FA-Code. Versuchen Sie es erneut.",
}


def html(response: Any) -> str:
    assert response.mimetype == "text/html", response.mimetype
    return " ".join(response.get_data(as_text=True).split())


def challenge_page(client: FlaskClient, user: TestUser, **headers: str) -> str:
    """The challenge page a browser is sent to after its password, with ``headers``."""
    started = browser_login(client, user)
    assert started.status_code == 302, started.get_data(as_text=True)
    return html(client.get(started.headers["Location"], headers={**BROWSER, **headers}))


@pytest.fixture
def secret(client: FlaskClient, user: TestUser, clock: FakeClock) -> str:
    """``user`` gets 2FA connected (the clock past the confirming code); the secret."""
    return connect(client, user.headers, clock)


@pytest.fixture
def connected_browser(user: TestUser, secret: str) -> TestUser:
    """``user``, with 2FA connected."""
    return user


@pytest.mark.parametrize("language", ["en", *LANGUAGES])
def test_the_challenge_page_is_in_the_accepted_language(
    client: FlaskClient, connected_browser: TestUser, language: str
) -> None:
    page = challenge_page(client, connected_browser, **{"Accept-Language": f"{language};q=0.9"})
    assert f'<html lang="{language}">' in page
    heading, label, button = CHALLENGE_PAGE[language]
    assert f"<title>{heading}</title>" in page
    assert f"<h1>{heading}</h1>" in page
    assert f'<label for="verification-code">{label}</label>' in page
    assert f'<button type="submit">{button}</button>' in page


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_wrong_code_on_the_page_is_said_in_the_accepted_language(
    client: FlaskClient, user: TestUser, secret: str, clock: FakeClock, language: str
) -> None:
    started = browser_login(client, user)
    location = started.headers["Location"]
    page = html(client.get(location, headers=BROWSER))
    fields = dict(re.findall(r'name="(challengeId|csrfToken)" value="([^"]+)"', page))
    answered = client.post(
        "/auth/2fa/challenge/form",
        data={**fields, "verificationCode": wrong_code(secret, clock)},
        headers={**BROWSER, "Accept-Language": language},
    )
    assert answered.status_code == 403
    assert WRONG_CODE[language] in html(answered)
    assert WRONG_CODE["en"] not in html(answered)


def test_a_single_attempt_left_is_singular(app: Flask) -> None:
    forms = {
        "en": "(1 attempt left)",
        "da": "(1 forsøg tilbage)",
        "de": "(noch 1 Versuch)",
    }
    message = app.jinja_env.globals["_2fa_plural"]
    for language, expected in forms.items():
        with app.test_request_context(headers={"Accept-Language": language}):
            said = message(
                "That code is not right. Try the code your app shows now (%(num)d attempt left).",
                "That code is not right. Try the code your app shows now (%(num)d attempts left).",
                1,
            )
        assert said.endswith(expected + "."), said


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_json_error_is_in_the_accepted_language_with_the_same_error_code(
    client: FlaskClient, language: str
) -> None:
    english = client.post("/auth/2fa/challenge", data="[]")
    translated = client.post(
        "/auth/2fa/challenge", data="[]", headers={"Accept-Language": f"{language}-DK, en;q=0.5"}
    )
    assert_error(english, 400, "BAD_REQUEST")
    assert_error(translated, 400, "BAD_REQUEST")
    assert english.json["why"] == NOT_AN_OBJECT["en"]
    assert translated.json["why"] == NOT_AN_OBJECT[language]


@pytest.mark.parametrize("language", LANGUAGES)
def test_a_wrong_code_in_json_keeps_its_error_code_and_attempts(
    client: FlaskClient, user: TestUser, secret: str, clock: FakeClock, language: str
) -> None:
    challenge_id = begin_login(client, user)
    code = wrong_code(secret, clock)
    english = answer(client, challenge_id, code)
    translated = answer(client, challenge_id, code, headers={"Accept-Language": language})
    assert_error(english, 403, "INVALID_CODE")
    assert_error(translated, 403, "INVALID_CODE")
    assert english.json["why"] == INVALID_CODE["en"]
    assert translated.json["why"] == INVALID_CODE[language]
    assert (english.json["remainingAttempts"], translated.json["remainingAttempts"]) == (4, 3)


@pytest.mark.parametrize("language", LANGUAGES)
def test_every_error_class_says_its_why_in_the_language(app: Flask, language: str) -> None:
    errors = [
        cls
        for name in flask_ucloud_2fa.__all__
        if isinstance(cls := getattr(flask_ucloud_2fa, name), type)
        and issubclass(cls, TwoFactorError)
    ]
    assert len(errors) >= 10
    with app.test_request_context(headers={"Accept-Language": language}):
        untranslated = [
            cls.__name__ for cls in errors if localized_why(TwoFactorError(cls.why)) == cls.why
        ]
    assert not untranslated


def test_the_unavailable_page_and_its_json_are_translated(app: Flask) -> None:
    with app.test_request_context(headers={"Accept-Language": "de"}):
        answer_ = error_response(DatabaseUnavailable(7))
    assert answer_.json == {
        "statusCode": 503,
        "why": (
            "Der Dienst ist kurz nicht verfügbar. Versuchen Sie es in ein paar Sekunden erneut."
        ),
        "errorCode": "SERVICE_UNAVAILABLE",
        "retryAfter": 7,
    }
    template = app.jinja_env.get_or_select_template("ucloud_2fa/unavailable.html")
    with app.test_request_context(headers={"Accept-Language": "da"}):
        page = " ".join(template.render(why="-", retry_after=7).split())
    assert '<html lang="da">' in page
    assert "Vent 7 sekunder, og gå så tilbage og prøv igen." in page


@pytest.mark.parametrize(
    "accepted", [None, "en", "fr", "*", "en-GB, da;q=0.5", "x-klingon, de;q=0.0"]
)
def test_english_unless_a_catalogue_language_is_accepted(
    client: FlaskClient, connected_browser: TestUser, accepted: str | None
) -> None:
    headers = {} if accepted is None else {"Accept-Language": accepted}
    page = challenge_page(client, connected_browser, **headers)
    assert '<html lang="en">' in page
    assert CHALLENGE_PAGE["en"][0] in page
    assert (
        client.post("/auth/2fa/challenge", data="[]", headers=headers).json["why"]
        == (NOT_AN_OBJECT["en"])
    )


@pytest.mark.parametrize("language", ["de_AT", "de-CH", "da-DK"])
def test_a_territory_falls_back_to_its_language(app: Flask, language: str) -> None:
    with app.test_request_context(headers={"Accept-Language": language}):
        why = localized_why(InvalidCode())
    assert why == INVALID_CODE[language[:2]]


def test_without_flask_babel_everything_stays_english(
    client: FlaskClient, connected_browser: TestUser, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "flask_babel", None)  # import flask_babel: ImportError
    with pytest.raises(ImportError, match="flask_babel"):
        import flask_babel  # noqa: F401
    danish = {"Accept-Language": "da"}
    page = challenge_page(client, connected_browser, **danish)
    assert '<html lang="en">' in page
    for text in CHALLENGE_PAGE["en"]:
        assert text in page
    for text in CHALLENGE_PAGE["da"]:
        assert text not in page
    refused = client.post("/auth/2fa/challenge", data="[]", headers=danish)
    assert_error(refused, 400, "BAD_REQUEST")
    assert refused.json["why"] == NOT_AN_OBJECT["en"]


def test_an_app_with_flask_babel_chooses_with_its_own_locale_selector(
    app: Flask, client: FlaskClient, connected_browser: TestUser
) -> None:
    # The app's selector says German whatever the browser accepts.
    Babel(app, locale_selector=lambda: "de")
    page = challenge_page(client, connected_browser, **{"Accept-Language": "da"})
    assert '<html lang="de">' in page
    assert CHALLENGE_PAGE["de"][0] in page
    refused = client.post("/auth/2fa/challenge", data="[]", headers={"Accept-Language": "da"})
    assert refused.json["why"] == NOT_AN_OBJECT["de"]


def test_an_app_with_flask_babel_and_no_selector_gets_its_default_locale(
    app: Flask, client: FlaskClient
) -> None:
    app.config["BABEL_DEFAULT_LOCALE"] = "da"
    Babel(app)
    assert client.post("/auth/2fa/challenge", data="[]").json["why"] == NOT_AN_OBJECT["da"]


def test_outside_a_request_errors_stay_english() -> None:
    assert localized_why(InvalidCode()) == INVALID_CODE["en"]


# -- the sources: every template string marked, every message translated ------------------------

#: The gettext domains: the extension's and the example app's, each with its extraction
#: settings, its catalogues and its templates.
DOMAINS = {
    "flask_ucloud_2fa": (
        ROOT / "babel.cfg",
        ROOT / "flask_ucloud_2fa" / "translations",
        ROOT / "flask_ucloud_2fa" / "templates",
    ),
    "messages": (
        ROOT / "example_app" / "babel.cfg",
        ROOT / "example_app" / "translations",
        ROOT / "example_app" / "templates",
    ),
}
#: The names that translate in the templates: the extension's and Flask-Babel's.
TRANSLATING = {"_2fa", "_2fa_plural", "_", "gettext", "ngettext"}
#: Attributes whose text people read or hear.
READ_ATTRIBUTES = {"alt", "title", "placeholder", "aria-label", "aria-description", "label"}
#: A word with a lower-case letter: not a code (``ABCD-EFGH``), not a number.
WORD = re.compile(r"\b(?=[A-Za-z]*[a-z])[A-Za-z]{2,}\b")
TEMPLATES = sorted(path for _, _, folder in DOMAINS.values() for path in folder.rglob("*.html"))


def _output_constants(expression: nodes.Node) -> Iterator[str]:
    """The literal strings ``{{ expression }}`` may print, outside a translating call."""
    if isinstance(expression, nodes.Const) and isinstance(expression.value, str):
        yield expression.value
    elif isinstance(expression, nodes.CondExpr):
        yield from _output_constants(expression.expr1)
        if expression.expr2 is not None:
            yield from _output_constants(expression.expr2)
    elif isinstance(expression, (nodes.Concat, nodes.Add)):
        for child in expression.iter_child_nodes():
            yield from _output_constants(child)
    elif isinstance(expression, nodes.Filter) and expression.node is not None:
        yield from _output_constants(expression.node)


def _skeleton(node: nodes.Node) -> Iterator[str]:
    """The template's text in document order, every branch included; each ``{{ }}`` is a
    NUL, followed by the literal strings it may print."""
    if isinstance(node, nodes.Output):
        for child in node.nodes:
            if isinstance(child, nodes.TemplateData):
                yield child.data
            else:
                yield "\0" + " ".join(_output_constants(child))
        return
    for child in node.iter_child_nodes():
        if isinstance(child, (nodes.Stmt, nodes.Template, nodes.Helper)):
            yield from _skeleton(child)


class _Text(HTMLParser):
    """The text of an HTML page and of the attributes people read, outside style and script."""

    def __init__(self) -> None:
        super().__init__()
        self.texts: list[str] = []
        self._hidden = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag in ("style", "script"):
            self._hidden += 1
        attributes = dict(attrs)
        read = READ_ATTRIBUTES | (
            {"value"} if attributes.get("type") in ("submit", "button") else set()
        )
        self.texts.extend(value for name, value in attrs if name in read and value)

    def handle_endtag(self, tag: str) -> None:
        if tag in ("style", "script"):
            self._hidden -= 1

    def handle_data(self, data: str) -> None:
        if not self._hidden:
            self.texts.append(data)


def unmarked_text(source: str) -> list[str]:
    """The natural-language text of a template that no translating call or ``{% trans %}``
    block holds: text between tags, read attributes, and literal strings it prints."""
    environment = jinja2.Environment(extensions=["jinja2.ext.i18n"])
    parser = _Text()
    parser.feed("".join(_skeleton(environment.parse(source))))
    parser.close()
    found = []
    for text in parser.texts:
        text = " ".join(text.replace("\0", " ").split())
        if WORD.search(text):
            found.append(text)
    return found


@pytest.mark.parametrize(
    ("source", "unmarked"),
    [
        ("<p>Hello there</p>", ["Hello there"]),
        ("<title>{% block title %}Settings{% endblock %}</title>", ["Settings"]),
        ('<img src="{{ qr }}" alt="A QR code">', ["A QR code"]),
        ('<input type="submit" value="Send">', ["Send"]),
        ("<p>{{ 'connected' if on else 'not connected' }}</p>", ["connected not connected"]),
        ("<p>{{ n }} {{ 'day' if n == 1 else 'days' }}</p>", ["day days"]),
        ("<p>Wait {{ seconds }} seconds</p>", ["Wait seconds"]),
        ("<p>{{ _2fa('Hello there') }}</p>", []),
        ("<p>{{ _2fa_plural('%(num)d day', '%(num)d days', n) }}</p>", []),
        ("<p>{{ _('Hello') }} {{ user.name }}</p>", []),
        ("<p>{% trans name=user.name %}Hello {{ name }}{% endtrans %}</p>", []),
        ('<input placeholder="ABCD-EFGH-JKLM-NP23" class="code wide" id="recovery-code">', []),
        ("<style>body { color: red; }</style><p>{{ why }}</p>", []),
        ('<p class="{{ "on" if connected else "off" }}">&middot; 2FA</p>', []),
        ("{# A comment for people who edit templates #}<p>{{ url_for('pages.index') }}</p>", []),
    ],
)
def test_the_marking_check_finds_unmarked_text(source: str, unmarked: list[str]) -> None:
    assert unmarked_text(source) == unmarked


@pytest.mark.parametrize("path", TEMPLATES, ids=lambda path: str(path.relative_to(ROOT)))
def test_every_template_string_is_marked_for_translation(path: Path) -> None:
    assert unmarked_text(path.read_text("utf-8")) == []


def extracted_messages(domain: str) -> dict[str | tuple[str, ...], str]:
    """The messages the domain's sources mark, as ``pybabel extract`` with its ``babel.cfg``
    finds them, and where each is."""
    config = DOMAINS[domain][0]
    with config.open() as file:
        method_map, options_map = parse_mapping_cfg(file, str(config))
    found: dict[str | tuple[str, ...], str] = {}
    for filename, lineno, message, _, _ in extract_from_dir(ROOT, method_map, options_map):
        found.setdefault(message, f"{filename}:{lineno}")
    return found


def catalogue(domain: str, language: str) -> Catalog:
    path = DOMAINS[domain][1] / language / "LC_MESSAGES" / f"{domain}.po"
    with path.open("rb") as file:
        return read_po(file, locale=language, domain=domain)


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("domain", DOMAINS)
def test_the_catalogue_translates_every_marked_message(domain: str, language: str) -> None:
    extracted = extracted_messages(domain)
    assert len(extracted) >= 10
    messages = catalogue(domain, language)
    missing = {
        str(message): where
        for message, where in extracted.items()
        if messages.get(message[0] if isinstance(message, tuple) else message) is None
    }
    assert not missing, f"run `make messages` and translate: {missing}"
    unfinished = [
        message.id
        for message in messages
        if message.id
        and (
            message.fuzzy
            or not all(message.string if isinstance(message.string, tuple) else [message.string])
        )
    ]
    assert not unfinished, f"fuzzy or empty: {unfinished}"
    errors = [(message.id, [str(e) for e in found]) for message, found in messages.check()]
    assert not errors


@pytest.mark.parametrize("language", LANGUAGES)
@pytest.mark.parametrize("domain", DOMAINS)
def test_the_compiled_catalogue_is_the_written_one(domain: str, language: str) -> None:
    folder = DOMAINS[domain][1]
    compiled = folder / language / "LC_MESSAGES" / f"{domain}.mo"
    assert compiled.is_file(), f"{compiled} is missing: run `make install`"
    with compiled.open("rb") as file:
        translations = gettext.GNUTranslations(file)
    stale = []
    for message in catalogue(domain, language):
        if not message.id:
            continue
        if isinstance(message.id, tuple):
            said = [translations.ngettext(*message.id, n) for n in (1, 2)]
            expected = [message.string[0], message.string[-1]]
        else:
            said, expected = [translations.gettext(message.id)], [message.string]
        if said != expected:
            stale.append(message.id)
    assert not stale, f"compiled from an older catalogue, run `make install`: {stale}"


@pytest.mark.parametrize(
    ("accepted", "chosen"),
    [
        ("da", "da"),
        ("da-DK, en;q=0.5", "da"),
        ("en-GB, da;q=0.5", "en"),
        ("DE_at", "de"),
        ("fr, de;q=0.8, da;q=0.9", "da"),
        ("*;q=0.5, de;q=0.1", "en"),
        ("x-klingon, de;q=0", None),
        ("", None),
    ],
)
def test_the_language_is_the_clients_first_choice_with_a_catalogue(
    accepted: str, chosen: str | None
) -> None:
    parsed = parse_accept_header(accepted, LanguageAccept)
    assert negotiate(parsed, ["en", "da", "de"]) == chosen
