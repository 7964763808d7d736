"""Hostile input to every route of the example app is a 4xx, never a 500, on both databases.

NUL characters (PostgreSQL refuses them in text), lone surrogates (no driver or hash encodes
them), non-ASCII digits, deep nesting, huge bodies and wrong types: first a table of the known
cases with their exact answers, then hypothesis feeding such values to every field of every
route. Query and form values travel percent-encoded, as browsers send them: a surrogate then
arrives as invalid UTF-8, which Werkzeug leaves undecoded, so only NUL is hostile there; JSON
carries both.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st
from werkzeug.security import generate_password_hash

import example_app.models
from example_app.models import OAuth2AuthorizationCode
from example_app.models import Token

from helpers import FAST_HASH
from helpers import FakeClock
from helpers import assert_error
from helpers import bearer
from helpers import count

if TYPE_CHECKING:
    from helpers import TestUser

REDIRECT_URI = "http://127.0.0.1:8765/callback"
AUTHORIZATION = {
    "response_type": "code",
    "client_id": "demo-client",
    "redirect_uri": REDIRECT_URI,
    "scope": "openid profile",
    "state": "xyz",
    "nonce": "n-0S6_WzA2Mj",
    "code_challenge": "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGEb6Kv2pAc",
    "code_challenge_method": "S256",
}
FORM = "application/x-www-form-urlencoded"
HTML = {"Accept": "text/html"}
#: 64 KiB, the example app's MAX_CONTENT_LENGTH.
LIMIT = 64 * 1024

#: Each run is short: every example is one request, on each database.
FAST = settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)


# -- hostile values ----------------------------------------------------------------------------

SPECIAL = [
    "\x00",
    "a\x00b",
    "\ud800",
    "x\udfff",
    "²",
    "١٢٣٤٥٦",
    "",
    " ",
    "é" * 300,
    "../../etc/passwd",
    "' OR 1=1 --",
    "%00",
    "\r\n",
]
#: Any text, surrogates and control characters included.
TEXT = st.one_of(
    st.sampled_from(SPECIAL),
    st.text(alphabet=st.characters(exclude_categories=[]), max_size=40),
    st.text(alphabet=st.sampled_from("\x00\ud800\udc00a1²٣"), max_size=6),
)
#: Any JSON value; half of them text, so that hostile strings come often.
JSON_VALUE = TEXT | st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | TEXT,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(TEXT, children, max_size=3),
    max_leaves=6,
)


def nested(depth: int) -> str:
    return '{"a":' * depth + "1" + "}" * depth


#: Bodies by name, so that hypothesis reports a name, not 60 kB.
RAW_BODIES = {
    "60k brackets": b"[" * 60_000,  # under the size limit, over Python's recursion limit
    "100 objects": nested(100).encode(),
    "40 arrays": b"[" * 40 + b"]" * 40,
    "NUL": b'{"username": "a\\u0000", "password": "x"}',
    "surrogate": b'{"username": "\\ud800", "password": "x"}',
    "surrogate bytes": b'{"username": "\xed\xa0\x80", "password": "x"}',
    "over the limit": b"x" * (LIMIT + 1),
    "broken": b"{",
    "not UTF-8": b"\xff\xfe\x00",
}


def holds(value: Any, predicate: Any) -> bool:
    """Whether any string in ``value`` (JSON keys too) satisfies ``predicate``."""
    if isinstance(value, str):
        return bool(predicate(value))
    if isinstance(value, dict):
        return any(holds(key, predicate) or holds(item, predicate) for key, item in value.items())
    if isinstance(value, list):
        return any(holds(item, predicate) for item in value)
    return False


def unencodable(text: str) -> bool:
    return "\x00" in text or any(0xD800 <= ord(char) <= 0xDFFF for char in text)


def as_received(value: Any) -> Any:
    """``value`` sent as JSON, as the server reads it: two surrogates in a row, escaped one by
    one, make one valid character again."""
    return json.loads(json.dumps(value))


def has_nul(text: str) -> bool:
    return "\x00" in text


def percent_encoded(fields: dict[str, str]) -> str:
    """``fields`` as a browser encodes them: UTF-8, a surrogate as its invalid bytes."""
    return urlencode(fields, encoding="utf-8", errors="surrogatepass")


def assert_refused(response: Any, *, oauth: bool = False) -> None:
    """A 400 in the route's format: OAuth's ``invalid_request`` or UCloud's ``BAD_REQUEST``."""
    if oauth:
        assert response.status_code == 400, response.get_data(as_text=True)
        assert response.json["error"] == "invalid_request"
    else:
        assert_error(response, 400, "BAD_REQUEST")


# -- fixtures ----------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _cheap_unknown_users(monkeypatch: pytest.MonkeyPatch) -> None:
    """Unknown users are checked against a scrypt hash (as slow as a wrong password); a cheap
    one here, so hypothesis's many unknown names take no time."""
    monkeypatch.setattr(
        example_app.models, "_UNKNOWN_USER_HASH", generate_password_hash("x", FAST_HASH)
    )


def csrf_token(client: FlaskClient) -> str:
    client.get("/login")
    with client.session_transaction() as session:
        token: str = session["csrf_token"]
    return token


@pytest.fixture
def browser(app: Flask, user: TestUser) -> Iterator[FlaskClient]:
    """A browser logged in as ``user`` through the login form."""
    client = app.test_client()
    response = client.post(
        "/login",
        data={
            "csrf_token": csrf_token(client),
            "username": user.username,
            "password": user.password,
        },
        headers=HTML,
    )
    assert response.status_code == 302
    yield client


def form_token(client: FlaskClient) -> str:
    """The CSRF token of a logged-in browser's settings page."""
    client.get("/settings")
    with client.session_transaction() as session:
        token: str = session["csrf_token"]
    return token


# -- the known cases ---------------------------------------------------------------------------


def test_nul_and_surrogates_in_the_json_login_are_400(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    for field in ("username", "password"):
        for value in ("\x00", "alice\x00", "\ud800", "x\udfff"):
            body = {"username": user.username, "password": user.password, field: value}

            response = client.post("/auth/login", json=body)

            assert_refused(response)
    assert count(app, Token) == 1  # the fixture's login only


@pytest.mark.parametrize("body", ["[" * 60_000, nested(33)], ids=["60k", "33"])
def test_deeply_nested_json_is_400(client: FlaskClient, body: str) -> None:
    for mimetype in ("application/json", "text/plain"):
        response = client.post("/auth/login", data=body, content_type=mimetype)

        assert_error(response, 400, "BAD_REQUEST")
        assert response.json["why"] == "The JSON body is nested too deeply."
    # The extension's routes check their own bodies (and refuse more than 16 KiB).
    answer = client.post("/auth/2fa/challenge", data=body, content_type="application/json")
    assert answer.status_code in (400, 413)


def test_json_nested_as_deep_as_allowed_reaches_the_view(client: FlaskClient) -> None:
    response = client.post("/auth/login", data=nested(31), content_type="application/json")

    assert response.json["why"] == "Send username and password, as a JSON object or form fields."


def test_a_body_over_max_content_length_is_413_in_the_routes_format(client: FlaskClient) -> None:
    form = {"username": "x" * LIMIT}

    for path in ("/auth/login", "/auth/2fa/challenge"):
        assert_error(client.post(path, data=form), 413, "REQUEST_ENTITY_TOO_LARGE")
    page = client.post("/login", data=form, headers=HTML)
    assert (page.status_code, page.mimetype) == (413, "text/html")
    token = client.post("/oauth/token", data=form)
    assert (token.status_code, token.json["error"]) == (413, "invalid_request")


def test_nul_in_the_html_login_form_is_400(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    for field in ("username", "password", "next", "csrf_token"):
        form = {
            "csrf_token": csrf_token(client),
            "username": user.username,
            "password": user.password,
            field: "a\x00b",
        }

        response = client.post("/login", data=form, headers=HTML)

        assert response.status_code == 400, field
        assert response.mimetype == "text/html"
        with client.session_transaction() as session:
            assert "_user_id" not in session


def test_nul_in_an_authorization_request_goes_back_to_the_client_as_invalid_request(
    app: Flask, browser: FlaskClient
) -> None:
    for field in ("state", "nonce", "scope", "code_challenge", "prompt"):
        response = browser.get("/oauth/authorize", query_string={**AUTHORIZATION, field: "a\x00"})

        assert response.status_code == 302, field
        location = urlsplit(response.location)
        assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
        params = parse_qs(location.query)
        assert params["error"] == ["invalid_request"]
        assert params.get("state") == (None if field == "state" else ["xyz"])
    assert count(app, OAuth2AuthorizationCode) == 0


def test_nul_in_the_client_or_its_redirect_uri_is_answered_without_a_redirect(
    app: Flask, browser: FlaskClient
) -> None:
    for field, value in (
        ("client_id", "demo-client\x00"),
        ("redirect_uri", REDIRECT_URI + "\x00"),
    ):
        response = browser.get("/oauth/authorize", query_string={**AUTHORIZATION, field: value})

        assert_refused(response, oauth=True)
        assert "Location" not in response.headers
    assert count(app, OAuth2AuthorizationCode) == 0


def test_values_authlib_would_quote_in_an_error_are_invalid_requests(
    browser: FlaskClient,
) -> None:
    """Authlib copies these into error descriptions and raises ValueError for characters RFC
    6749 does not allow there."""
    for value in ("codé", 'code"'):
        response = browser.get(
            "/oauth/authorize", query_string={**AUTHORIZATION, "response_type": value}
        )
        assert parse_qs(urlsplit(response.location).query)["error"] == ["invalid_request"]
    for value in (REDIRECT_URI + "é", REDIRECT_URI + "\\"):
        response = browser.get(
            "/oauth/authorize", query_string={**AUTHORIZATION, "redirect_uri": value}
        )
        assert_refused(response, oauth=True)


def test_nul_at_the_token_endpoint_is_invalid_request(client: FlaskClient) -> None:
    fields = ("grant_type", "code", "redirect_uri", "client_id", "code_verifier", "refresh_token")
    for field in fields:
        form = {
            "grant_type": "refresh_token",
            "refresh_token": "x",
            "code": "x",
            "redirect_uri": REDIRECT_URI,
            "client_id": "demo-client",
            "code_verifier": "v" * 43,
            field: "a\x00",
        }

        response = client.post("/oauth/token", data=form)

        assert_refused(response, oauth=True)
        assert response.headers["Cache-Control"] == "no-store"


def test_nul_at_userinfo_is_invalid_request(client: FlaskClient, user: TestUser) -> None:
    response = client.get("/oauth/userinfo?scope=%00", headers=user.headers)

    assert_refused(response, oauth=True)


def test_a_hostile_bearer_token_is_401(client: FlaskClient) -> None:
    for value in ("a\x00b", "é", "\x7f", "x" * 5000):
        for path in ("/api/me", "/oauth/userinfo", "/auth/2fa/status"):
            response = client.get(path, headers={"Authorization": f"Bearer {value}"})
            assert response.status_code == 401, (path, response.get_data(as_text=True))


# -- hypothesis: every field of every route ----------------------------------------------------


@FAST
@given(username=JSON_VALUE, password=JSON_VALUE)
def test_any_json_login_body_is_a_4xx(
    client: FlaskClient, user: TestUser, username: Any, password: Any
) -> None:
    response = client.post("/auth/login", json={"username": username, "password": password})

    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    if holds(as_received([username, password]), unencodable):
        assert_refused(response)


@FAST
@given(
    path=st.sampled_from(
        ["/auth/login", "/auth/2fa/challenge", "/auth/2fa/disable", "/auth/2fa/recovery-codes"]
        + ["/login", "/oauth/token", "/settings/2fa/disable"]
    ),
    body=st.sampled_from(sorted(RAW_BODIES)) | st.binary(max_size=64),
    mimetype=st.sampled_from(["application/json", "text/plain", FORM]),
)
def test_any_raw_body_is_a_4xx(
    client: FlaskClient, user: TestUser, path: str, body: str | bytes, mimetype: str
) -> None:
    data = RAW_BODIES[body] if isinstance(body, str) else body

    response = client.post(path, data=data, content_type=mimetype, headers=user.headers)

    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    if len(data) > LIMIT:
        assert response.status_code == 413


@FAST
@given(
    path=st.sampled_from(
        ["/auth/2fa", "/auth/2fa/challenge", "/auth/2fa/disable", "/auth/2fa/recovery-codes"]
    ),
    body=st.dictionaries(
        st.sampled_from(["challengeId", "verificationCode", "recoveryCode"]) | TEXT,
        JSON_VALUE,
        max_size=3,
    ),
)
def test_any_json_body_to_the_2fa_routes_is_a_4xx(
    client: FlaskClient, user: TestUser, path: str, body: dict[str, Any]
) -> None:
    response = client.post(path, json=body, headers=user.headers)

    assert response.status_code < 500, response.get_data(as_text=True)
    if holds(as_received(body), unencodable) and path != "/auth/2fa":  # it reads no body
        assert_refused(response)


@FAST
@given(fields=st.dictionaries(st.sampled_from(["username", "password", "next"]), TEXT))
def test_any_html_login_form_is_answered(
    app: Flask, client: FlaskClient, user: TestUser, fields: dict[str, str]
) -> None:
    form = {"csrf_token": csrf_token(client), **fields}
    query = percent_encoded({"next": fields["next"]}) if "next" in fields else ""

    response = client.post(
        f"/login?{query}", data=percent_encoded(form), content_type=FORM, headers=HTML
    )

    assert response.status_code < 500, response.get_data(as_text=True)
    if holds(fields, has_nul):
        assert response.status_code == 400


@FAST
@given(
    path=st.sampled_from(
        ["/settings/2fa/setup", "/settings/2fa/confirm"]
        + ["/settings/2fa/recovery-codes", "/settings/2fa/disable"]
    ),
    fields=st.dictionaries(st.sampled_from(["challengeId", "code"]) | TEXT, TEXT, max_size=2),
)
def test_any_settings_form_is_answered(
    browser: FlaskClient, path: str, fields: dict[str, str]
) -> None:
    form = {"csrf_token": form_token(browser), **fields}

    response = browser.post(path, data=percent_encoded(form), content_type=FORM, headers=HTML)

    assert response.status_code < 500, response.get_data(as_text=True)
    if holds(fields, has_nul):
        assert response.status_code == 400
    else:
        assert response.status_code != 302 or response.location == "/settings"


@FAST
@given(
    changes=st.dictionaries(
        st.sampled_from([*AUTHORIZATION, "prompt", "max_age", "auth_after"]), TEXT, max_size=3
    ),
    logged_in=st.booleans(),
)
def test_any_authorization_request_is_answered(
    app: Flask,
    client: FlaskClient,
    browser: FlaskClient,
    clock: FakeClock,
    changes: dict[str, str],
    logged_in: bool,
) -> None:
    params = {**AUTHORIZATION, **changes}

    response = (browser if logged_in else client).get(
        f"/oauth/authorize?{percent_encoded(params)}"
    )

    assert response.status_code < 500, response.get_data(as_text=True)
    if not holds(changes, has_nul):
        return
    if has_nul(params["client_id"]) or has_nul(params["redirect_uri"]):
        assert_refused(response, oauth=True)
    elif response.status_code == 302:
        assert parse_qs(urlsplit(response.location).query)["error"] == ["invalid_request"]
    else:  # the client or redirect URI was not valid to begin with: no redirect
        assert response.status_code == 400


@FAST
@given(
    fields=st.dictionaries(
        st.sampled_from(
            ["grant_type", "code", "redirect_uri", "client_id", "code_verifier"]
            + ["refresh_token", "scope"]
        ),
        TEXT | st.sampled_from(["authorization_code", "refresh_token", "demo-client"]),
        max_size=5,
    )
)
def test_any_token_request_is_answered_in_oauths_format(
    client: FlaskClient, fields: dict[str, str]
) -> None:
    response = client.post("/oauth/token", data=percent_encoded(fields), content_type=FORM)

    assert 400 <= response.status_code < 500, response.get_data(as_text=True)
    assert "error" in response.json
    assert response.headers["Cache-Control"] == "no-store"
    if holds(fields, has_nul):
        assert response.json["error"] == "invalid_request"


@FAST
@given(
    path=st.sampled_from(["/oauth/userinfo", "/api/me", "/api/me/security", "/auth/2fa/status"]),
    token=st.text(
        alphabet=st.characters(max_codepoint=0xFF, exclude_characters="\r\n"), max_size=80
    ),
    query=st.dictionaries(TEXT, TEXT, max_size=2),
)
def test_any_bearer_token_and_query_to_a_protected_route_is_a_4xx(
    client: FlaskClient, path: str, token: str, query: dict[str, str]
) -> None:
    response = client.get(f"{path}?{percent_encoded(query)}", headers=bearer(token))

    assert 400 <= response.status_code < 500, response.get_data(as_text=True)


@FAST
@given(next_url=TEXT, prompt=TEXT)
def test_any_login_page_address_is_answered(
    client: FlaskClient, browser: FlaskClient, next_url: str, prompt: str
) -> None:
    query = percent_encoded({"next": next_url, "prompt": prompt})
    for visitor in (client, browser):
        response = visitor.get(f"/login?{query}", headers=HTML)
        assert response.status_code < 500, response.get_data(as_text=True)
        if has_nul(next_url) or has_nul(prompt):
            assert response.status_code == 400
        elif response.status_code == 302:
            assert re.fullmatch(r"/[^/\\].*|/", response.location), response.location
