"""The example app's OAuth2 authorization server and OpenID Connect provider."""

from __future__ import annotations

import base64
import hashlib
import logging
import re
import secrets
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING
from typing import Any
from urllib.parse import parse_qs
from urllib.parse import urlencode
from urllib.parse import urlsplit

import pytest
import requests
from authlib.integrations.base_client import OAuthError
from authlib.integrations.requests_client import OAuth2Session
from authlib.oidc.discovery import OpenIDProviderMetadata
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Flask
from flask import url_for
from flask.testing import FlaskClient
from joserfc import jwt
from joserfc.jwk import KeySet
from joserfc.jwk import RSAKey
from sqlalchemy import select
from sqlalchemy import update
from werkzeug.serving import make_server

import example_app
from example_app import db
from example_app.models import Token
from example_app.oauth import OAuth2AuthorizationCode
from example_app.oauth import OAuth2Client
from example_app.session import LOGIN_KEY

from helpers import FakeClock
from helpers import cli
from helpers import code_for
from helpers import count
from helpers import free_port
from helpers import race

if TYPE_CHECKING:
    from helpers import TestUser

REDIRECT_URI = "http://127.0.0.1:8765/callback"
ISSUER = "http://localhost"


# -- helpers -----------------------------------------------------------------------------------


def pkce_pair() -> tuple[str, str]:
    """A code verifier and its S256 challenge (RFC 7636, computed here, not by Authlib)."""
    verifier = secrets.token_urlsafe(48)
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return verifier, base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def authorization_request(challenge: str, **overrides: str | None) -> dict[str, str]:
    params: dict[str, str | None] = {
        "response_type": "code",
        "client_id": "demo-client",
        "redirect_uri": REDIRECT_URI,
        "scope": "openid profile",
        "state": "xyz",
        "nonce": "n-0S6_WzA2Mj",
        "code_challenge": challenge,
        "code_challenge_method": "S256",
        **overrides,
    }
    return {key: value for key, value in params.items() if value is not None}


def log_in(client: FlaskClient, user_id: int, amr: list[str], auth_time: int) -> None:
    """What ``example_app.session.log_in`` leaves in the session of a browser: Flask-Login's
    user id (as its ``FlaskLoginClient`` writes it) and how the login was made."""
    with client.session_transaction() as session:
        session["_user_id"] = str(user_id)
        session["_fresh"] = True
        session[LOGIN_KEY] = {"amr": amr, "auth_time": auth_time, "generation": 0}


def redirect_params(response: Any) -> dict[str, str]:
    """The query of a redirect to the demo client's callback."""
    assert response.status_code == 302, response.get_data(as_text=True)
    location = urlsplit(response.location)
    assert f"{location.scheme}://{location.netloc}{location.path}" == REDIRECT_URI
    return {key: values[0] for key, values in parse_qs(location.query).items()}


def get_code(client: FlaskClient, challenge: str, **overrides: str | None) -> str:
    response = client.get(
        "/oauth/authorize", query_string=authorization_request(challenge, **overrides)
    )
    params = redirect_params(response)
    assert params["state"] == "xyz"
    return params["code"]


def exchange(client: FlaskClient, code: str, verifier: str | None, **extra: str) -> Any:
    data = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": REDIRECT_URI,
        "client_id": "demo-client",
        **extra,
    }
    if verifier is not None:
        data["code_verifier"] = verifier
    return client.post("/oauth/token", data=data)


def refresh(client: FlaskClient, refresh_token: str) -> Any:
    return client.post(
        "/oauth/token",
        data={
            "grant_type": "refresh_token",
            "refresh_token": refresh_token,
            "client_id": "demo-client",
        },
    )


def tokens_for(client: FlaskClient) -> dict[str, Any]:
    """The whole code flow for the browser's session: the token response."""
    verifier, challenge = pkce_pair()
    response = exchange(client, get_code(client, challenge), verifier)
    assert response.status_code == 200, response.json
    tokens: dict[str, Any] = response.json
    return tokens


def verified_claims(client: FlaskClient, id_token: str) -> dict[str, Any]:
    """The ID token's claims, after checking its signature with the published JWKS and its
    iss, aud, nonce, exp and iat as a relying party does."""
    keys = KeySet.import_key_set(client.get("/oauth/jwks").json)
    token = jwt.decode(id_token, keys, algorithms=["RS256"])
    assert token.header["kid"] == keys.keys[0].kid
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": "demo-client"},
        nonce={"essential": True, "value": "n-0S6_WzA2Mj"},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
        auth_time={"essential": True},
    ).validate(token.claims)
    return token.claims


def at_hash(access_token: str) -> str:
    digest = hashlib.sha256(access_token.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest[:16]).rstrip(b"=").decode("ascii")


def bearer(access_token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {access_token}"}


def login_url(app: Flask, next_url: str) -> str:
    with app.test_request_context():
        return url_for("pages.login", next=next_url)


# -- discovery and keys ------------------------------------------------------------------------


def test_discovery_document_describes_the_provider(client: FlaskClient) -> None:
    response = client.get("/.well-known/openid-configuration")

    assert response.status_code == 200
    metadata = response.json
    OpenIDProviderMetadata(metadata).validate()
    assert metadata["issuer"] == ISSUER
    assert metadata["authorization_endpoint"] == f"{ISSUER}/oauth/authorize"
    assert metadata["token_endpoint"] == f"{ISSUER}/oauth/token"
    assert metadata["userinfo_endpoint"] == f"{ISSUER}/oauth/userinfo"
    assert metadata["jwks_uri"] == f"{ISSUER}/oauth/jwks"
    assert metadata["scopes_supported"] == ["openid", "profile"]
    assert metadata["response_types_supported"] == ["code"]
    assert metadata["grant_types_supported"] == ["authorization_code", "refresh_token"]
    assert metadata["code_challenge_methods_supported"] == ["S256"]
    assert metadata["token_endpoint_auth_methods_supported"] == ["none"]
    assert metadata["id_token_signing_alg_values_supported"] == ["RS256"]
    assert {"amr", "auth_time", "nonce"} <= set(metadata["claims_supported"])


@pytest.mark.app_config(OAUTH_ISSUER="https://auth.example.org/")
def test_issuer_comes_from_config(client: FlaskClient) -> None:
    assert client.get("/.well-known/openid-configuration").json["issuer"] == (
        "https://auth.example.org"
    )


def test_jwks_publishes_the_public_rsa_key_with_a_kid(client: FlaskClient) -> None:
    response = client.get("/oauth/jwks")

    assert response.status_code == 200
    [key] = response.json["keys"]
    assert key["kty"] == "RSA"
    assert key["alg"] == "RS256"
    assert key["use"] == "sig"
    assert key["kid"]
    assert not {"d", "p", "q", "dp", "dq", "qi"} & set(key)
    assert key["kid"] == RSAKey.import_key(key).thumbprint()


def _pem() -> str:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


CONFIGURED_PEM = _pem()


@pytest.mark.app_config(OAUTH_JWT_KEY_PEM=CONFIGURED_PEM)
def test_the_signing_key_can_come_from_config(client: FlaskClient) -> None:
    [key] = client.get("/oauth/jwks").json["keys"]

    assert key["kid"] == RSAKey.import_key(CONFIGURED_PEM).thumbprint()


# -- the authorization-code flow ---------------------------------------------------------------


def test_code_flow_with_pkce_after_a_login_with_2fa(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str]
) -> None:
    user, _ = connected_user
    auth_time = int(time.time()) - 5
    log_in(client, user.id, ["pwd", "otp"], auth_time)
    verifier, challenge = pkce_pair()

    response = client.get("/oauth/authorize", query_string=authorization_request(challenge))

    params = redirect_params(response)
    assert set(params) == {"code", "state"}
    assert params["state"] == "xyz"
    tokens = exchange(client, params["code"], verifier)
    assert tokens.status_code == 200, tokens.json
    assert tokens.headers["Cache-Control"] == "no-store"
    body = tokens.json
    assert body["token_type"] == "Bearer"
    assert body["scope"] == "openid profile"
    assert {"access_token", "refresh_token", "id_token", "expires_in"} <= set(body)

    claims = verified_claims(client, body["id_token"])
    assert claims["sub"] == str(user.id)
    assert claims["preferred_username"] == "alice"
    assert claims["amr"] == ["pwd", "otp"]
    assert claims["auth_time"] == auth_time
    assert claims["at_hash"] == at_hash(body["access_token"])

    me = client.get("/api/me", headers=bearer(body["access_token"]))
    assert me.status_code == 200
    assert me.json == {"username": "alice", "amr": ["pwd", "otp"], "authTime": auth_time}
    # A token from a login with the second factor passes the step-up check.
    assert client.get("/api/me/security", headers=bearer(body["access_token"])).json == {
        "username": "alice",
        "secondFactor": True,
    }
    assert count(app, OAuth2AuthorizationCode) == 0


def test_a_user_without_2fa_gets_pwd_in_amr(client: FlaskClient, user: TestUser) -> None:
    auth_time = int(time.time())
    log_in(client, user.id, ["pwd"], auth_time)

    tokens = tokens_for(client)

    claims = verified_claims(client, tokens["id_token"])
    assert claims["amr"] == ["pwd"]
    assert claims["auth_time"] == auth_time
    assert client.get("/api/me", headers=bearer(tokens["access_token"])).json["amr"] == ["pwd"]


def test_a_pwd_only_session_of_a_user_with_2fa_fails_the_step_up_check(
    client: FlaskClient, connected_user: tuple[TestUser, str]
) -> None:
    # A session from before 2FA was connected says so in its tokens; step-up refuses them.
    user, _ = connected_user
    log_in(client, user.id, ["pwd"], int(time.time()))

    tokens = tokens_for(client)

    assert verified_claims(client, tokens["id_token"])["amr"] == ["pwd"]
    response = client.get("/api/me/security", headers=bearer(tokens["access_token"]))
    assert response.status_code == 401


def test_userinfo_answers_for_an_openid_token(client: FlaskClient, user: TestUser) -> None:
    log_in(client, user.id, ["pwd"], int(time.time()))
    tokens = tokens_for(client)

    response = client.get("/oauth/userinfo", headers=bearer(tokens["access_token"]))

    assert response.json == {"sub": str(user.id), "preferred_username": "alice"}


def test_without_the_openid_scope_there_is_no_id_token(
    client: FlaskClient, user: TestUser
) -> None:
    log_in(client, user.id, ["pwd"], int(time.time()))
    verifier, challenge = pkce_pair()
    response = client.get(
        "/oauth/authorize", query_string=authorization_request(challenge, scope="profile")
    )

    tokens = exchange(client, redirect_params(response)["code"], verifier).json

    assert "id_token" not in tokens
    assert tokens["scope"] == "profile"


def test_refresh_token_gives_new_tokens_with_the_same_login(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str]
) -> None:
    user, _ = connected_user
    auth_time = int(time.time()) - 60
    log_in(client, user.id, ["pwd", "otp"], auth_time)
    first = tokens_for(client)

    response = refresh(client, first["refresh_token"])

    assert response.status_code == 200, response.json
    second = response.json
    assert second["access_token"] != first["access_token"]
    assert second["refresh_token"] != first["refresh_token"]
    assert second["scope"] == "openid profile"
    me = client.get("/api/me", headers=bearer(second["access_token"]))
    assert me.json == {"username": "alice", "amr": ["pwd", "otp"], "authTime": auth_time}
    # The old pair is used up: its access token and its refresh token stop working.
    assert client.get("/api/me", headers=bearer(first["access_token"])).status_code == 401
    assert refresh(client, second["refresh_token"]).status_code == 200


def stored_tokens(app: Flask) -> set[str]:
    """Every value of the token table's token columns."""
    with app.app_context():
        rows = db.session.execute(select(Token.access_token, Token.refresh_token)).all()
    return {value for row in rows for value in row if value}


def sha256_hex(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def test_the_token_table_holds_hashes_of_the_issued_tokens_only(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    log_in(client, user.id, ["pwd"], int(clock.now))
    first = tokens_for(client)
    second = refresh(client, first["refresh_token"]).json

    stored = stored_tokens(app)

    issued = [first[key] for key in ("access_token", "refresh_token")]
    issued += [second[key] for key in ("access_token", "refresh_token")]
    assert not set(issued) & stored
    assert {sha256_hex(token) for token in issued} <= stored
    # What a copy of the database gives is no token.
    for hashed in stored:
        assert client.get("/api/me", headers=bearer(hashed)).status_code == 401
        assert refresh(client, hashed).json["error"] == "invalid_grant"
    assert client.get("/api/me", headers=bearer(second["access_token"])).status_code == 200


@pytest.mark.parametrize(
    ("age", "works"), [(30 * 24 * 3600 - 60, True), (30 * 24 * 3600 + 60, False)]
)
def test_a_refresh_token_works_for_its_lifetime_only(
    monkeypatch: pytest.MonkeyPatch,
    app: Flask,
    client: FlaskClient,
    user: TestUser,
    clock: FakeClock,
    age: int,
    works: bool,
) -> None:
    assert app.config["REFRESH_TOKEN_LIFETIME"] == 30 * 24 * 3600
    log_in(client, user.id, ["pwd"], int(clock.now))
    issued = tokens_for(client)
    issued_at = time.time()
    monkeypatch.setattr(time, "time", lambda: issued_at + age)

    response = refresh(client, issued["refresh_token"])

    if works:
        assert response.status_code == 200, response.json
    else:
        assert response.status_code == 400
        assert response.json["error"] == "invalid_grant"
        assert count(app, Token, client_id="demo-client") == 1


@pytest.mark.app_config(REFRESH_TOKEN_LIFETIME=600)
def test_the_refresh_token_lifetime_comes_from_config(
    monkeypatch: pytest.MonkeyPatch,
    app: Flask,
    client: FlaskClient,
    user: TestUser,
    clock: FakeClock,
) -> None:
    log_in(client, user.id, ["pwd"], int(clock.now))
    issued = tokens_for(client)
    issued_at = time.time()
    monkeypatch.setattr(time, "time", lambda: issued_at + 660)

    assert refresh(client, issued["refresh_token"]).json["error"] == "invalid_grant"


def test_oauth_clients_cannot_ask_for_the_scope_that_manages_2fa(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    log_in(client, user.id, ["pwd"], int(clock.now))
    _, challenge = pkce_pair()

    response = client.get(
        "/oauth/authorize",
        query_string=authorization_request(challenge, scope="openid ucloud-2fa"),
    )

    assert redirect_params(response)["error"] == "invalid_scope"
    assert count(app, OAuth2AuthorizationCode) == 0


def test_an_oauth_token_cannot_manage_the_second_factor(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    """An OAuth client's token (``openid profile``) reads the status but sets up nothing.

    Needs ``UCLOUD_2FA_MANAGEMENT_SCOPE`` in the package."""
    log_in(client, user.id, ["pwd"], int(clock.now))
    access_token = tokens_for(client)["access_token"]

    status = client.get("/auth/2fa/status", headers=bearer(access_token))
    setup = client.post("/auth/2fa", headers=bearer(access_token))

    assert status.status_code == 200
    assert status.json == {"connected": False}
    assert setup.status_code == 403, setup.json
    assert setup.json["errorCode"] == "INSUFFICIENT_SCOPE"
    assert count(app, example_app.two_factor.models.Credential) == 0


def test_a_reset_revokes_the_oauth_tokens_of_the_user(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, _ = connected_user
    log_in(client, user.id, ["pwd", "otp"], int(clock.now))
    issued = tokens_for(client)

    result = cli(app, "reset", str(user.id), "--yes")

    assert result.exit_code == 0, result.output
    assert client.get("/api/me", headers=bearer(issued["access_token"])).status_code == 401
    assert refresh(client, issued["refresh_token"]).json["error"] == "invalid_grant"


def test_a_refresh_token_of_another_client_is_refused(client: FlaskClient, user: TestUser) -> None:
    # The JSON login's tokens belong to the app itself, not to the demo client.
    password_login = client.post(
        "/auth/login", json={"username": user.username, "password": user.password}
    ).json

    response = refresh(client, password_login["refreshToken"])

    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"


# -- what is refused ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "overrides",
    [
        {"code_challenge": None, "code_challenge_method": None},
        {"code_challenge_method": None},
        {"code_challenge_method": "plain"},
        {"code_challenge": "too-short"},
    ],
    ids=["no-pkce", "no-method", "plain", "malformed"],
)
def test_an_authorization_request_without_s256_pkce_is_refused(
    app: Flask, client: FlaskClient, user: TestUser, overrides: dict[str, str | None]
) -> None:
    log_in(client, user.id, ["pwd"], int(time.time()))
    _, challenge = pkce_pair()

    response = client.get(
        "/oauth/authorize", query_string=authorization_request(challenge, **overrides)
    )

    params = redirect_params(response)
    assert params["error"] == "invalid_request"
    assert params["state"] == "xyz"
    assert "code" not in params
    assert count(app, OAuth2AuthorizationCode) == 0


def test_a_token_request_without_the_verifier_is_refused(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    log_in(client, user.id, ["pwd"], int(time.time()))
    verifier, challenge = pkce_pair()
    code = get_code(client, challenge)

    response = exchange(client, code, None)

    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"
    assert count(app, Token, client_id="demo-client") == 0
    # Nothing was used up: the right verifier still works.
    assert exchange(client, code, verifier).status_code == 200


def test_a_wrong_verifier_is_refused(app: Flask, client: FlaskClient, user: TestUser) -> None:
    log_in(client, user.id, ["pwd"], int(time.time()))
    _, challenge = pkce_pair()
    code = get_code(client, challenge)
    other_verifier, _ = pkce_pair()

    response = exchange(client, code, other_verifier)

    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"
    assert count(app, Token, client_id="demo-client") == 0


def test_a_code_works_once(app: Flask, client: FlaskClient, user: TestUser) -> None:
    log_in(client, user.id, ["pwd"], int(time.time()))
    verifier, challenge = pkce_pair()
    code = get_code(client, challenge)
    assert exchange(client, code, verifier).status_code == 200

    response = exchange(client, code, verifier)

    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"
    assert count(app, Token, client_id="demo-client") == 1


def test_an_expired_code_is_refused(app: Flask, client: FlaskClient, user: TestUser) -> None:
    log_in(client, user.id, ["pwd"], int(time.time()))
    verifier, challenge = pkce_pair()
    code = get_code(client, challenge)
    with app.app_context():
        db.session.execute(
            update(OAuth2AuthorizationCode).values(issued_at=int(time.time()) - 301)
        )
        db.session.commit()

    response = exchange(client, code, verifier)

    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"


def test_a_code_is_bound_to_its_redirect_uri(client: FlaskClient, user: TestUser) -> None:
    log_in(client, user.id, ["pwd"], int(time.time()))
    verifier, challenge = pkce_pair()
    code = get_code(client, challenge)

    response = exchange(client, code, verifier, redirect_uri="http://127.0.0.1:8765/other")

    assert response.status_code == 400
    assert response.json["error"] == "invalid_grant"


def test_an_unregistered_redirect_uri_gets_no_redirect(
    client: FlaskClient, user: TestUser
) -> None:
    log_in(client, user.id, ["pwd"], int(time.time()))
    _, challenge = pkce_pair()

    response = client.get(
        "/oauth/authorize",
        query_string=authorization_request(challenge, redirect_uri="https://evil.example/cb"),
    )

    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_an_unknown_client_is_refused(client: FlaskClient, user: TestUser) -> None:
    log_in(client, user.id, ["pwd"], int(time.time()))
    _, challenge = pkce_pair()

    response = client.get(
        "/oauth/authorize", query_string=authorization_request(challenge, client_id="nobody")
    )

    assert response.status_code == 400
    assert response.json["error"] == "invalid_client"


@pytest.mark.parametrize("grant_type", ["password", "client_credentials", "implicit"])
def test_no_grant_issues_a_token_without_the_browser_login(
    app: Flask, client: FlaskClient, user: TestUser, grant_type: str
) -> None:
    response = client.post(
        "/oauth/token",
        data={
            "grant_type": grant_type,
            "username": user.username,
            "password": user.password,
            "client_id": "demo-client",
        },
    )

    assert response.status_code == 400
    assert response.json["error"] == "unsupported_grant_type"
    assert count(app, Token, client_id="demo-client") == 0


# -- the login -------------------------------------------------------------------------------


def test_without_a_login_the_browser_goes_to_the_login_page(
    app: Flask, client: FlaskClient
) -> None:
    _, challenge = pkce_pair()
    request = authorization_request(challenge)

    response = client.get("/oauth/authorize", query_string=request)

    assert response.status_code == 302
    assert response.location == login_url(app, f"/oauth/authorize?{urlencode(request)}")
    assert count(app, OAuth2AuthorizationCode) == 0


@pytest.mark.parametrize(
    "session_keys",
    [
        {"_user_id": "1"},
        {"_user_id": "1", LOGIN_KEY: {"amr": ["pwd"]}},
        {"_user_id": "1", LOGIN_KEY: {"amr": [], "auth_time": 0}},
        {LOGIN_KEY: {"amr": ["pwd"], "auth_time": 0}},
    ],
)
def test_an_incomplete_session_is_no_login(
    app: Flask, client: FlaskClient, user: TestUser, session_keys: dict[str, Any]
) -> None:
    with client.session_transaction() as session:
        session.update(session_keys)
    _, challenge = pkce_pair()

    response = client.get("/oauth/authorize", query_string=authorization_request(challenge))

    assert response.status_code == 302
    assert urlsplit(response.location).path == "/login"


def test_prompt_none_without_a_login_answers_login_required(client: FlaskClient) -> None:
    _, challenge = pkce_pair()

    response = client.get(
        "/oauth/authorize", query_string=authorization_request(challenge, prompt="none")
    )

    params = redirect_params(response)
    assert params["error"] == "login_required"
    assert params["state"] == "xyz"


@pytest.mark.parametrize("reason", [{"prompt": "login"}, {"max_age": "60"}])
def test_a_new_login_is_asked_for_without_ending_the_session(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock, reason: dict[str, str]
) -> None:
    """Any site can send a browser to this GET: it asks for a login, it does not log out."""
    log_in(client, user.id, ["pwd"], int(clock.now) - 120)
    _, challenge = pkce_pair()

    response = client.get(
        "/oauth/authorize", query_string=authorization_request(challenge, **reason)
    )

    # Back from the login page, the request wants a login made after it asked.
    again = {**authorization_request(challenge), "auth_after": str(int(clock.now))}
    location = urlsplit(response.location)
    assert location.path == "/login"
    assert parse_qs(location.query) == {
        "prompt": ["login"],
        "next": [f"/oauth/authorize?{urlencode(again)}"],
    }
    with client.session_transaction() as session:
        assert session["_user_id"] == str(user.id)
        assert session[LOGIN_KEY]["auth_time"] == int(clock.now) - 120
    assert client.get("/settings").status_code == 200
    assert count(app, OAuth2AuthorizationCode) == 0


def test_the_old_login_does_not_satisfy_the_request_for_a_new_one(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    log_in(client, user.id, ["pwd"], int(clock.now) - 30)
    _, challenge = pkce_pair()
    to_login = client.get(
        "/oauth/authorize", query_string=authorization_request(challenge, prompt="login")
    )
    next_url = parse_qs(urlsplit(to_login.location).query)["next"][0]
    clock.advance(5)

    # Straight back, without logging in again: still asked to log in.
    response = client.get(next_url)

    assert urlsplit(response.location).path == "/login"
    assert count(app, OAuth2AuthorizationCode) == 0


def test_a_new_login_completes_the_request_that_asked_for_it(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    """The whole journey of ``prompt=login``: the login page asks a logged-in browser for the
    password, the new login replaces the session, and the request issues a code for it."""
    log_in(client, user.id, ["pwd"], int(clock.now) - 3600)
    _, challenge = pkce_pair()
    to_login = client.get(
        "/oauth/authorize", query_string=authorization_request(challenge, prompt="login")
    )
    clock.advance(20)

    login_page = client.get(to_login.location)

    assert login_page.status_code == 200  # the form, not a redirect: the session is kept
    html = login_page.get_data(as_text=True)
    assert "Enter your password again to continue." in html
    form_token = re.search(r'name="csrf_token" value="([^"]+)"', html)
    next_url = parse_qs(urlsplit(to_login.location).query)["next"][0]
    assert form_token is not None
    logged_in = client.post(
        "/login",
        data={
            "csrf_token": form_token[1],
            "username": user.username,
            "password": user.password,
            "next": next_url,
        },
        headers={"Accept": "text/html"},
    )
    assert logged_in.location == next_url
    code = redirect_params(client.get(next_url))["code"]
    with app.app_context():
        stored = db.session.execute(
            select(OAuth2AuthorizationCode).filter_by(code=code)
        ).scalar_one()
        assert stored.auth_time == int(clock.now)


def test_a_recent_enough_login_satisfies_max_age(
    client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    log_in(client, user.id, ["pwd"], int(clock.now) - 10)
    _, challenge = pkce_pair()

    response = client.get(
        "/oauth/authorize", query_string=authorization_request(challenge, max_age="600")
    )

    assert "code" in redirect_params(response)


@pytest.mark.parametrize("parameter", ["max_age", "auth_after"])
def test_a_time_that_is_not_ascii_digits_is_an_invalid_request(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock, parameter: str
) -> None:
    log_in(client, user.id, ["pwd"], int(clock.now))
    _, challenge = pkce_pair()

    for value in ("²", "١٠", "-1", "1.5", " 10", "0x10", "1" * 11):
        response = client.get(
            "/oauth/authorize",
            query_string=authorization_request(challenge, **{parameter: value}),
        )

        params = redirect_params(response)
        assert params["error"] == "invalid_request", value
        assert params["state"] == "xyz"
    assert count(app, OAuth2AuthorizationCode) == 0


def test_a_login_time_in_the_future_gives_no_code(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    log_in(client, user.id, ["pwd"], int(clock.now))
    _, challenge = pkce_pair()

    response = client.get(
        "/oauth/authorize",
        query_string=authorization_request(challenge, auth_after=str(int(clock.now) + 60)),
    )

    assert urlsplit(response.location).path == "/login"
    assert count(app, OAuth2AuthorizationCode) == 0


def test_the_login_page_and_the_2fa_challenge_lead_back_to_the_client(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    """The whole browser journey: authorize, log in with the password, answer the TOTP
    challenge, come back to authorize, get a code and tokens that say "otp"."""
    user, secret = connected_user
    html = {"Accept": "text/html"}
    verifier, challenge = pkce_pair()
    to_login = client.get("/oauth/authorize", query_string=authorization_request(challenge))
    login_page = client.get(to_login.location, headers=html)
    assert login_page.status_code == 200
    with client.session_transaction() as session:
        form_token = session["csrf_token"]
    next_url = parse_qs(urlsplit(to_login.location).query)["next"][0]

    password_step = client.post(
        "/login",
        headers=html,
        data={
            "csrf_token": form_token,
            "username": user.username,
            "password": user.password,
            "next": next_url,
        },
    )

    # A password alone makes no session: the browser is asked for a code.
    assert urlsplit(password_step.location).path == "/auth/2fa"
    with client.session_transaction() as session:
        assert "_user_id" not in session
    still_out = client.get("/oauth/authorize", query_string=authorization_request(challenge))
    assert urlsplit(still_out.location).path == "/login"
    challenge_page = client.get(password_step.location, headers=html).get_data(as_text=True)
    hidden = dict(
        re.findall(r'<input type="hidden" name="(\w+)" value="([^"]*)">', challenge_page)
    )
    assert set(hidden) == {"challengeId", "csrfToken"}
    answered = client.post(
        "/auth/2fa/challenge/form",
        headers=html,
        data={**hidden, "verificationCode": code_for(secret, clock)},
    )
    assert answered.status_code == 302
    assert answered.location == next_url

    code = redirect_params(client.get(answered.location))["code"]
    tokens = exchange(client, code, verifier).json
    claims = verified_claims(client, tokens["id_token"])
    assert claims["amr"] == ["pwd", "otp"]
    assert claims["auth_time"] == int(clock.now)


# -- the demo client ---------------------------------------------------------------------------


def test_the_demo_client_is_a_public_client(app: Flask) -> None:
    with app.app_context():
        [client] = db.session.execute(select(OAuth2Client)).scalars()
        assert client.client_id == "demo-client"
        assert client.client_secret is None
        assert client.token_endpoint_auth_method == "none"
        assert client.redirect_uris == [REDIRECT_URI]
        assert client.grant_types == ["authorization_code", "refresh_token"]
        assert client.response_types == ["code"]
        assert client.scope == "openid profile"


@pytest.mark.app_config(OAUTH_DEMO_REDIRECT_URIS=["http://127.0.0.1:9999/cb"])
def test_the_demo_client_redirect_uris_come_from_config(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    log_in(client, user.id, ["pwd"], int(time.time()))
    _, challenge = pkce_pair()

    response = client.get(
        "/oauth/authorize",
        query_string=authorization_request(challenge, redirect_uri="http://127.0.0.1:9999/cb"),
    )

    assert re.match(r"^http://127\.0\.0\.1:9999/cb\?code=", response.location)


def test_creating_the_app_again_keeps_one_demo_client(app: Flask, database_url: str) -> None:
    from example_app import create_app

    again = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_url,
            "OAUTH_DEMO_REDIRECT_URIS": ["http://127.0.0.1:1234/cb"],
        },
        instance_path=app.instance_path,
    )
    with again.app_context():
        db.engine.dispose()

    with app.app_context():
        [client] = db.session.execute(select(OAuth2Client)).scalars()
        assert client.redirect_uris == ["http://127.0.0.1:1234/cb"]


# -- races -------------------------------------------------------------------------------------


RACERS = 4


@pytest.mark.race
def test_of_parallel_exchanges_of_one_code_one_wins(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    log_in(client, user.id, ["pwd"], int(time.time()))
    for _ in range(3):
        verifier, challenge = pkce_pair()
        code = get_code(client, challenge)

        outcomes = race(app, [partial(exchange, code=code, verifier=verifier)] * RACERS)
        statuses = [outcome.status for outcome in outcomes]

        assert sorted(statuses) == [200] + [400] * (RACERS - 1)
    assert count(app, Token, client_id="demo-client") == 3


@pytest.mark.race
def test_of_parallel_refreshes_with_one_token_one_wins(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    log_in(client, user.id, ["pwd"], int(time.time()))
    refresh_token = tokens_for(client)["refresh_token"]

    outcomes = race(app, [partial(refresh, refresh_token=refresh_token)] * RACERS)
    statuses = [outcome.status for outcome in outcomes]

    assert sorted(statuses) == [200] + [400] * (RACERS - 1)
    assert count(app, Token, client_id="demo-client") == 2


# -- OAuth 2.0 Security BCP (RFC 9700) and RFC 6749 conformance ---------------------------------


@contextmanager
def served(app: Flask) -> Iterator[str]:
    """``app`` served over HTTP on a thread, for a real OAuth client library; its base URL."""
    http = make_server("127.0.0.1", free_port(), app, threaded=True)
    thread = threading.Thread(target=http.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{http.server_port}"
    finally:
        http.shutdown()
        thread.join(timeout=10)


def oauth_session() -> OAuth2Session:
    return OAuth2Session(
        "demo-client",
        redirect_uri=REDIRECT_URI,
        scope="openid profile",
        token_endpoint_auth_method="none",
        code_challenge_method="S256",
    )


def audit_records(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records if record.name == "example_app.audit"]


def test_a_replayed_code_revokes_the_tokens_issued_from_it(
    app: Flask, client: FlaskClient, user: TestUser, caplog: pytest.LogCaptureFixture
) -> None:
    log_in(client, user.id, ["pwd"], int(time.time()))
    verifier, challenge = pkce_pair()
    code = get_code(client, challenge)
    oauth = oauth_session()
    with served(app) as url:
        token = oauth.fetch_token(f"{url}/oauth/token", code=code, code_verifier=verifier)
        assert requests.get(f"{url}/api/me", headers=bearer(token["access_token"]), timeout=10).ok

        with pytest.raises(OAuthError) as replay:
            oauth.fetch_token(f"{url}/oauth/token", code=code, code_verifier=verifier)

        assert replay.value.error == "invalid_grant"
        me = requests.get(f"{url}/api/me", headers=bearer(token["access_token"]), timeout=10)
        assert me.status_code == 401
        with pytest.raises(OAuthError) as refused:
            oauth.refresh_token(f"{url}/oauth/token", refresh_token=token["refresh_token"])
        assert refused.value.error == "invalid_grant"
    assert "authorization code replayed: token family revoked" in audit_records(caplog)


def test_a_replayed_refresh_token_revokes_its_whole_family(
    app: Flask, client: FlaskClient, user: TestUser, caplog: pytest.LogCaptureFixture
) -> None:
    log_in(client, user.id, ["pwd"], int(time.time()))
    first = tokens_for(client)
    oauth = oauth_session()
    with served(app) as url:
        second = oauth.refresh_token(f"{url}/oauth/token", refresh_token=first["refresh_token"])
        third = oauth.refresh_token(f"{url}/oauth/token", refresh_token=second["refresh_token"])
        assert requests.get(f"{url}/api/me", headers=bearer(third["access_token"]), timeout=10).ok

        # The first refresh token again: an attacker's copy, or the client's, of a used one.
        with pytest.raises(OAuthError) as replay:
            oauth.refresh_token(f"{url}/oauth/token", refresh_token=first["refresh_token"])

        assert replay.value.error == "invalid_grant"
        me = requests.get(f"{url}/api/me", headers=bearer(third["access_token"]), timeout=10)
        assert me.status_code == 401
        with pytest.raises(OAuthError):
            oauth.refresh_token(f"{url}/oauth/token", refresh_token=third["refresh_token"])
    assert "refresh token replayed: token family revoked" in audit_records(caplog)


def test_a_replay_leaves_other_families_of_the_user_alone(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    log_in(client, user.id, ["pwd"], int(time.time()))
    first, other = tokens_for(client), tokens_for(client)
    assert refresh(client, first["refresh_token"]).status_code == 200

    assert refresh(client, first["refresh_token"]).json["error"] == "invalid_grant"

    assert client.get("/api/me", headers=bearer(other["access_token"])).status_code == 200
    assert client.get("/api/me", headers=bearer(user.token)).status_code == 200


def test_failed_client_authentication_with_the_authorization_header_is_401(
    app: Flask, client: FlaskClient
) -> None:
    basic = base64.b64encode(b"no-such-client:secret").decode()
    with served(app) as url:
        response = requests.post(
            f"{url}/oauth/token",
            data={"grant_type": "refresh_token", "refresh_token": "x"},
            headers={"Authorization": f"Basic {basic}"},
            timeout=10,
        )

    assert response.status_code == 401
    assert response.json()["error"] == "invalid_client"
    assert response.headers["WWW-Authenticate"].startswith("Basic ")


def test_failed_client_authentication_without_the_header_stays_400(client: FlaskClient) -> None:
    response = client.post(
        "/oauth/token",
        data={"grant_type": "refresh_token", "refresh_token": "x", "client_id": "nobody"},
    )

    assert response.status_code == 400
    assert response.json["error"] == "invalid_client"
    assert "WWW-Authenticate" not in response.headers


@pytest.mark.parametrize("grant_type", [None, ""], ids=["missing", "empty"])
def test_a_token_request_without_grant_type_is_an_invalid_request(
    client: FlaskClient, grant_type: str | None
) -> None:
    data = {"code": "x", "client_id": "demo-client", "redirect_uri": REDIRECT_URI}
    if grant_type is not None:
        data["grant_type"] = grant_type

    response = client.post("/oauth/token", data=data)

    assert response.status_code == 400
    assert response.json["error"] == "invalid_request"


def test_an_openid_request_without_redirect_uri_is_refused_without_a_redirect(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    log_in(client, user.id, ["pwd"], int(time.time()))
    _, challenge = pkce_pair()

    response = client.get(
        "/oauth/authorize", query_string=authorization_request(challenge, redirect_uri=None)
    )

    assert response.status_code == 400
    assert "Location" not in response.headers
    assert response.json["error"] == "invalid_request"
    assert count(app, OAuth2AuthorizationCode) == 0


def test_an_oauth_request_without_redirect_uri_uses_the_registered_one(
    client: FlaskClient, user: TestUser
) -> None:
    log_in(client, user.id, ["pwd"], int(time.time()))
    _, challenge = pkce_pair()

    get_code(client, challenge, redirect_uri=None, scope="profile", nonce=None)


def issuer_warnings(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [r for r in caplog.records if r.name == "example_app.oauth" and "OAUTH_ISSUER" in r.msg]


@pytest.mark.parametrize(
    ("config", "warned"),
    [
        ({"TESTING": False}, True),
        ({"TESTING": False, "OAUTH_ISSUER": "https://auth.example.org"}, False),
        ({"TESTING": False, "DEBUG": True}, False),
        ({"TESTING": True}, False),
    ],
    ids=["production", "configured", "debug", "testing"],
)
def test_an_issuer_that_follows_the_host_header_is_logged_outside_debug(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, config: dict[str, Any], warned: bool
) -> None:
    caplog.set_level(logging.WARNING, logger="example_app.oauth")

    app = example_app.create_app(
        {"SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/issuer.sqlite", **config},
        instance_path=str(tmp_path),
    )
    with app.app_context():
        db.engine.dispose()

    assert bool(issuer_warnings(caplog)) is warned
