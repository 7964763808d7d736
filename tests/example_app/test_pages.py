"""The example app's pages: log in through the 2FA step, set up 2FA, log out, CSRF, redirects."""

from __future__ import annotations

import re
from collections.abc import Callable
from html import unescape
from html.parser import HTMLParser
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import unquote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from werkzeug.test import TestResponse

import example_app
from example_app import db
from example_app.models import Token
from example_app.models import User

from helpers import FakeClock
from helpers import canonical
from helpers import code_for
from helpers import count
from helpers import decrypt_secret
from helpers import stored_hashes
from helpers import wrong_code

if TYPE_CHECKING:
    # Imported for annotations only: a module-level Test* class would be collected by pytest.
    from helpers import TestUser

#: What browsers send; it is how the login step knows to redirect to the challenge page.
BROWSER = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
CHALLENGE_LOCATION = re.compile(r"/auth/2fa\?challengeId=([A-Za-z0-9_-]{43,})")
EVIL_NEXT = [
    "https://evil.example/",
    "//evil.example",
    "/\\evil.example",
    "/\t/evil.example",
    "/\n/evil.example",
    "javascript:alert(1)",
    "evil.example",
]


# -- reading pages -----------------------------------------------------------------------------


class Page(HTMLParser):
    """The parts of an HTML page the tests look at: inputs, images and texts by element id."""

    VOID = {"input", "img", "br", "meta", "link", "hr"}

    def __init__(self, html: str) -> None:
        super().__init__()
        self.inputs: list[dict[str, str]] = []
        self.images: list[dict[str, str]] = []
        self.labels: dict[str, str] = {}
        self.texts: dict[str, str] = {}
        self._open: list[tuple[str | None, str | None]] = []  # (tag, id) of open elements
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = {name: value or "" for name, value in attrs}
        if tag == "input":
            self.inputs.append(attributes)
        elif tag == "img":
            self.images.append(attributes)
        if tag == "label" and "for" in attributes:
            self.labels[attributes["for"]] = ""
        if tag not in self.VOID:
            self._open.append((tag, attributes.get("id")))
            if "id" in attributes:
                self.texts[attributes["id"]] = ""
            if tag == "label":
                self._open[-1] = (tag, "label:" + attributes.get("for", ""))

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        while self._open and self._open.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        for _, element_id in self._open:
            if element_id is None:
                continue
            if element_id.startswith("label:"):
                self.labels[element_id[6:]] += data
            else:
                self.texts[element_id] += data

    def text(self, element_id: str) -> str:
        return " ".join(self.texts[element_id].split())

    def value(self, name: str) -> str:
        values = {field["value"] for field in self.inputs if field.get("name") == name}
        assert len(values) == 1, (name, values)
        return values.pop()

    def field(self, element_id: str) -> dict[str, str]:
        return next(field for field in self.inputs if field.get("id") == element_id)


def page(response: TestResponse) -> Page:
    assert response.mimetype == "text/html"
    return Page(response.get_data(as_text=True))


def csrf(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token of the session, read from a form on ``path`` as a browser would."""
    return page(client.get(path)).value("csrf_token")


def session_of(client: FlaskClient) -> dict[str, Any]:
    with client.session_transaction() as session:
        return dict(session)


def user_id_of(client: FlaskClient) -> int | None:
    """The id of the user logged in to the client's session, as Flask-Login keeps it (under
    ``_user_id``, which its ``FlaskLoginClient`` writes too)."""
    user_id = session_of(client).get("_user_id")
    return None if user_id is None else int(user_id)


def credential(app: Flask, user: TestUser) -> Any:
    models = example_app.two_factor.models
    with app.app_context():
        return db.session.execute(
            select(models.Credential).filter_by(user_id=user.id)
        ).scalar_one_or_none()


# -- acting as a browser -----------------------------------------------------------------------


def post_login(
    client: FlaskClient,
    user: TestUser,
    *,
    password: str | None = None,
    next_url: str | None = None,
    query_next: str | None = None,
    form_page: str = "/login",
) -> TestResponse:
    """Fill in the login form of ``form_page``, as a browser would (it sends
    ``Accept: text/html``)."""
    form = {
        "csrf_token": csrf(client, form_page),
        "username": user.username,
        "password": user.password if password is None else password,
    }
    if next_url is not None:
        form["next"] = next_url
    return client.post(
        "/login",
        query_string={"next": query_next} if query_next else None,
        data=form,
        headers=BROWSER,
    )


def challenge_form(client: FlaskClient, location: str) -> dict[str, str]:
    """The hidden fields of the extension's challenge page at ``location``."""
    challenge = page(client.get(location, headers=BROWSER))
    return {
        "challengeId": challenge.value("challengeId"),
        "csrfToken": challenge.value("csrfToken"),
    }


def answer_challenge(client: FlaskClient, location: str, code: str) -> TestResponse:
    form = {**challenge_form(client, location), "verificationCode": code}
    return client.post("/auth/2fa/challenge/form", data=form, headers=BROWSER)


def settings_post(client: FlaskClient, path: str, **form: str) -> TestResponse:
    return client.post(path, data={"csrf_token": csrf(client, "/settings"), **form})


def confirm(client: FlaskClient, challenge_id: str, code: str) -> TestResponse:
    """Confirm the setup ``challenge_id`` on the settings page with ``code``."""
    return settings_post(client, "/settings/2fa/confirm", challengeId=challenge_id, code=code)


@pytest.fixture
def logged_in(client: FlaskClient, user: TestUser) -> TestUser:
    """``user`` logged in through the login page (no 2FA yet)."""
    response = post_login(client, user)
    assert response.status_code == 302, response.get_data(as_text=True)
    return user


@pytest.fixture
def set_up(
    client: FlaskClient, logged_in: TestUser, clock: FakeClock
) -> Callable[[], tuple[str, str]]:
    """Start a setup from the settings page: the secret shown and the setup challenge id."""

    def start() -> tuple[str, str]:
        response = settings_post(client, "/settings/2fa/setup")
        assert response.status_code == 200
        shown = page(response)
        return shown.text("secret"), shown.value("challengeId")

    return start


@pytest.fixture
def connected_in_a_password_session(
    client: FlaskClient,
    logged_in: TestUser,
    clock: FakeClock,
    set_up: Callable[[], tuple[str, str]],
) -> str:
    """``logged_in`` with 2FA connected through the pages, still in the session of the
    password login; the secret. The clock then moves a step on, so the confirming code is
    spent."""
    secret, challenge_id = set_up()
    response = confirm(client, challenge_id, code_for(secret, clock))
    assert response.status_code == 200  # the first recovery codes
    assert len(page(response).text("recovery-codes").split()) == 10
    clock.advance(30)
    return secret


@pytest.fixture
def connected(
    client: FlaskClient,
    logged_in: TestUser,
    clock: FakeClock,
    connected_in_a_password_session: str,
) -> str:
    """``connected_in_a_password_session``, then logged in again with the password and a code:
    a session whose login used the second factor. The clock moves a step on again."""
    secret = connected_in_a_password_session
    location = post_login(client, logged_in, form_page="/login?prompt=login").location
    assert answer_challenge(client, location, code_for(secret, clock)).status_code == 302
    assert session_of(client)["login"]["amr"] == ["pwd", "otp"]
    clock.advance(30)
    return secret


# -- the login page ----------------------------------------------------------------------------


def test_login_page_has_a_labelled_form(app: Flask, client: FlaskClient) -> None:
    response = client.get("/login")

    assert response.status_code == 200
    login = page(response)
    assert login.labels == {"username": "Username", "password": "Password"}
    assert login.field("username")["autocomplete"] == "username"
    assert login.field("password")["type"] == "password"
    assert login.field("password")["autocomplete"] == "current-password"
    assert login.value("csrf_token") == session_of(client)["csrf_token"]
    assert user_id_of(client) is None


@pytest.mark.parametrize("who", ["wrong-password", "unknown-user"])
def test_wrong_password_is_401_with_a_message(
    app: Flask, client: FlaskClient, user: TestUser, who: str
) -> None:
    if who == "unknown-user":
        user.username = "mallory"

    response = post_login(client, user, password="not the password")

    assert response.status_code == 401
    shown = page(response)
    assert shown.text("problem") == "Incorrect username or password."
    assert shown.field("username")["value"] == user.username
    assert shown.field("password").get("value") is None
    assert user_id_of(client) is None


def test_empty_form_is_400(app: Flask, client: FlaskClient) -> None:
    response = client.post("/login", data={"csrf_token": csrf(client)}, headers=BROWSER)

    assert response.status_code == 400
    assert page(response).text("problem") == "Enter your username and password."


def test_login_without_2fa_makes_a_session_and_goes_to_settings(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    response = post_login(client, user)

    assert response.status_code == 302
    assert response.location == "/settings"
    assert user_id_of(client) == user.id
    session = session_of(client)
    assert session["login"] == {"amr": ["pwd"], "auth_time": int(clock.now), "generation": 0}
    assert "csrf_token" not in session  # a login makes a new session, and a new token


def test_login_page_of_a_logged_in_user_redirects_to_settings(
    client: FlaskClient, logged_in: TestUser
) -> None:
    response = client.get("/login")

    assert response.status_code == 302
    assert response.location == "/settings"


def test_root_redirects_to_settings(app: Flask, client: FlaskClient) -> None:
    response = client.get("/")

    assert response.status_code == 302
    assert response.location == "/settings"


# -- logging in with 2FA -----------------------------------------------------------------------


def test_login_with_2fa_redirects_to_the_challenge_page_without_a_session(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str]
) -> None:
    user, _ = connected_user
    tokens_before = count(app, Token)

    response = post_login(client, user)

    assert response.status_code == 302
    assert CHALLENGE_LOCATION.fullmatch(response.location), response.location
    assert user_id_of(client) is None
    assert count(app, Token) == tokens_before


def test_right_code_on_the_challenge_page_logs_in_and_goes_next(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    location = post_login(client, user, query_next="/oauth/authorize?client_id=demo").location

    response = answer_challenge(client, location, code_for(secret, clock))

    assert response.status_code == 302
    assert response.location == "/oauth/authorize?client_id=demo"
    assert user_id_of(client) == user.id
    assert session_of(client)["login"] == {
        "amr": ["pwd", "otp"],
        "auth_time": int(clock.now),
        "generation": 0,
    }
    assert page(client.get("/settings")).text("status") == "connected"


def test_wrong_code_on_the_challenge_page_shows_the_attempts_left(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    location = post_login(client, user).location

    response = answer_challenge(client, location, wrong_code(secret, clock))

    assert response.status_code == 403
    assert page(response).text("problem") == (
        "That code is not right. Try the code your app shows now (4 attempts left)."
    )
    assert user_id_of(client) is None
    # The same challenge still takes the right code.
    assert answer_challenge(client, location, code_for(secret, clock)).location == "/settings"
    assert user_id_of(client) == user.id


# -- redirects after login ---------------------------------------------------------------------


def test_settings_requires_a_login(app: Flask, client: FlaskClient) -> None:
    response = client.get("/settings")

    assert response.status_code == 302
    assert response.location == "/login?next=/settings"
    assert page(client.get(response.location)).value("next") == "/settings"


def test_next_from_the_login_page_is_kept(app: Flask, client: FlaskClient, user: TestUser) -> None:
    response = post_login(client, user, next_url="/settings?tab=2fa")

    assert response.location == "/settings?tab=2fa"


@pytest.mark.parametrize(
    ("next_url", "location"),
    [
        ("http://localhost/oauth/authorize?client_id=demo", "/oauth/authorize?client_id=demo"),
        ("http://localhost", "/settings"),
        ("http://localhost.evil.example/", "/settings"),
        ("http://localhost:8080/", "/settings"),
    ],
)
def test_next_as_this_sites_absolute_url_keeps_only_the_path(
    app: Flask, client: FlaskClient, user: TestUser, next_url: str, location: str
) -> None:
    response = post_login(client, user, query_next=next_url)

    assert response.location == location


@pytest.mark.parametrize("evil", EVIL_NEXT)
@pytest.mark.parametrize("where", ["query", "form"])
def test_next_to_another_site_is_ignored(
    app: Flask, client: FlaskClient, user: TestUser, evil: str, where: str
) -> None:
    if where == "query":
        response = post_login(client, user, query_next=evil)
    else:
        response = post_login(client, user, next_url=evil)

    assert response.status_code == 302
    assert response.location == "/settings"
    assert user_id_of(client) == user.id


@pytest.mark.parametrize("evil", EVIL_NEXT)
def test_next_to_another_site_is_not_put_in_the_form(
    app: Flask, client: FlaskClient, evil: str
) -> None:
    login = page(client.get("/login", query_string={"next": evil}))

    assert [field for field in login.inputs if field.get("name") == "next"] == []


def test_next_to_another_site_is_ignored_after_the_challenge(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    location = post_login(client, user, query_next="//evil.example").location

    response = answer_challenge(client, location, code_for(secret, clock))

    assert response.location == "/settings"


# -- setting up 2FA ----------------------------------------------------------------------------


def test_settings_shows_the_user_and_that_2fa_is_off(
    client: FlaskClient, logged_in: TestUser
) -> None:
    response = client.get("/settings")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    shown = page(response)
    assert shown.text("username") == logged_in.username
    assert shown.text("status") == "not connected"
    assert shown.text("setup-form") == "Set up two-factor authentication"


def test_setup_shows_the_qr_code_and_the_secret(
    app: Flask, client: FlaskClient, logged_in: TestUser
) -> None:
    response = settings_post(client, "/settings/2fa/setup")

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    shown = page(response)
    [qr_code] = shown.images
    assert qr_code["src"].startswith("data:image/png;base64,")
    assert qr_code["alt"]
    secret = shown.text("secret")
    assert re.fullmatch(r"[A-Z2-7]{32,}", secret)
    stored = credential(app, logged_in)
    assert not stored.connected
    with app.app_context():
        assert decrypt_secret(app, stored.encrypted_secret) == secret
    code = shown.field("code")
    assert shown.labels["code"] == "Code from your authenticator app"
    assert code["autocomplete"] == "one-time-code"
    assert code["inputmode"] == "numeric"
    assert shown.value("challengeId")
    assert secret not in repr(session_of(client))


def test_confirming_with_the_apps_code_connects(
    app: Flask,
    client: FlaskClient,
    logged_in: TestUser,
    clock: FakeClock,
    set_up: Callable[[], tuple[str, str]],
) -> None:
    secret, challenge_id = set_up()

    response = confirm(client, challenge_id, code_for(secret, clock))

    assert response.status_code == 200
    shown = page(response)
    assert shown.text("notices") == "Two-factor authentication is connected."
    assert len(shown.text("recovery-codes").split()) == 10
    assert page(client.get("/settings")).text("status") == "connected"
    assert credential(app, logged_in).connected


def test_code_typed_with_a_space_is_accepted(
    app: Flask,
    client: FlaskClient,
    logged_in: TestUser,
    clock: FakeClock,
    set_up: Callable[[], tuple[str, str]],
) -> None:
    secret, challenge_id = set_up()
    code = code_for(secret, clock)

    response = confirm(client, challenge_id, f" {code[:3]} {code[3:]} ")

    assert response.status_code == 200
    assert credential(app, logged_in).connected


def test_wrong_setup_code_keeps_the_form_without_the_secret(
    app: Flask,
    client: FlaskClient,
    logged_in: TestUser,
    clock: FakeClock,
    set_up: Callable[[], tuple[str, str]],
) -> None:
    secret, challenge_id = set_up()

    response = confirm(client, challenge_id, wrong_code(secret, clock))

    assert response.status_code == 403
    shown = page(response)
    assert shown.text("problem") == (
        "That code is not right. Try the code your app shows now (4 attempts left)."
    )
    assert shown.value("challengeId") == challenge_id
    assert "secret" not in shown.texts
    assert shown.images == []
    assert secret not in response.get_data(as_text=True)
    assert not credential(app, logged_in).connected
    # The app's entry still works with the same challenge.
    confirm(client, challenge_id, code_for(secret, clock))
    assert credential(app, logged_in).connected


@pytest.mark.parametrize("code", ["", "12345", "1234567", "abcdef", "12345x"])
def test_malformed_setup_code_is_400_and_not_counted(
    app: Flask,
    client: FlaskClient,
    logged_in: TestUser,
    set_up: Callable[[], tuple[str, str]],
    code: str,
) -> None:
    _, challenge_id = set_up()

    response = confirm(client, challenge_id, code)

    assert response.status_code == 400
    shown = page(response)
    assert shown.text("problem") == "Enter the six digits your authenticator app shows."
    assert shown.value("challengeId") == challenge_id
    models = example_app.two_factor.models
    assert count(app, models.Challenge, attempts=0, user_id=logged_in.id) == 1
    assert credential(app, logged_in).failures == 0


def test_last_wrong_setup_code_says_start_again(
    app: Flask,
    client: FlaskClient,
    logged_in: TestUser,
    clock: FakeClock,
    set_up: Callable[[], tuple[str, str]],
) -> None:
    secret, challenge_id = set_up()
    wrong = wrong_code(secret, clock)
    for _ in range(4):
        confirm(client, challenge_id, wrong)

    response = confirm(client, challenge_id, wrong)

    assert response.status_code == 403
    shown = page(response)
    assert shown.text("problem") == (
        "That code is not right, and this setup has no attempts left. Start again."
    )
    assert shown.text("setup-form") == "Set up two-factor authentication"


@pytest.mark.parametrize("challenge_id", ["unknown", "x" * 129, ""])
def test_unknown_setup_challenge_says_start_again(
    app: Flask, client: FlaskClient, logged_in: TestUser, clock: FakeClock, challenge_id: str
) -> None:
    response = confirm(client, challenge_id, "123456")

    assert response.status_code == 404
    shown = page(response)
    assert shown.text("problem") == (
        "This setup has expired or was replaced by a newer one. Start again."
    )
    assert shown.text("status") == "not connected"


def test_an_earlier_setup_is_replaced(
    app: Flask,
    client: FlaskClient,
    logged_in: TestUser,
    clock: FakeClock,
    set_up: Callable[[], tuple[str, str]],
) -> None:
    first_secret, first_challenge = set_up()
    second_secret, second_challenge = set_up()

    stale = confirm(client, first_challenge, code_for(first_secret, clock))
    fresh = confirm(client, second_challenge, code_for(second_secret, clock))

    assert stale.status_code == 404
    assert fresh.status_code == 200
    assert credential(app, logged_in).connected


# -- the first recovery codes, and a phone whose clock is off ----------------------------------

RECOVERY_CODE = re.compile(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}")


def downloaded_text(response: TestResponse) -> str:
    """The text file the page's download link holds: its ``data:`` URL, decoded."""
    html = response.get_data(as_text=True)
    tags = re.findall(r'<a [^>]*id="download-recovery-codes"[^>]*>', html)
    assert len(tags) == 1, tags
    assert 'download="recovery-codes.txt"' in tags[0]
    href = unescape(re.findall(r'href="([^"]*)"', tags[0])[0])
    prefix = "data:text/plain;charset=utf-8,"
    assert href.startswith(prefix), href
    return unquote(href[len(prefix) :])


def test_confirming_shows_the_first_recovery_codes_once(
    app: Flask,
    client: FlaskClient,
    logged_in: TestUser,
    clock: FakeClock,
    set_up: Callable[[], tuple[str, str]],
) -> None:
    secret, challenge_id = set_up()
    form = {"challengeId": challenge_id, "code": code_for(secret, clock)}

    response = settings_post(client, "/settings/2fa/confirm", **form)

    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    shown = page(response)
    assert shown.text("store-now") == "Store these now: they will not be shown again."
    codes = shown.text("recovery-codes").split()
    assert len(set(codes)) == 10
    assert all(RECOVERY_CODE.fullmatch(code) for code in codes)
    # The same codes, one a line, in a read-only field to select and copy.
    assert shown.texts["recovery-codes-text"] == "\n".join(codes)
    assert shown.labels["recovery-codes-text"] == "The same codes as text, to select and copy"
    # Stored only hashed.
    hashes = stored_hashes(app, logged_in.id)
    assert len(hashes) == 10
    assert not any(canonical(code) in value for code in codes for value in hashes)
    # Never shown again: not on the settings page, not when a reload sends the form again.
    settings = client.get("/settings").get_data(as_text=True)
    again = settings_post(client, "/settings/2fa/confirm", **form)
    assert again.status_code == 404
    assert page(again).text("problem") == (
        "Two-factor authentication is already connected, and recovery codes are shown only"
        " once. If you did not save them, make new ones."
    )
    for code in codes:
        assert code not in settings and code not in again.get_data(as_text=True)
    # Each works once at the login step.
    login = {"username": logged_in.username, "password": logged_in.password}
    for expected in (200, 403):
        challenge = client.post("/auth/login", json=login).json["2fa"]
        used = client.post(
            "/auth/2fa/challenge", json={"challengeId": challenge, "recoveryCode": codes[0]}
        )
        assert used.status_code == expected


def test_the_first_recovery_codes_download_as_a_text_file(
    client: FlaskClient,
    logged_in: TestUser,
    clock: FakeClock,
    set_up: Callable[[], tuple[str, str]],
) -> None:
    secret, challenge_id = set_up()

    response = confirm(client, challenge_id, code_for(secret, clock))

    codes = page(response).text("recovery-codes").split()
    assert downloaded_text(response) == "\n".join(
        [
            f"Recovery codes of {logged_in.username} (Example Auth Server)",
            "Each code works once, in place of a code from your authenticator app.",
            "",
            *codes,
            "",
        ]
    )


def test_new_recovery_codes_download_as_a_text_file(
    client: FlaskClient, connected: str, clock: FakeClock
) -> None:
    response = settings_post(
        client, "/settings/2fa/recovery-codes", code=code_for(connected, clock)
    )

    codes = page(response).text("recovery-codes").split()
    assert len(codes) == 10
    assert downloaded_text(response).splitlines()[3:] == codes
    assert page(response).text("store-now") == "Store these now: they will not be shown again."


@pytest.mark.parametrize(
    ("offset_steps", "drift"),
    [
        pytest.param(6, "about 3 minutes ahead", id="3-minutes-ahead"),
        pytest.param(-14, "about 7 minutes behind", id="7-minutes-behind"),
        pytest.param(2, "about 1 minute ahead", id="1-minute-ahead"),
    ],
)
def test_setup_code_of_a_phone_whose_clock_is_off_says_how_far(
    app: Flask,
    client: FlaskClient,
    logged_in: TestUser,
    clock: FakeClock,
    set_up: Callable[[], tuple[str, str]],
    offset_steps: int,
    drift: str,
) -> None:
    secret, challenge_id = set_up()

    response = confirm(client, challenge_id, code_for(secret, clock, offset_steps))

    assert response.status_code == 403
    assert page(response).text("problem") == (
        "That code is not right. Try the code your app shows now (4 attempts left)."
        f" Your device's clock seems to be {drift}: set its date and time to automatic, then"
        " try again."
    )
    assert not credential(app, logged_in).connected
    assert credential(app, logged_in).failures == 1


def test_setup_code_further_than_ten_minutes_away_says_nothing_of_the_clock(
    client: FlaskClient,
    logged_in: TestUser,
    clock: FakeClock,
    set_up: Callable[[], tuple[str, str]],
) -> None:
    secret, challenge_id = set_up()
    nearby = {code_for(secret, clock, near) for near in range(-20, 21)}
    far = next(
        code
        for code in (code_for(secret, clock, steps) for steps in range(21, 60))
        if code not in nearby
    )

    response = confirm(client, challenge_id, far)

    assert response.status_code == 403
    assert page(response).text("problem") == (
        "That code is not right. Try the code your app shows now (4 attempts left)."
    )


def test_setup_when_connected_is_409_and_changes_nothing(
    app: Flask, client: FlaskClient, logged_in: TestUser, connected: str
) -> None:
    before = credential(app, logged_in).encrypted_secret

    response = settings_post(client, "/settings/2fa/setup")

    assert response.status_code == 409
    assert page(response).text("problem") == "Two-factor authentication is already connected."
    assert credential(app, logged_in).encrypted_secret == before


def test_setup_form_does_not_answer_a_login_challenge(
    app: Flask,
    client: FlaskClient,
    logged_in: TestUser,
    connected: str,
    clock: FakeClock,
) -> None:
    # An API login of the same user waits for its code; the setup form must not complete it.
    login_challenge = client.post(
        "/auth/login", json={"username": logged_in.username, "password": logged_in.password}
    ).json["2fa"]
    tokens_before = count(app, Token)

    response = confirm(client, login_challenge, code_for(connected, clock))

    assert response.status_code == 404
    assert count(app, Token) == tokens_before
    # Nothing was spent: the login challenge still takes that code.
    answered = client.post(
        "/auth/2fa/challenge",
        json={"challengeId": login_challenge, "verificationCode": code_for(connected, clock)},
    )
    assert answered.status_code == 200
    assert count(app, Token) == tokens_before + 1


# -- recovery codes and disabling --------------------------------------------------------------


def test_connected_settings_offer_recovery_codes_and_disabling(
    client: FlaskClient, connected: str
) -> None:
    shown = page(client.get("/settings"))

    assert shown.text("status") == "connected"
    assert "setup-form" not in shown.texts
    assert "Generate recovery codes" in shown.text("recovery-codes-form")
    assert "Disable 2FA" in shown.text("disable-form")
    assert (
        shown.labels["recovery-proof"]
        == shown.labels["disable-proof"]
        == ("Code from your authenticator app, or a recovery code")
    )


def test_recovery_codes_are_shown_once_for_a_code(
    app: Flask, client: FlaskClient, connected: str, clock: FakeClock
) -> None:
    response = settings_post(
        client, "/settings/2fa/recovery-codes", code=code_for(connected, clock)
    )

    assert response.status_code == 200
    codes = page(response).text("recovery-codes").split()
    assert len(codes) == 10
    assert all(re.fullmatch(r"[A-Z2-7]{4}(-[A-Z2-7]{4}){3}", code) for code in codes)
    assert count(app, example_app.two_factor.models.RecoveryCode) == 10
    assert codes[0] not in client.get("/settings").get_data(as_text=True)


def test_wrong_code_for_recovery_codes_is_403(
    app: Flask, client: FlaskClient, logged_in: TestUser, connected: str, clock: FakeClock
) -> None:
    codes_of_the_setup = stored_hashes(app, logged_in.id)

    response = settings_post(
        client, "/settings/2fa/recovery-codes", code=wrong_code(connected, clock)
    )

    assert response.status_code == 403
    assert page(response).text("problem") == (
        "That code is not right. Try the code your app shows now, or a recovery code."
    )
    assert len(codes_of_the_setup) == 10
    assert stored_hashes(app, logged_in.id) == codes_of_the_setup


def test_disabling_with_a_code_turns_2fa_off(
    app: Flask, client: FlaskClient, logged_in: TestUser, connected: str, clock: FakeClock
) -> None:
    response = settings_post(client, "/settings/2fa/disable", code=code_for(connected, clock))

    assert response.status_code == 302
    assert response.location == "/settings"
    assert page(client.get("/settings")).text("status") == "not connected"
    assert credential(app, logged_in) is None


def test_disabling_with_a_recovery_code_turns_2fa_off(
    app: Flask, client: FlaskClient, logged_in: TestUser, connected: str, clock: FakeClock
) -> None:
    codes = page(
        settings_post(client, "/settings/2fa/recovery-codes", code=code_for(connected, clock))
    ).text("recovery-codes")

    response = settings_post(client, "/settings/2fa/disable", code=codes.split()[3].lower())

    assert response.status_code == 302
    assert credential(app, logged_in) is None


@pytest.mark.parametrize("code", ["wrong", "", "12345"])
def test_disabling_needs_a_well_formed_proof(
    app: Flask, client: FlaskClient, logged_in: TestUser, connected: str, code: str
) -> None:
    response = settings_post(client, "/settings/2fa/disable", code=code)

    assert response.status_code == 400
    assert page(response).text("problem") == (
        "Enter the six digits your authenticator app shows, or one of your recovery codes."
    )
    assert credential(app, logged_in).connected


def test_disabling_with_a_wrong_code_is_403_and_keeps_2fa(
    app: Flask, client: FlaskClient, logged_in: TestUser, connected: str, clock: FakeClock
) -> None:
    response = settings_post(client, "/settings/2fa/disable", code=wrong_code(connected, clock))

    assert response.status_code == 403
    assert page(response).text("status") == "connected"
    assert credential(app, logged_in).connected


def test_disabling_without_2fa_is_409(
    app: Flask, client: FlaskClient, logged_in: TestUser
) -> None:
    response = settings_post(client, "/settings/2fa/disable", code="123456")

    assert response.status_code == 409
    assert page(response).text("status") == "not connected"


# -- CSRF --------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "token", [None, "", "forged", "é"], ids=["missing", "empty", "wrong", "non-ascii"]
)
@pytest.mark.parametrize(
    "path",
    [
        "/settings/2fa/setup",
        "/settings/2fa/disable",
        "/settings/2fa/recovery-codes",
        "/settings/browsers/1/forget",
        "/settings/browsers/forget",
    ],
)
def test_settings_forms_without_the_csrf_token_are_400_and_change_nothing(
    app: Flask,
    client: FlaskClient,
    logged_in: TestUser,
    path: str,
    token: str | None,
) -> None:
    form = {"code": "123456"} if token is None else {"code": "123456", "csrf_token": token}

    response = client.post(path, data=form)

    assert response.status_code == 400
    assert page(response).text("problem").startswith("This form has expired")
    assert credential(app, logged_in) is None
    assert count(app, example_app.two_factor.models.Challenge) == 0


def test_confirm_without_the_csrf_token_is_400_and_does_not_connect(
    app: Flask,
    client: FlaskClient,
    logged_in: TestUser,
    clock: FakeClock,
    set_up: Callable[[], tuple[str, str]],
) -> None:
    secret, challenge_id = set_up()

    response = client.post(
        "/settings/2fa/confirm",
        data={"challengeId": challenge_id, "code": code_for(secret, clock)},
    )

    assert response.status_code == 400
    assert not credential(app, logged_in).connected


def test_login_without_the_csrf_token_is_400_and_makes_no_session(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    client.get("/login")

    response = client.post(
        "/login", data={"username": user.username, "password": user.password}, headers=BROWSER
    )

    assert response.status_code == 400
    assert user_id_of(client) is None


def test_user_switching_accounts_is_logged_out_while_the_code_is_pending(
    app: Flask,
    client: FlaskClient,
    make_user: Callable[[str], TestUser],
    connected_user: tuple[TestUser, str],
) -> None:
    other = make_user("bob")
    post_login(client, other)
    assert user_id_of(client) == other.id
    user, _ = connected_user
    form = {
        "csrf_token": csrf(client, "/settings"),
        "username": "alice",
        "password": user.password,
    }

    response = client.post("/login", data=form, headers=BROWSER)

    assert CHALLENGE_LOCATION.fullmatch(response.location)
    assert user_id_of(client) is None
    assert "login" not in session_of(client)


def test_login_form_still_works_after_a_pending_challenge(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str]
) -> None:
    user, _ = connected_user
    token = csrf(client)
    form = {"csrf_token": token, "username": user.username, "password": user.password}
    first = client.post("/login", data=form, headers=BROWSER)

    # The browser goes back to the login page it had and sends it again.
    second = client.post("/login", data=form, headers=BROWSER)

    assert CHALLENGE_LOCATION.fullmatch(first.location)
    assert CHALLENGE_LOCATION.fullmatch(second.location)
    assert first.location != second.location


def test_logout_without_the_csrf_token_is_400_and_keeps_the_session(
    client: FlaskClient, logged_in: TestUser
) -> None:
    response = client.post("/logout")

    assert response.status_code == 400
    assert user_id_of(client) == logged_in.id


def test_token_of_another_session_is_refused(
    app: Flask, client: FlaskClient, logged_in: TestUser
) -> None:
    other = app.test_client()
    foreign = csrf(other)

    response = client.post("/settings/2fa/setup", data={"csrf_token": foreign})

    assert response.status_code == 400
    assert credential(app, logged_in) is None


# -- logging out, sessions ---------------------------------------------------------------------


def test_logout_clears_the_session(client: FlaskClient, logged_in: TestUser) -> None:
    response = client.post("/logout", data={"csrf_token": csrf(client, "/settings")})

    assert response.status_code == 302
    assert response.location == "/login"
    assert user_id_of(client) is None
    assert set(session_of(client)) == {"_flashes"}  # "You are logged out."
    assert client.get("/settings").status_code == 302


def test_nav_shows_log_out_only_when_logged_in(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    assert "logout" not in page(client.get("/login")).texts

    post_login(client, user)

    assert page(client.get("/settings")).text("logout") == "Log out"


def test_session_of_a_deleted_user_ends(
    app: Flask, client: FlaskClient, logged_in: TestUser
) -> None:
    with app.app_context():
        db.session.delete(db.session.get(User, logged_in.id))
        db.session.commit()

    response = client.get("/settings")

    assert response.status_code == 302
    assert response.location == "/login?next=/settings"
    assert user_id_of(client) is None


def copy_of(app: Flask, client: FlaskClient) -> FlaskClient:
    """Another browser with a copy of ``client``'s session cookie."""
    cookie = client.get_cookie("session")
    assert cookie is not None
    copy = app.test_client()
    copy.set_cookie("session", cookie.value)
    return copy


def second_factor_login(
    client: FlaskClient, user: TestUser, secret: str, clock: FakeClock
) -> None:
    """Log ``client`` in with the password and a code; the clock moves a step on."""
    location = post_login(client, user).location
    assert answer_challenge(client, location, code_for(secret, clock)).status_code == 302
    clock.advance(30)


def test_a_copy_of_the_session_cookie_stops_working_at_logout(
    app: Flask, client: FlaskClient, logged_in: TestUser
) -> None:
    copy = copy_of(app, client)
    assert copy.get("/settings").status_code == 200

    client.post("/logout", data={"csrf_token": csrf(client, "/settings")})

    response = copy.get("/settings")
    assert response.status_code == 302
    assert response.location == "/login?next=/settings"
    assert user_id_of(copy) is None


def test_a_session_of_an_earlier_generation_is_refused(
    app: Flask, client: FlaskClient, logged_in: TestUser
) -> None:
    with app.app_context():
        db.session.get(User, logged_in.id).session_generation += 1
        db.session.commit()

    assert client.get("/settings").status_code == 302
    assert user_id_of(client) is None


@pytest.mark.parametrize("event", ["reset", "set-password"])
def test_a_reset_or_password_change_ends_every_session_of_the_user(
    app: Flask,
    client: FlaskClient,
    connected: str,
    logged_in: TestUser,
    make_user: Callable[[str], TestUser],
    event: str,
) -> None:
    other_user = make_user("bob")
    other = app.test_client()
    post_login(other, other_user)
    copy = copy_of(app, client)
    runner = app.test_cli_runner()

    if event == "reset":
        result = runner.invoke(args=["ucloud-2fa", "reset", str(logged_in.id), "--yes"])
    else:
        result = runner.invoke(args=["set-password", "alice", "--password", "new"])

    assert result.exit_code == 0, result.output
    for browser in (client, copy):
        assert browser.get("/settings").location == "/login?next=/settings"
    assert other.get("/settings").status_code == 200


def test_disabling_2fa_ends_every_other_session_of_the_user(
    app: Flask, client: FlaskClient, logged_in: TestUser, connected: str, clock: FakeClock
) -> None:
    elsewhere = app.test_client()
    second_factor_login(elsewhere, logged_in, connected, clock)
    assert elsewhere.get("/settings").status_code == 200

    response = settings_post(client, "/settings/2fa/disable", code=code_for(connected, clock))

    assert response.status_code == 302
    # This session, which disabled 2FA with a code, stays; the other one ends.
    assert page(client.get("/settings")).text("status") == "not connected"
    assert elsewhere.get("/settings").location == "/login?next=/settings"


def test_turning_2fa_on_keeps_the_session(
    client: FlaskClient, connected_in_a_password_session: str
) -> None:
    assert page(client.get("/settings")).text("status") == "connected"


@pytest.mark.parametrize("path", ["/settings/2fa/disable", "/settings/2fa/recovery-codes"])
def test_a_password_only_session_cannot_disable_2fa_or_make_recovery_codes(
    app: Flask,
    client: FlaskClient,
    logged_in: TestUser,
    connected_in_a_password_session: str,
    clock: FakeClock,
    path: str,
) -> None:
    """The session from before 2FA was turned on (or of a stolen password) must log in again
    with a code: it cannot turn 2FA off, nor lock the user out with wrong codes."""
    secret = connected_in_a_password_session
    codes_of_the_setup = stored_hashes(app, logged_in.id)

    response = settings_post(client, path, code=code_for(secret, clock))

    assert response.status_code == 403
    shown = page(response)
    assert "Log in again with a code" in shown.text("problem")
    assert credential(app, logged_in).connected
    assert credential(app, logged_in).failures == 0
    assert len(codes_of_the_setup) == 10
    assert stored_hashes(app, logged_in.id) == codes_of_the_setup
    assert user_id_of(client) == logged_in.id  # asked to log in again, not logged out


def test_a_password_only_session_is_offered_a_new_login_instead_of_the_forms(
    client: FlaskClient, connected_in_a_password_session: str
) -> None:
    shown = page(client.get("/settings"))

    assert shown.text("status") == "connected"
    assert "recovery-codes-form" not in shown.texts
    assert "disable-form" not in shown.texts
    assert "log in again" in shown.text("second-factor-needed")
    link = re.search(r'href="([^"]+)"\s+id="log-in-again"', client.get("/settings").text)
    assert link is not None
    assert link[1].replace("&amp;", "&") == "/login?prompt=login&next=/settings"


def test_logging_in_again_keeps_the_session_until_the_new_login_completes(
    app: Flask,
    client: FlaskClient,
    logged_in: TestUser,
    connected_in_a_password_session: str,
    clock: FakeClock,
) -> None:
    secret = connected_in_a_password_session
    asked = client.get("/login?prompt=login&next=/settings")
    assert asked.status_code == 200
    assert page(asked).text("notice") == "Enter your password again to continue."
    before = session_of(client)["login"]

    location = post_login(client, logged_in, form_page="/login?prompt=login").location

    assert CHALLENGE_LOCATION.fullmatch(location), location
    assert session_of(client)["login"] == before  # still the old login, not logged out
    assert client.get("/settings").status_code == 200
    answered = answer_challenge(client, location, code_for(secret, clock))
    assert answered.location == "/settings"
    assert session_of(client)["login"]["amr"] == ["pwd", "otp"]


def test_the_login_page_asked_to_log_in_again_without_a_session_is_the_plain_form(
    client: FlaskClient,
) -> None:
    shown = page(client.get("/login?prompt=login"))

    assert "notice" not in shown.texts
    assert shown.value("csrf_token")


def test_pages_cannot_be_framed(app: Flask, client: FlaskClient) -> None:
    response = client.get("/login")

    assert response.headers["X-Frame-Options"] == "DENY"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_the_example_app_overrides_the_challenge_page_with_its_own_layout(
    client: FlaskClient,
) -> None:
    page = client.get("/auth/2fa?challengeId=unknown")
    html = page.get_data(as_text=True)
    assert page.status_code == 404
    assert "<title>Two-factor authentication · Example Auth Server</title>" in html
    assert 'href="/login" id="back-to-login"' in html


# -- languages ---------------------------------------------------------------------------------

#: What the pages say in each language: a page's title, and texts by element id.
LANGUAGE_TEXTS = {
    "en": {
        "login": "Log in · Example Auth Server",
        "settings": "Settings · Example Auth Server",
        "off": "not connected",
        "setup": "Set up two-factor authentication · Example Auth Server",
        "qr": "QR code that adds this account to an authenticator app; the same key is shown"
        " as text below",
        "codes": "Recovery codes · Example Auth Server",
        "connected": "Two-factor authentication is connected.",
        "challenge": "Two-factor authentication · Example Auth Server",
        "code label": "Code from your authenticator app",
        "wrong": "That code is not right. Try the code your app shows now (4 attempts left).",
        "why": "The body must be a JSON object.",
    },
    "da": {
        "login": "Log ind · Example Auth Server",
        "settings": "Indstillinger · Example Auth Server",
        "off": "ikke slået til",
        "setup": "Opsæt tofaktorgodkendelse · Example Auth Server",
        "qr": "QR-kode, der tilføjer denne konto til en godkendelsesapp; den samme nøgle vises"
        " som tekst nedenfor",
        "codes": "Gendannelseskoder · Example Auth Server",
        "connected": "Tofaktorgodkendelse er slået til.",
        "challenge": "Tofaktorgodkendelse · Example Auth Server",
        "code label": "Kode fra din godkendelsesapp",
        "wrong": "Koden er forkert. Prøv den kode, din app viser nu (4 forsøg tilbage).",
        "why": "Indholdet skal være et JSON-objekt.",
    },
    "de": {
        "login": "Anmelden · Example Auth Server",
        "settings": "Einstellungen · Example Auth Server",
        "off": "nicht eingerichtet",
        "setup": "Zwei-Faktor-Authentifizierung einrichten · Example Auth Server",
        "qr": "QR-Code, der dieses Konto zu einer Authenticator-App hinzufügt; derselbe"
        " Schlüssel steht unten als Text",
        "codes": "Wiederherstellungscodes · Example Auth Server",
        "connected": "Die Zwei-Faktor-Authentifizierung ist eingerichtet.",
        "challenge": "Zwei-Faktor-Authentifizierung · Example Auth Server",
        "code label": "Code aus Ihrer Authenticator-App",
        "wrong": "Dieser Code stimmt nicht. Versuchen Sie den Code, den Ihre App jetzt anzeigt"
        " (noch 4 Versuche).",
        "why": "Der Inhalt muss ein JSON-Objekt sein.",
    },
}


def title(response: TestResponse) -> str:
    match = re.search(r"<title>(.*?)</title>", response.get_data(as_text=True), re.S)
    assert match is not None
    return " ".join(unescape(match[1]).split())


def speaks(client: FlaskClient, language: str) -> None:
    """Every later request of ``client`` accepts ``language`` first, as a browser set to it."""
    client.environ_base["HTTP_ACCEPT_LANGUAGE"] = f"{language}, en;q=0.5"


@pytest.mark.parametrize("language", ["en", "da", "de"])
def test_the_pages_from_login_to_recovery_codes_are_in_the_browsers_language(
    client: FlaskClient, user: TestUser, clock: FakeClock, language: str
) -> None:
    texts = LANGUAGE_TEXTS[language]
    speaks(client, language)

    login_page = client.get("/login")
    assert f'<html lang="{language}">' in login_page.get_data(as_text=True)
    assert title(login_page) == texts["login"]
    assert post_login(client, user).status_code == 302
    settings_page = client.get("/settings")
    assert title(settings_page) == texts["settings"]
    assert page(settings_page).text("status") == texts["off"]
    setup_page = settings_post(client, "/settings/2fa/setup")
    assert title(setup_page) == texts["setup"]
    assert page(setup_page).images[0]["alt"] == texts["qr"]
    shown = page(setup_page)
    codes_page = settings_post(
        client,
        "/settings/2fa/confirm",
        challengeId=shown.value("challengeId"),
        code=code_for(shown.text("secret"), clock),
    )
    assert title(codes_page) == texts["codes"]
    assert page(codes_page).text("notices") == texts["connected"]


@pytest.mark.parametrize("language", ["en", "da", "de"])
def test_the_challenge_page_and_its_answers_are_in_the_browsers_language(
    client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock, language: str
) -> None:
    user, secret = connected_user
    texts = LANGUAGE_TEXTS[language]
    speaks(client, language)
    location = post_login(client, user).location

    challenge = client.get(location, headers=BROWSER)
    assert title(challenge) == texts["challenge"]  # the app's layout, in the app's catalogue
    assert page(challenge).labels["verification-code"] == texts["code label"]  # the extension's
    wrong = answer_challenge(client, location, wrong_code(secret, clock))
    assert wrong.status_code == 403
    assert page(wrong).text("problem") == texts["wrong"]


@pytest.mark.parametrize("language", ["da", "de"])
def test_the_extensions_json_errors_follow_the_apps_locale_with_the_same_error_code(
    client: FlaskClient, language: str
) -> None:
    english = client.post("/auth/2fa/challenge", data="[]")
    speaks(client, language)
    translated = client.post("/auth/2fa/challenge", data="[]")
    assert english.status_code == translated.status_code == 400
    assert english.json["errorCode"] == translated.json["errorCode"] == "BAD_REQUEST"
    assert english.json["why"] == LANGUAGE_TEXTS["en"]["why"]
    assert translated.json["why"] == LANGUAGE_TEXTS[language]["why"]
