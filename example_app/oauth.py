"""The OAuth2 authorization server and OpenID Connect provider of the example app.

Authlib's :class:`~authlib.integrations.flask_oauth2.AuthorizationServer` with the
authorization-code grant (PKCE with S256 required), the refresh-token grant and the OpenID
Connect code flow. There is no password grant: every token starts at ``/oauth/authorize``,
which needs a browser session, and the session exists only after every factor of the login
succeeded (see :func:`.session.log_in`). ID tokens and access tokens carry the
``amr`` and ``auth_time`` of that login. Tokens are stored hashed (:mod:`.tokens`), and OAuth
clients never get the scope that manages the second factor (only ``openid`` and ``profile``).

``/oauth/authorize`` never ends a session: asking for a new login (``prompt=login``,
``max_age``) asks, see :mod:`.authorize`, which also answers hostile input to it. Hostile input
to the other routes is a 400 ``invalid_request`` before Authlib or the database see it.

Configuration (all optional):

``OAUTH_ISSUER``
    The issuer identifier, such as ``https://auth.example.org``. Set it in production: without
    it the issuer is the host URL of each request (its ``Host`` header), and ``create_app``
    logs a warning unless the app is in debug or testing mode.
``OAUTH_JWT_KEY_PEM``
    The PEM of the RSA key that signs ID tokens; by default a key made on first use and kept in
    the instance folder (``oauth_jwt_key.pem``).
``OAUTH_DEMO_REDIRECT_URIS``
    The redirect URIs of the registered public client ``demo-client``.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from authlib.integrations.flask_oauth2 import current_token
from authlib.integrations.sqla_oauth2 import create_query_client_func
from authlib.oauth2 import OAuth2Error
from authlib.oauth2 import OAuth2Request
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
from sqlalchemy.exc import IntegrityError
from werkzeug.exceptions import RequestEntityTooLarge

from .authorize import fresh_login_after
from .authorize import openid_without_redirect_uri
from .authorize import prompts
from .authorize import refusal_for_the_client
from .authorize import request_again
from .authorize import unquotable_parameter
from .extensions import db
from .extensions import require_oauth
from .input_checks import input_problem
from .instance import instance_key
from .models import OAuth2AuthorizationCode
from .models import OAuth2Client
from .models import Token
from .models import User
from .models import hash_token
from .session import current_login
from .token_endpoint import Server
from .token_endpoint import missing_grant_type
from .tokens import RefreshTokenGrant
from .tokens import now
from .tokens import revoke_if_code_replayed
from .tokens import save_token
from .ucloud_2fa import two_factor

__all__ = ["OAuth2AuthorizationCode", "OAuth2Client", "init_oauth", "oauth"]

oauth = Blueprint("oauth", __name__)

EXTENSION_KEY = "example_app.oauth"
DEMO_CLIENT_ID = "demo-client"
SCOPES = ["openid", "profile"]
ID_TOKEN_ALGORITHM = "RS256"  # nosec B105 - an algorithm name, not a password

logger = logging.getLogger(__name__)


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
                family_id=hash_token(code),
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
        if item is None:
            revoke_if_code_replayed(code, client.get_client_id())
            return None
        return None if item.is_expired() else item

    def delete_authorization_code(self, authorization_code: OAuth2AuthorizationCode) -> None:
        """Nothing to do: :func:`save_token` deleted it in the token's transaction."""

    def authenticate_user(self, authorization_code: OAuth2AuthorizationCode) -> User:
        return authorization_code.user


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


# -- setup -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OAuthState:
    server: Server
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

    if not app.config["OAUTH_ISSUER"] and not (app.debug or app.testing):
        logger.warning(
            "OAUTH_ISSUER is not set: the issuer of ID tokens and discovery follows each"
            " request's Host header. Set OAUTH_ISSUER to the server's URL in production."
        )
    server = Server()
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
        client = OAuth2Client(client_id=DEMO_CLIENT_ID, client_id_issued_at=now())
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


@oauth.before_request
def _refuse_hostile_input() -> Response | None:
    problem = input_problem() or unquotable_parameter()
    if problem is None:
        return None
    error = InvalidRequestError(problem)
    if request.endpoint == "oauth.authorize":
        error = refusal_for_the_client(_state().server, problem)
    response: Response = _state().server.handle_error_response(None, error)
    return response


@oauth.errorhandler(RequestEntityTooLarge)
def _too_large(error: RequestEntityTooLarge) -> Response:
    refused = InvalidRequestError("The request body is too large.")
    refused.status_code = 413
    response: Response = _state().server.handle_error_response(None, refused)
    return response


@oauth.after_request
def _no_store(response: Response) -> Response:
    # Codes and tokens must not sit in caches; discovery and keys say their own.
    response.headers.setdefault("Cache-Control", "no-store")
    return response


@oauth.route("/oauth/authorize", methods=["GET", "POST"])
def authorize() -> ResponseReturnValue:
    """Approve a request of a (first-party) client for the logged-in user, without a consent
    screen; send a browser without a login, or with one older than the request allows, to the
    login page first (see the module's docstring)."""
    server = _state().server
    login = current_login()
    now = int(two_factor.clock())
    missing = openid_without_redirect_uri()
    if missing is not None:
        return server.handle_error_response(None, missing)
    try:
        grant = server.get_consent_grant(end_user=login.user if login else None)
        fresh_after = fresh_login_after(now, grant.redirect_uri)
        new_login = "login" in prompts()
        if login is not None and not new_login and login.auth_time >= (fresh_after or 0):
            return server.create_authorization_response(grant_user=login.user, grant=grant)
        if "none" in prompts():
            raise LoginRequiredError(redirect_uri=grant.redirect_uri)
    except OAuth2Error as error:
        error.state = request.values.get("state")
        return server.handle_error_response(None, error)
    if fresh_after is None and not new_login:  # no login yet, and none asked for in particular
        return redirect(url_for("pages.login", next=request_again()))
    # Ask for a new login; the session stays until the new one replaces it.
    return redirect(url_for("pages.login", prompt="login", next=request_again(asked_at=now)))


@oauth.post("/oauth/token")
def issue_token() -> Response:
    server = _state().server
    missing = missing_grant_type()
    if missing is not None:
        refused: Response = server.handle_error_response(None, missing)
        return refused
    response: Response = server.create_token_response()
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
