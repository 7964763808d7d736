"""Hostile input on every route of the extension answers 4xx, never 500, on both databases:
any JSON value in any field, lone surrogates, NUL bytes (which PostgreSQL refuses in text),
non-ASCII digits, deep nesting, oversized bodies, broken UTF-8 in forms and query strings."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import quote

import pytest
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck
from hypothesis import given
from hypothesis import settings
from hypothesis import strategies as st

from helpers import TestUser
from helpers import assert_error
from helpers import begin_login

#: The cookie that binds a browser's login challenge (the extension's name for it).
BINDING_COOKIE = "ucloud_2fa_browser"

#: Strings a hostile client sends: NUL, lone surrogates, other digits, very long, look-alikes.
NASTY = [
    "\x00",
    "123\x00456",
    "\ud800",
    "abc\udfff",
    "１２３４５６",
    "٣٣٣٣٣٣",
    "²²²²²²",
    " " * 10,
    "A" * 5000,
    "ABCD-EFGH-IJKL-MNOP\x00",
    "../../etc/passwd",
    "' OR 1=1 --",
]
hostile_text = st.one_of(st.sampled_from(NASTY), st.text(max_size=300))
hostile_json = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
        hostile_text,
    ),
    lambda children: st.one_of(
        st.lists(children, max_size=3), st.dictionaries(hostile_text, children, max_size=3)
    ),
    max_leaves=8,
)
body = st.fixed_dictionaries(
    {},
    optional={
        "challengeId": hostile_json,
        "verificationCode": hostile_json,
        "recoveryCode": hostile_json,
    },
)
#: Broken UTF-8 (a surrogate's encoding, a lone continuation byte) and NUL, as raw bytes.
RAW = [b"\xed\xa0\x80", b"\x80", b"\x00", b"%00", b"%ED%A0%80", "１２３".encode()]
HYPOTHESIS = settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
JSON_ROUTES = ["/auth/2fa/challenge", "/auth/2fa/recovery-codes", "/auth/2fa/disable"]


def _assert_client_error(response: Any) -> None:
    assert 400 <= response.status_code < 500, (response.status_code, response.get_data())
    if response.is_json:
        assert response.json["statusCode"] == response.status_code


@pytest.mark.parametrize("path", JSON_ROUTES)
@HYPOTHESIS
@given(payload=body)
def test_any_json_body_is_a_client_error(
    client: FlaskClient, connected_user: tuple[TestUser, str], path: str, payload: Any
) -> None:
    user, _ = connected_user
    _assert_client_error(client.post(path, headers=user.headers, json=payload))


@HYPOTHESIS
@given(text=hostile_text)
def test_any_challenge_page_query_is_answered_without_error(
    client: FlaskClient, text: str
) -> None:
    raw = quote(text.encode("utf-8", "surrogatepass"))
    response = client.get(f"/auth/2fa?challengeId={raw}")
    assert response.status_code == 404, response.status_code


@HYPOTHESIS
@given(code=hostile_text, recovery=hostile_text, challenge=hostile_text, csrf=hostile_text)
def test_any_challenge_form_is_answered_without_error(
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    code: str,
    recovery: str,
    challenge: str,
    csrf: str,
) -> None:
    user, _ = connected_user
    client.set_cookie(BINDING_COOKIE, "binding", path="/auth/2fa")
    form = {"challengeId": challenge, "csrfToken": csrf, "verificationCode": code}
    form["recoveryCode"] = recovery
    encoded = {key: value.encode("utf-8", "surrogatepass") for key, value in form.items()}
    response = client.post("/auth/2fa/challenge/form", data=encoded)
    assert response.status_code in (400, 403, 404), response.status_code


@pytest.mark.parametrize("raw", RAW)
def test_broken_bytes_in_forms_and_query_strings(
    client: FlaskClient, connected_user: tuple[TestUser, str], raw: bytes
) -> None:
    user, _ = connected_user
    challenge_id = begin_login(client, user)
    client.set_cookie(BINDING_COOKIE, "binding", path="/auth/2fa")
    page = client.get("/auth/2fa?challengeId=" + quote(raw))
    assert page.status_code == 404
    form = b"challengeId=" + challenge_id.encode() + b"&csrfToken=x&verificationCode=" + raw
    answered = client.post(
        "/auth/2fa/challenge/form",
        data=form,
        content_type="application/x-www-form-urlencoded",
    )
    assert answered.status_code in (400, 403, 404)
    bearer = client.get("/auth/2fa/status", headers={"Authorization": b"Bearer " + raw})
    _assert_client_error(bearer)


@pytest.mark.parametrize("path", JSON_ROUTES)
def test_deeply_nested_json_is_400(
    client: FlaskClient, connected_user: tuple[TestUser, str], path: str
) -> None:
    user, _ = connected_user
    nested = "[" * 100_000 + "]" * 100_000
    for text in (nested, '{"challengeId": ' + nested + "}"):
        response = client.post(path, headers=user.headers, data=text[:16_000])
        _assert_client_error(response)
    deep = client.post(
        path,
        headers={**user.headers, "Content-Type": "application/json"},
        data="[" * 8000 + "]" * 8000,
    )
    assert_error(deep, 400, "BAD_REQUEST")


@pytest.mark.parametrize("path", [*JSON_ROUTES, "/auth/2fa/challenge/form"])
def test_oversized_bodies_are_413_unread(client: FlaskClient, user: TestUser, path: str) -> None:
    big = json.dumps({"challengeId": "x" * 100_000, "verificationCode": 123456})
    response = client.post(path, headers=user.headers, data=big, content_type="application/json")
    assert_error(response, 413, "REQUEST_ENTITY_TOO_LARGE")


def test_the_challenge_page_refuses_framing(client: FlaskClient, user: TestUser) -> None:
    for response in (
        client.get("/auth/2fa?challengeId=unknown"),
        client.post("/auth/2fa/challenge/form", data={"challengeId": "x"}),
    ):
        assert response.headers["X-Frame-Options"] == "DENY"
        assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]
        assert response.headers["Cache-Control"] == "no-store"


def test_the_login_steps_answers_are_not_stored(
    client: FlaskClient, connected_user: tuple[TestUser, str], make_user: Any
) -> None:
    user, _ = connected_user
    plain = make_user("plain")
    for who in (user, plain):  # a challenge, and a completed login with tokens
        response = client.post(
            "/auth/login", json={"username": who.username, "password": who.password}
        )
        assert response.status_code == 200
        assert response.headers["Cache-Control"] == "no-store"


def test_an_app_of_its_own_keeps_its_content_security_policy(app: Flask) -> None:
    @app.after_request
    def policy(response: Any) -> Any:
        response.headers["Content-Security-Policy"] = "default-src 'self'"
        return response

    response = app.test_client().get("/auth/2fa?challengeId=unknown")
    # The blueprint's headers come first; the app's own after_request has the last word.
    assert response.headers["Content-Security-Policy"] == "default-src 'self'"
    assert response.headers["X-Frame-Options"] == "DENY"
