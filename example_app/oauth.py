"""The OAuth2 authorization server and OpenID Connect provider of the example app.

Authlib's :class:`~authlib.integrations.flask_oauth2.AuthorizationServer` with the
authorization-code grant (PKCE with S256 required), the refresh-token grant and the OpenID
Connect code flow. There is no password grant: every token starts at ``/oauth/authorize``,
which needs a browser session, and the session exists only after every factor of the login
succeeded (see :func:`.session.log_in`). ID tokens and access tokens carry the
``amr`` and ``auth_time`` of that login.

Configuration (all optional):

``OAUTH_ISSUER``
    The issuer identifier; by default the host URL of the request, without a trailing slash.
``OAUTH_JWT_KEY_PEM``
    The PEM of the RSA key that signs ID tokens; by default a key made on first use and kept in
    the instance folder (``oauth_jwt_key.pem``).
``OAUTH_DEMO_REDIRECT_URIS``
    The redirect URIs of the registered public client ``demo-client``.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.integrations.flask_oauth2 import current_token
from authlib.integrations.sqla_oauth2 import OAuth2AuthorizationCodeMixin
from authlib.integrations.sqla_oauth2 import OAuth2ClientMixin
from authlib.integrations.sqla_oauth2 import create_query_client_func
from authlib.oauth2 import OAuth2Error
from authlib.oauth2 import OAuth2Request
from authlib.oauth2.rfc6749 import InvalidGrantError
from authlib.oauth2.rfc6749 import InvalidRequestError
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oidc.core import UserInfo
from authlib.oidc.core.errors import LoginRequiredError
from authlib.oidc.core.grants import OpenIDCode
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from flask import Blueprint
from flask import Flask
from flask import Response
from flask import current_app
from flask import jsonify
from flask import redirect
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue
from joserfc.jwk import RSAKey
from sqlalchemy import ForeignKey
from sqlalchemy import String
from sqlalchemy import delete
from sqlalchemy import update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship

from .extensions import db
from .extensions import require_oauth
from .instance import instance_key
from .models import Token
from .models import User
from .session import BrowserLogin
from .session import current_login
from .session import log_out

oauth = Blueprint("oauth", __name__)

EXTENSION_KEY = "example_app.oauth"
DEMO_CLIENT_ID = "demo-client"
SCOPES = ["openid", "profile"]
ID_TOKEN_ALGORITHM = "RS256"  # nosec B105 - an algorithm name, not a password
#: Seconds an authorization code can be exchanged; RFC 6749 recommends at most ten minutes.
CODE_LIFETIME = 300


# -- models ------------------------------------------------------------------------------------


class OAuth2Client(db.Model, OAuth2ClientMixin):  # type: ignore[name-defined,misc]
    __tablename__ = "oauth2_client"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Unique, unlike the mixin's: workers that register the demo client at the same moment
    # must not make two of it.
    client_id: Mapped[str] = mapped_column(String(48), unique=True)


class OAuth2AuthorizationCode(db.Model, OAuth2AuthorizationCodeMixin):  # type: ignore[name-defined,misc]
    """A code waiting to be exchanged; ``amr`` and ``auth_time`` are those of the browser
    login that approved it, not the time the code was made (that is ``issued_at``)."""

    __tablename__ = "oauth2_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    user: Mapped[User] = relationship()
    issued_at: Mapped[int] = mapped_column(default=lambda: int(time.time()))

    def is_expired(self) -> bool:
        # The mixin counts from auth_time, which here is the login, often long before.
        return self.issued_at + CODE_LIFETIME < time.time()


# -- grants ------------------------------------------------------------------------------------


class AuthorizationCodeGrant(grants.AuthorizationCodeGrant):
    """The code grant for public clients: PKCE instead of a client secret."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        login = current_login()
        if login is None:  # the view checked; a session cleared since then is refused
            raise InvalidRequestError("The login session ended.")
        data = request.payload.data
        db.session.add(
            OAuth2AuthorizationCode(
                code=code,
                client_id=request.client.get_client_id(),
                redirect_uri=request.payload.redirect_uri or "",
                response_type=request.payload.response_type,
                scope=request.scope,
                nonce=data.get("nonce"),
                code_challenge=data.get("code_challenge"),
                code_challenge_method=data.get("code_challenge_method"),
                user_id=login.user.id,
                amr=" ".join(login.methods),
                auth_time=login.auth_time,
            )
        )
        db.session.commit()

    def query_authorization_code(
        self, code: str, client: OAuth2Client
    ) -> OAuth2AuthorizationCode | None:
        item: OAuth2AuthorizationCode | None = db.session.execute(
            db.select(OAuth2AuthorizationCode).filter_by(
                code=code, client_id=client.get_client_id()
            )
        ).scalar_one_or_none()
        if item is None or item.is_expired():
            return None
        return item

    def delete_authorization_code(self, authorization_code: OAuth2AuthorizationCode) -> None:
        """Nothing to do: :func:`save_token` deleted it in the token's transaction."""

    def authenticate_user(self, authorization_code: OAuth2AuthorizationCode) -> User:
        return authorization_code.user


class RefreshTokenGrant(grants.RefreshTokenGrant):
    """A refresh token gives a new access and refresh token, with the ``amr`` and
    ``auth_time`` of the original login; the old pair stops working."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        token: Token | None = db.session.execute(
            db.select(Token).filter_by(refresh_token=refresh_token)
        ).scalar_one_or_none()
        if token is None or token.refresh_token_revoked_at:
            return None
        return token

    def authenticate_user(self, refresh_token: Token) -> User:
        return refresh_token.user

    def revoke_old_credential(self, refresh_token: Token) -> None:
        """Nothing to do: :func:`save_token` revoked it in the new token's transaction."""


class PKCE(CodeChallenge):
    """PKCE as OAuth 2.1 has it: every authorization request carries an S256 challenge."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    DEFAULT_CODE_CHALLENGE_METHOD = "S256"

    def validate_code_challenge(self, grant: Any, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge': PKCE (S256) is required.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("'code_challenge_method' must be 'S256'.")
        super().validate_code_challenge(grant, redirect_uri)


class OpenIDConnect(OpenIDCode):
    """ID tokens signed with the instance's RSA key; ``amr``, ``auth_time`` and ``nonce``
    come from the authorization code."""

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        found = db.session.execute(
            db.select(OAuth2AuthorizationCode.id)
            .filter_by(client_id=request.payload.client_id, nonce=nonce)
            .limit(1)
        ).first()
        return found is not None

    def resolve_client_private_key(self, client: OAuth2Client) -> RSAKey:
        return signing_key()

    def get_client_algorithm(self, client: OAuth2Client) -> str:
        return ID_TOKEN_ALGORITHM

    def get_encode_header(self, client: OAuth2Client) -> dict[str, Any]:
        return {"alg": ID_TOKEN_ALGORITHM, "kid": signing_key().kid}

    def get_client_claims(self, client: OAuth2Client) -> dict[str, Any]:
        return {"iss": issuer(), "aud": [client.get_client_id()]}

    def generate_user_info(self, user: User, scope: str) -> UserInfo:
        return user_info(user, scope)


def user_info(user: User, scope: str) -> UserInfo:
    """The claims about ``user`` that ``scope`` allows."""
    return UserInfo(sub=str(user.id), preferred_username=user.username).filter(scope)


# -- tokens ------------------------------------------------------------------------------------


def save_token(token: dict[str, Any], request: OAuth2Request) -> None:
    """Store a new token and, in the same transaction, use up what it was issued for: the
    authorization code is deleted, the refresh token revoked.

    :raises InvalidGrantError: a concurrent request used it up first; the database decides,
        so of two workers exchanging one code at the same moment only one succeeds.
    """
    now = int(time.time())
    code: OAuth2AuthorizationCode | None = request.authorization_code
    old: Token | None = request.refresh_token
    if code is not None:
        used = db.session.execute(
            delete(OAuth2AuthorizationCode)
            .where(OAuth2AuthorizationCode.id == code.id)
            .execution_options(synchronize_session=False)
        )
        # Kept as read: the ID token is made from it after this commit.
        db.session.expunge(code)
        source: OAuth2AuthorizationCode | Token = code
    elif old is not None:
        used = db.session.execute(
            update(Token)
            .where(Token.id == old.id, Token.refresh_token_revoked_at == 0)
            .values(refresh_token_revoked_at=now)
            .execution_options(synchronize_session=False)
        )
        source = old
    else:
        raise RuntimeError("save_token knows the authorization code and refresh token grants.")
    if used.rowcount != 1:
        db.session.rollback()
        raise InvalidGrantError("The grant was used already.")
    db.session.add(
        Token(
            client_id=request.client.get_client_id(),
            user_id=request.user.id,
            issued_at=now,
            amr=source.amr,
            auth_time=source.auth_time,
            **token,
        )
    )
    db.session.commit()


# -- setup -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OAuthState:
    server: AuthorizationServer
    key: RSAKey


def init_oauth(app: Flask) -> None:
    """Set up the authorization server of ``app`` and its signing key; the demo client is a
    row, made by :func:`register_demo_client` once the tables exist."""
    app.config.setdefault("OAUTH_ISSUER", None)
    app.config.setdefault("OAUTH_JWT_KEY_PEM", None)
    app.config.setdefault("OAUTH_DEMO_REDIRECT_URIS", ["http://127.0.0.1:8765/callback"])
    lifetime = app.config["ACCESS_TOKEN_LIFETIME"]
    app.config.setdefault(
        "OAUTH2_TOKEN_EXPIRES_IN", {"authorization_code": lifetime, "refresh_token": lifetime}
    )
    app.config.setdefault("OAUTH2_REFRESH_TOKEN_GENERATOR", True)
    app.config.setdefault("OAUTH2_SCOPES_SUPPORTED", SCOPES)

    server = AuthorizationServer()
    server.init_app(app, create_query_client_func(db.session, OAuth2Client), save_token)
    server.register_grant(AuthorizationCodeGrant, [PKCE(required=True), OpenIDConnect()])
    server.register_grant(RefreshTokenGrant)
    app.extensions[EXTENSION_KEY] = OAuthState(server, _load_signing_key(app))


def register_demo_client(redirect_uris: list[str]) -> None:
    """Create the public client ``demo-client``, or bring its redirect URIs up to date."""
    metadata = {
        "client_name": "Demo client",
        "redirect_uris": list(redirect_uris),
        "grant_types": ["authorization_code", "refresh_token"],
        "response_types": ["code"],
        "scope": " ".join(SCOPES),
        # A public client: it proves itself with PKCE, not with a secret.
        "token_endpoint_auth_method": "none",  # nosec B105 - a method name, not a password
    }
    client = db.session.execute(
        db.select(OAuth2Client).filter_by(client_id=DEMO_CLIENT_ID)
    ).scalar_one_or_none()
    if client is None:
        client = OAuth2Client(client_id=DEMO_CLIENT_ID, client_id_issued_at=int(time.time()))
        db.session.add(client)
    if client.client_metadata != metadata:
        client.set_client_metadata(metadata)
    try:
        db.session.commit()
    except IntegrityError:
        db.session.rollback()  # another worker registered it at the same moment


def _load_signing_key(app: Flask) -> RSAKey:
    pem = app.config["OAUTH_JWT_KEY_PEM"] or instance_key(app, "oauth_jwt_key.pem", _new_pem)
    key = RSAKey.import_key(pem, {"use": "sig", "alg": ID_TOKEN_ALGORITHM})
    if not key.is_private:
        raise ValueError("OAUTH_JWT_KEY_PEM must be an RSA private key, not a public key.")
    key.ensure_kid()
    return key


def _new_pem() -> str:
    private_key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return private_key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()


def _state() -> OAuthState:
    state: OAuthState = current_app.extensions[EXTENSION_KEY]
    return state


def signing_key() -> RSAKey:
    """The private key that signs the current app's ID tokens."""
    return _state().key


def issuer() -> str:
    """The issuer identifier: ``OAUTH_ISSUER`` or this host's URL."""
    configured: str | None = current_app.config["OAUTH_ISSUER"]
    return (configured or request.host_url).rstrip("/")


# -- routes ------------------------------------------------------------------------------------


@oauth.route("/oauth/authorize", methods=["GET", "POST"])
def authorize() -> ResponseReturnValue:
    """Approve a request of a (first-party) client for the logged-in user, without a consent
    screen; send a browser without a login to the login page first."""
    server = _state().server
    login = current_login()
    try:
        grant = server.get_consent_grant(end_user=login.user if login else None)
        if login is not None and grant.prompt != "login" and not _too_old(login):
            return server.create_authorization_response(grant_user=login.user, grant=grant)
        if "none" in request.values.get("prompt", "").split():
            raise LoginRequiredError(redirect_uri=grant.redirect_uri)
    except OAuth2Error as error:
        error.state = request.values.get("state")
        return server.handle_error_response(None, error)
    # The login page skips its form for a logged-in browser: forget the login to ask again.
    log_out()
    return redirect(url_for("pages.login", next=_authorize_again()))


def _too_old(login: BrowserLogin) -> bool:
    """Whether the login is older than the request's OpenID Connect ``max_age``."""
    max_age = request.values.get("max_age", "")
    return max_age.isdigit() and time.time() - login.auth_time > int(max_age)


def _authorize_again() -> str:
    """This authorization request as a GET, without what asked for a new login, so coming
    back after it does not ask again."""
    params = [
        (key, value)
        for key, value in request.values.items(multi=True)
        if key not in ("prompt", "max_age")
    ]
    return f"{url_for('oauth.authorize')}?{urlencode(params)}"


@oauth.post("/oauth/token")
def issue_token() -> Response:
    response: Response = _state().server.create_token_response()
    return response


@oauth.route("/oauth/userinfo", methods=["GET", "POST"])
@require_oauth("openid")
def userinfo() -> ResponseReturnValue:
    token: Token = current_token
    return jsonify(user_info(token.user, token.scope))


@oauth.get("/.well-known/openid-configuration")
def openid_configuration() -> ResponseReturnValue:
    """OpenID Connect Discovery 1.0 metadata."""
    metadata = {
        "issuer": issuer(),
        "authorization_endpoint": url_for("oauth.authorize", _external=True),
        "token_endpoint": url_for("oauth.issue_token", _external=True),
        "userinfo_endpoint": url_for("oauth.userinfo", _external=True),
        "jwks_uri": url_for("oauth.jwks", _external=True),
        "scopes_supported": SCOPES,
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code", "refresh_token"],
        "subject_types_supported": ["public"],
        "id_token_signing_alg_values_supported": [ID_TOKEN_ALGORITHM],
        "token_endpoint_auth_methods_supported": ["none"],
        "code_challenge_methods_supported": ["S256"],
        "claims_supported": [
            "iss",
            "sub",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "amr",
            "at_hash",
            "preferred_username",
        ],
    }
    return jsonify(metadata), 200, {"Cache-Control": "public, max-age=3600"}


@oauth.get("/oauth/jwks")
def jwks() -> ResponseReturnValue:
    """The public key that verifies ID tokens, with its ``kid``."""
    public = signing_key().as_dict(private=False)
    return jsonify({"keys": [public]}), 200, {"Cache-Control": "public, max-age=3600"}
