"""Remembered browsers (``UCLOUD_2FA_REMEMBER_DAYS``): off by default; when on, a browser that
ticked "Remember this browser" with a right code logs in without one, with ``amr`` without
``otp``, until the days are over or the browser is forgotten. Only the hash of its cookie is
stored, bound to the user and to the credential; JSON clients are never remembered."""

from __future__ import annotations

import dataclasses
import hashlib
import logging
import re
import secrets
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select
from sqlalchemy import update

from flask_ucloud_2fa import RememberedBrowser
from flask_ucloud_2fa import TwoFactor
from flask_ucloud_2fa import signals

from helpers import BROWSER
from helpers import TOKEN_KEYS
from helpers import FakeClock
from helpers import add_user
from helpers import answer_in_browser
from helpers import assert_error
from helpers import bearer
from helpers import begin_browser_login
from helpers import browser_login
from helpers import code_for
from helpers import connect
from helpers import count
from helpers import credential_value
from helpers import db_of
from helpers import login
from helpers import me
from helpers import new_codes
from helpers import settings_of
from helpers import two_factor_of
from helpers import utc
from helpers import wrong_code
from integrator import Integrator

if TYPE_CHECKING:
    from helpers import TestUser

pytestmark = pytest.mark.app_config(UCLOUD_2FA_REMEMBER_DAYS=30)

COOKIE = "ucloud_2fa_remember"
DAY = 24 * 60 * 60
FIREFOX = "Mozilla/5.0 (X11; Linux x86_64; rv:128.0) Gecko/20100101 Firefox/128.0"


@dataclass
class Remembered:
    """A user with 2FA whose browser (the test's ``client``) is remembered."""

    user: TestUser
    secret: str
    #: The cookie's value.
    value: str
    #: When the browser was remembered.
    at: float


def remember_browser(client: FlaskClient, user: TestUser, secret: str, clock: FakeClock) -> str:
    """Log in as a browser with a right code, the box ticked; the cookie's value. Moves the
    clock a step on, so the code is spent."""
    challenge = begin_browser_login(client, user)
    answered = answer_in_browser(client, challenge, code_for(secret, clock), rememberBrowser="yes")
    assert answered.status_code == 200, answered.get_data(as_text=True)
    cookie = client.get_cookie(COOKIE)
    assert cookie is not None
    clock.advance(30)
    return cookie.value


@pytest.fixture
def remembered(
    client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> Remembered:
    user, secret = connected_user
    client.environ_base["HTTP_USER_AGENT"] = FIREFOX
    at = clock.now
    value = remember_browser(client, user, secret, clock)
    return Remembered(user, secret, value, at)


def remembered_rows(app: Flask, user_id: Any = None) -> list[Any]:
    """Every row of the remembered-browser table, or the user's."""
    model = two_factor_of(app).models.RememberedBrowser
    assert model is not None
    query = select(model).order_by(model.id)
    if user_id is not None:
        query = query.where(model.user_id == user_id)
    columns: list[str] = list(model.__table__.columns.keys())
    with app.app_context():
        rows = db_of(app).session.execute(query).scalars().all()
        return [{column: getattr(row, column) for column in columns} for row in rows]


def set_cookie_header(response: Any) -> str | None:
    """The response's ``Set-Cookie`` of the remembered browser, or ``None``."""
    headers = [h for h in response.headers.getlist("Set-Cookie") if h.startswith(f"{COOKIE}=")]
    assert len(headers) <= 1
    return headers[0] if headers else None


def asks_for_a_code(response: Any) -> bool:
    """Whether a browser's login answered with the way to the challenge page."""
    if response.status_code == 302 and "/auth/2fa?challengeId=" in response.headers["Location"]:
        return True
    assert response.status_code == 200, response.get_data(as_text=True)
    assert set(response.json) == TOKEN_KEYS
    return False


@contextmanager
def recorded_events(app: Flask) -> Iterator[list[tuple[str, dict[str, Any]]]]:
    """The remembered-browser signals ``app`` sends inside the block, with their arguments."""
    events: list[tuple[str, dict[str, Any]]] = []
    names = ("browser_remembered", "remembered_login", "browsers_forgotten")
    receivers = {
        name: (lambda sender, _name=name, **kwargs: events.append((_name, kwargs)))
        for name in names
    }
    for name, receiver in receivers.items():
        getattr(signals, name).connect(receiver, sender=app)
    try:
        yield events
    finally:
        for name, receiver in receivers.items():
            getattr(signals, name).disconnect(receiver, sender=app)


# -- off by default ------------------------------------------------------------------------------


@pytest.mark.app_config()
def test_off_by_default_no_box_no_cookie_no_row(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    assert settings_of(app).remember_days == 0
    challenge = begin_browser_login(client, user)
    assert "rememberBrowser" not in challenge.page
    assert "Remember this browser" not in challenge.page

    answered = answer_in_browser(client, challenge, code_for(secret, clock), rememberBrowser="yes")

    assert answered.status_code == 200, answered.get_data(as_text=True)
    assert set(answered.json) == TOKEN_KEYS
    assert set_cookie_header(answered) is None
    assert client.get_cookie(COOKIE) is None
    assert remembered_rows(app) == []
    clock.advance(30)
    assert asks_for_a_code(browser_login(client, user))


@pytest.mark.app_config()
def test_off_a_cookie_from_before_does_nothing(
    app: Flask, make_app: Any, clock: FakeClock
) -> None:
    """A browser remembered while it was on asks for a code again once it is off."""
    remembering = make_app({"UCLOUD_2FA_REMEMBER_DAYS": 30})
    user = add_user(remembering, "carol")
    browser = remembering.test_client()
    secret = connect(browser, user.headers, clock)
    remember_browser(browser, user, secret, clock)
    assert not asks_for_a_code(browser_login(browser, user))

    off = app.test_client()
    off.set_cookie(COOKIE, browser.get_cookie(COOKIE).value)  # type: ignore[union-attr]
    assert asks_for_a_code(browser_login(off, user))
    with app.app_context():
        assert two_factor_of(app).remembered_browsers(user.id) == []


# -- remembering and remembered logins -----------------------------------------------------------


def test_the_challenge_page_offers_the_box(
    client: FlaskClient, connected_user: tuple[TestUser, str]
) -> None:
    user, _ = connected_user
    page = begin_browser_login(client, user).page
    box = re.search(r"<input id=\"remember-browser\"[^>]*>", page)
    assert box is not None
    assert 'name="rememberBrowser"' in box.group(0) and 'type="checkbox"' in box.group(0)
    assert "checked" not in box.group(0)
    assert re.search(r"Remember this browser for 30 days\s*</label>", page)


def test_a_right_code_with_the_box_sets_a_private_cookie_for_the_days(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    challenge = begin_browser_login(client, user)

    answered = answer_in_browser(client, challenge, code_for(secret, clock), rememberBrowser="yes")

    assert answered.status_code == 200
    assert me(client, answered.json["accessToken"]).json["amr"] == ["pwd", "otp"]
    header = set_cookie_header(answered)
    assert header is not None
    value, *attributes = [part.strip() for part in header.split(";")]
    assert re.fullmatch(rf"{COOKIE}=[A-Za-z0-9_-]{{43}}", value)
    lowered = {attribute.lower() for attribute in attributes}
    assert {"httponly", "samesite=lax", "path=/", f"max-age={30 * DAY}"} <= lowered
    assert "secure" not in lowered  # plain HTTP here; see the HTTPS test below
    assert len(remembered_rows(app, user.id)) == 1


def test_over_https_the_cookie_is_secure(
    client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    challenge = begin_browser_login(client, user)

    answered = client.post(
        "/auth/2fa/challenge/form",
        data={
            **challenge.fields,
            "verificationCode": code_for(secret, clock),
            "rememberBrowser": "yes",
        },
        headers=BROWSER,
        base_url="https://localhost",
    )

    assert answered.status_code == 200
    header = set_cookie_header(answered)
    assert header is not None
    assert "secure" in {part.strip().lower() for part in header.split(";")}


def test_a_remembered_browser_logs_in_at_once_without_otp(
    app: Flask,
    integrator: Integrator,
    client: FlaskClient,
    remembered: Remembered,
    clock: FakeClock,
) -> None:
    user = remembered.user
    clock.advance(3600)
    challenges = count(app, integrator.two_factor.models.Challenge)
    tokens = count(app, integrator.Token)

    response = browser_login(client, user)

    assert not asks_for_a_code(response)
    assert response.headers["Cache-Control"] == "no-store"
    assert me(client, response.json["accessToken"]).json == {
        "username": user.username,
        "amr": ["pwd"],
        "authTime": int(clock.now),
    }
    assert count(app, integrator.two_factor.models.Challenge) == challenges
    assert count(app, integrator.Token) == tokens + 1
    assert remembered_rows(app, user.id)[0]["last_used_at"] == utc(clock)


def test_a_remembered_login_does_not_pass_step_up(
    client: FlaskClient, remembered: Remembered, clock: FakeClock
) -> None:
    user = remembered.user
    token = browser_login(client, user).json["accessToken"]

    assert_error(
        client.get("/api/me/security", headers=bearer(token)),
        401,
        "INSUFFICIENT_USER_AUTHENTICATION",
    )
    disabled = client.post(
        "/auth/2fa/disable",
        headers=bearer(token),
        json={"verificationCode": code_for(remembered.secret, clock)},
    )
    assert_error(disabled, 401, "INSUFFICIENT_USER_AUTHENTICATION")


def test_the_login_step_can_ignore_the_remembered_browser(
    app: Flask, remembered: Remembered
) -> None:
    """A re-authentication that must use the second factor asks for a code all the same."""
    user, two_factor = remembered.user, two_factor_of(app)
    headers = {**BROWSER, "Cookie": f"{COOKIE}={remembered.value}"}

    with app.test_request_context("/auth/login", method="POST", headers=headers):
        ignoring = app.make_response(two_factor.login(user.id, ignore_remembered=True))
    with app.test_request_context("/auth/login", method="POST", headers=headers):
        remembering = app.make_response(two_factor.login(user.id))

    assert asks_for_a_code(ignoring)
    assert not asks_for_a_code(remembering)
    assert remembering.headers["Cache-Control"] == "no-store"


def test_a_remembered_login_never_claims_the_second_factor(
    app: Flask, client: FlaskClient, remembered: Remembered
) -> None:
    headers = {**BROWSER, "Cookie": f"{COOKIE}={remembered.value}"}

    with app.test_request_context("/auth/login", method="POST", headers=headers):
        two_factor = two_factor_of(app)
        response = app.make_response(
            two_factor.login(remembered.user.id, methods=["pwd", "otp", "rc", "hwk"])
        )

    assert not asks_for_a_code(response)
    assert me(client, response.json["accessToken"]).json["amr"] == ["pwd", "hwk"]


def test_json_logins_are_never_remembered(client: FlaskClient, remembered: Remembered) -> None:
    assert client.get_cookie(COOKIE) is not None  # the client sends it along

    response = login(client, remembered.user)

    assert response.status_code == 200
    assert set(response.json) == {"2fa"}


def test_the_browser_is_asked_again_once_the_days_are_over(
    client: FlaskClient, remembered: Remembered, clock: FakeClock
) -> None:
    clock.now = remembered.at + 30 * DAY - 1
    assert not asks_for_a_code(browser_login(client, remembered.user))

    clock.now = remembered.at + 30 * DAY
    assert asks_for_a_code(browser_login(client, remembered.user))


def test_remembering_a_browser_clears_the_users_expired_ones(
    app: Flask, remembered: Remembered, clock: FakeClock
) -> None:
    clock.now = remembered.at + 30 * DAY
    value = remember_browser(app.test_client(), remembered.user, remembered.secret, clock)

    [row] = remembered_rows(app)
    assert row["token_hash"] == hashlib.sha256(value.encode()).hexdigest()


def test_fewer_days_in_the_configuration_shorten_remembered_browsers_at_once(
    app: Flask, make_app: Any, client: FlaskClient, remembered: Remembered, clock: FakeClock
) -> None:
    shorter = make_app({"UCLOUD_2FA_REMEMBER_DAYS": 1})  # another app on the same database
    browser = shorter.test_client()
    browser.set_cookie(COOKIE, remembered.value)

    clock.now = remembered.at + DAY - 1
    assert not asks_for_a_code(browser_login(browser, remembered.user))
    clock.now = remembered.at + DAY
    assert asks_for_a_code(browser_login(browser, remembered.user))
    assert not asks_for_a_code(browser_login(client, remembered.user))


def test_a_recovery_code_remembers_no_browser(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    codes = new_codes(client, user.headers, secret, clock)
    challenge = begin_browser_login(client, user)

    answered = answer_in_browser(client, challenge, codes[0], rememberBrowser="yes")

    assert answered.status_code == 200
    assert me(client, answered.json["accessToken"]).json["amr"] == ["pwd", "otp", "rc"]
    assert set_cookie_header(answered) is None
    assert remembered_rows(app) == []
    assert asks_for_a_code(browser_login(client, user))


def test_a_wrong_code_remembers_nothing_and_keeps_the_box_ticked(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    challenge = begin_browser_login(client, user)

    wrong = answer_in_browser(client, challenge, wrong_code(secret, clock), rememberBrowser="yes")

    assert wrong.status_code == 403
    box = re.search(r"<input id=\"remember-browser\"[^>]*>", wrong.get_data(as_text=True))
    assert box is not None and "checked" in box.group(0)
    assert set_cookie_header(wrong) is None
    assert remembered_rows(app) == []
    # The right code without the box remembers nothing either.
    right = answer_in_browser(client, challenge, code_for(secret, clock))
    assert right.status_code == 200
    assert set_cookie_header(right) is None
    assert remembered_rows(app) == []


# -- what is stored, and what it is bound to -----------------------------------------------------


def test_only_the_hash_of_the_cookie_is_stored_with_its_user_and_credential(
    app: Flask, remembered: Remembered, clock: FakeClock
) -> None:
    user, value = remembered.user, remembered.value

    [row] = remembered_rows(app)

    assert row["token_hash"] == hashlib.sha256(value.encode()).hexdigest()
    assert value not in repr(row)
    assert row["user_id"] == user.id
    assert row["credential_id"] == credential_value(app, user.id, "id")
    started = FakeClock(remembered.at)
    assert row["created_at"] == utc(started)
    assert row["expires_at"] == utc(started) + timedelta(days=30)
    assert row["last_used_at"] is None
    assert row["user_agent"] == "Firefox on Linux"  # a summary, not the header


def test_a_copy_of_the_table_logs_no_one_in(app: Flask, remembered: Remembered) -> None:
    browser = app.test_client()
    browser.set_cookie(COOKIE, remembered_rows(app)[0]["token_hash"])

    assert asks_for_a_code(browser_login(browser, remembered.user))


@pytest.mark.parametrize(
    "value",
    [
        secrets.token_urlsafe(32),
        "",
        "not-a-cookie",
        "A" * 44,
        "ü" * 43,
    ],
    ids=["unknown", "empty", "short", "long", "non-ascii"],
)
def test_a_forged_cookie_does_nothing(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], value: str
) -> None:
    user, _ = connected_user
    client.set_cookie(COOKIE, value)

    assert asks_for_a_code(browser_login(client, user))
    assert remembered_rows(app) == []


def test_another_users_login_in_a_remembered_browser_asks_for_a_code(
    app: Flask, client: FlaskClient, remembered: Remembered, clock: FakeClock
) -> None:
    bob = add_user(app, "bob")
    connect(app.test_client(), bob.headers, clock)

    assert asks_for_a_code(browser_login(client, bob))  # the browser holds alice's cookie
    assert remembered_rows(app)[0]["last_used_at"] is None
    assert not asks_for_a_code(browser_login(client, remembered.user))


def test_a_browser_counts_only_under_the_credential_it_was_made_under(
    app: Flask, client: FlaskClient, remembered: Remembered, clock: FakeClock
) -> None:
    bob = add_user(app, "bob")
    connect(app.test_client(), bob.headers, clock)
    model = two_factor_of(app).models.RememberedBrowser
    assert model is not None
    with app.app_context():
        session = db_of(app).session
        session.execute(update(model).values(credential_id=credential_value(app, bob.id, "id")))
        session.commit()

    assert asks_for_a_code(browser_login(client, remembered.user))


# -- revocation ----------------------------------------------------------------------------------


def test_disabling_2fa_forgets_the_browsers_and_a_new_setup_does_not_bring_them_back(
    app: Flask, client: FlaskClient, remembered: Remembered, clock: FakeClock
) -> None:
    user = remembered.user  # with a token from a login that used the code
    disabled = client.post(
        "/auth/2fa/disable",
        headers=user.headers,
        json={"verificationCode": code_for(remembered.secret, clock)},
    )
    assert disabled.status_code == 200, disabled.json
    assert remembered_rows(app) == []
    clock.advance(30)

    connect(client, user.headers, clock)

    assert asks_for_a_code(browser_login(client, user))


def test_a_new_setup_forgets_browsers_left_from_before(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    """Rows an earlier credential left (a credential deleted in SQL without the cascade, whose
    id the next one may get on SQLite) do not survive a new setup."""
    user, secret = connected_user
    remember_browser(client, user, secret, clock)
    two_factor = two_factor_of(app)
    model = two_factor.models.RememberedBrowser
    assert model is not None
    with app.app_context():
        two_factor.reset(user.id)
        session = db_of(app).session
        created = two_factor.start_setup(user.id, user.username)  # a pending credential
        # A leftover row, bound to the credential about to be confirmed.
        session.add(
            model(
                token_hash="0" * 64,
                user_id=user.id,
                credential_id=credential_value(app, user.id, "id"),
                created_at=utc(clock),
                expires_at=utc(clock, DAY),
            )
        )
        session.commit()

        with recorded_events(app) as events:
            again = two_factor.start_setup(user.id, user.username)

    assert remembered_rows(app) == []
    [(name, data)] = events
    assert name == "browsers_forgotten"
    assert (data["user_id"], data["outcome"], data["count"]) == (str(user.id), "success", 1)
    assert again.challenge_id != created.challenge_id


def test_an_administrators_reset_forgets_the_browsers(
    app: Flask, client: FlaskClient, remembered: Remembered, clock: FakeClock
) -> None:
    user = remembered.user
    with app.app_context():
        assert two_factor_of(app).reset(user.id) is True

    assert remembered_rows(app) == []
    connect(client, user.headers, clock)
    assert asks_for_a_code(browser_login(client, user))


def test_forget_browsers_on_a_password_change_forgets_every_browser_of_the_user(
    app: Flask, client: FlaskClient, remembered: Remembered, clock: FakeClock
) -> None:
    user, two_factor = remembered.user, two_factor_of(app)
    laptop = app.test_client()
    remember_browser(laptop, user, remembered.secret, clock)
    bob = add_user(app, "bob")
    bobs_browser = app.test_client()
    remember_browser(bobs_browser, bob, connect(bobs_browser, bob.headers, clock), clock)

    with app.app_context(), recorded_events(app) as events:
        assert two_factor.forget_browsers(user.id) == 2
        assert two_factor.forget_browsers(user.id) == 0

    assert remembered_rows(app, user.id) == []
    assert len(remembered_rows(app, bob.id)) == 1
    assert asks_for_a_code(browser_login(client, user))
    assert asks_for_a_code(browser_login(laptop, user))
    assert not asks_for_a_code(browser_login(bobs_browser, bob))
    assert [(name, data["count"]) for name, data in events] == [("browsers_forgotten", 2)]


def test_the_user_lists_and_forgets_one_browser(
    app: Flask, client: FlaskClient, remembered: Remembered, clock: FakeClock
) -> None:
    user, two_factor = remembered.user, two_factor_of(app)
    laptop = app.test_client()
    laptop_at = clock.now
    remember_browser(laptop, user, remembered.secret, clock)
    headers = {"Cookie": f"{COOKIE}={remembered.value}"}

    with app.test_request_context("/settings", headers=headers):
        listed = two_factor.remembered_browsers(user.id)

    [newest, oldest] = listed
    assert oldest == RememberedBrowser(
        id=oldest.id,
        created_at=utc(FakeClock(remembered.at)),
        expires_at=utc(FakeClock(remembered.at), 30 * DAY),
        last_used_at=None,
        user_agent="Firefox on Linux",
        current=True,
    )
    assert newest.created_at == utc(FakeClock(laptop_at))
    assert newest.user_agent is None  # the test client's User-Agent names no browser
    assert newest.current is False
    assert remembered.value not in repr(listed)
    assert set(dataclasses.asdict(oldest)) == {
        "id", "created_at", "expires_at", "last_used_at", "user_agent", "current"
    }  # fmt: skip

    with app.app_context():
        assert two_factor.forget_browser("999", oldest.id) is False  # not that user's
        assert two_factor.forget_browser(user.id, 2**40) is False
        with pytest.raises(ValueError, match=r"^'x' is not the id of a remembered browser\.$"):
            two_factor.forget_browser(user.id, "x")
        assert two_factor.forget_browser(user.id, oldest.id) is True
        assert two_factor.forget_browser(user.id, oldest.id) is False
        assert [browser.id for browser in two_factor.remembered_browsers(user.id)] == [newest.id]

    assert asks_for_a_code(browser_login(client, user))
    assert not asks_for_a_code(browser_login(laptop, user))


def test_deleting_the_user_deletes_their_browsers(
    app: Flask, integrator: Integrator, remembered: Remembered
) -> None:
    with app.app_context():
        session = integrator.db.session
        session.delete(session.get(integrator.User, remembered.user.id))
        session.commit()

    assert remembered_rows(app) == []


# -- signals and the audit log -------------------------------------------------------------------


def test_remembering_logins_and_forgetting_are_signalled_and_audited(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    user, secret = connected_user
    caplog.set_level(logging.INFO, logger="flask_ucloud_2fa.audit")
    with recorded_events(app) as events:
        value = remember_browser(client, user, secret, clock)
        assert not asks_for_a_code(browser_login(client, user))
        with app.app_context():
            two_factor_of(app).forget_browsers(user.id)

    who = {"user_id": str(user.id), "outcome": "success"}
    assert len(events) == 3
    assert events[:2] == [
        ("browser_remembered", {**who, "client_address": "127.0.0.1", "days": 30}),
        ("remembered_login", {**who, "client_address": "127.0.0.1", "kind": "login"}),
    ]
    assert events[2][0] == "browsers_forgotten"
    assert {**events[2][1], "client_address": None} == {**who, "client_address": None, "count": 1}
    audited = [
        record.event  # type: ignore[attr-defined]
        for record in caplog.records
        if record.name == "flask_ucloud_2fa.audit"
    ]
    assert audited[-3:] == ["browser_remembered", "remembered_login", "browsers_forgotten"]
    assert "challenge_passed" in audited
    for record in caplog.records:
        assert value not in record.getMessage()
        assert value not in repr(getattr(record, "details", ""))


# -- configuration -------------------------------------------------------------------------------


@pytest.mark.parametrize(("value", "days"), [(0, 0), (1, 1), ("7", 7), (" 30 ", 30), (3650, 3650)])
def test_remember_days_takes_whole_numbers(make_sqlite_app: Any, value: Any, days: int) -> None:
    app = make_sqlite_app({"UCLOUD_2FA_REMEMBER_DAYS": value})

    assert settings_of(app).remember_days == days


@pytest.mark.parametrize(
    "value", [-1, "-1", 1.5, "1.5", "thirty", "", True, None, 3651, "\u0663", [30]]
)
def test_remember_days_refuses_anything_else_naming_the_key(
    make_sqlite_app: Any, value: Any
) -> None:
    message = (
        r"^UCLOUD_2FA_REMEMBER_DAYS must be a whole number of days from 0 \(off, the default\)"
        rf" to 3650, like 30, not {re.escape(repr(value))}\.$"
    )
    with pytest.raises(ValueError, match=message):
        make_sqlite_app({"UCLOUD_2FA_REMEMBER_DAYS": value})


def test_own_models_without_a_remembered_browser_model(app: Flask, integrator: Integrator) -> None:
    models = dataclasses.replace(integrator.two_factor.models, RememberedBrowser=None)
    config = {
        "SECRET_KEY": "x" * 32,
        "UCLOUD_2FA_ENCRYPTION_KEYS": app.config["UCLOUD_2FA_ENCRYPTION_KEYS"],
    }
    two_factor = TwoFactor(db=integrator.db, resource_protector=None, models=models)
    remembering = Flask("remembering")
    remembering.config.update(config, UCLOUD_2FA_REMEMBER_DAYS=30)
    with pytest.raises(RuntimeError, match="RememberedBrowserMixin"):
        two_factor.init_app(remembering)

    off = Flask("off")
    off.config.update(config)
    two_factor.init_app(off)
    with off.test_request_context("/"):
        assert two_factor.remembered_browsers(1) == []
        assert two_factor.forget_browsers(1) == 0
        assert two_factor.forget_browser(1, 1) is False
