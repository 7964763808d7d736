"""The login route, the completion hook that issues tokens, and a protected resource."""

from __future__ import annotations

import secrets
import time
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from authlib.integrations.flask_oauth2 import current_token
from flask import Blueprint
from flask import current_app
from flask import jsonify
from flask import redirect
from flask import request
from flask import session
from flask import url_for
from flask.typing import ResponseReturnValue
from werkzeug.security import generate_password_hash

from flask_ucloud_2fa import CompletedLogin

from . import db
from . import require_oauth
from . import two_factor
from .models import Token
from .models import User

auth = Blueprint("auth", __name__)

#: Longer ``next`` values are not kept: a login URL has no need for them.
MAX_NEXT_LENGTH = 2048

# Checked against when the user does not exist, so both failures take the same time.
_DUMMY_HASH = generate_password_hash(secrets.token_urlsafe())


@auth.post("/auth/login")
def login() -> ResponseReturnValue:
    """``{"username", "password"}`` -> tokens, or ``{"2fa": challengeId}`` when 2FA is on."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not all(
        isinstance(body.get(key), str) for key in ("username", "password")
    ):
        return _error(400, "BAD_REQUEST", "Send a JSON object with username and password.")
    user = db.session.execute(
        db.select(User).filter_by(username=body["username"])
    ).scalar_one_or_none()
    if user is None:
        User(password_hash=_DUMMY_HASH).check_password(body["password"])
        return _error(401, "INVALID_CREDENTIALS", "Incorrect username or password.")
    if not user.check_password(body["password"]):
        return _error(401, "INVALID_CREDENTIALS", "Incorrect username or password.")
    # The first factor passed: the extension decides whether a second one is needed.
    return two_factor.login(user.id)


@two_factor.login_completed
def finish_login(login: CompletedLogin) -> ResponseReturnValue:
    """Finish a login, the only place the example app authenticates anyone: a browser login
    (from the login page) gets a session, an API login gets bearer tokens."""
    if login.state.get("browser"):
        session.clear()
        session["user_id"] = int(login.user_id)
        session["amr"] = login.methods
        session["auth_time"] = login.auth_time
        return redirect(safe_next(login.state.get("next")))
    return jsonify(issue_tokens(int(login.user_id), login.methods, login.auth_time))


def issue_tokens(user_id: int, methods: list[str], auth_time: int) -> dict[str, object]:
    """A new access and refresh token for ``user_id``, in the UCloud-style JSON shape.

    Added to the session, not committed: the extension commits it with the spent challenge.
    """
    lifetime = current_app.config["ACCESS_TOKEN_LIFETIME"]
    token = Token(
        user_id=user_id,
        client_id="example-app",
        token_type="Bearer",  # nosec B106 - a token type, not a password
        access_token=secrets.token_urlsafe(32),
        refresh_token=secrets.token_urlsafe(48),
        scope="",
        issued_at=int(time.time()),
        expires_in=lifetime,
        amr=" ".join(methods),
        auth_time=auth_time,
    )
    db.session.add(token)
    return {
        "accessToken": token.access_token,
        "refreshToken": token.refresh_token,
        "expiresAt": (token.issued_at + lifetime) * 1000,
    }


def safe_next(target: object) -> str:
    """``target`` if it is a path on this site, else the settings page: no open redirects."""
    return local_path(target) or url_for("pages.settings")


def local_path(target: object) -> str | None:
    """``target`` if it is a path on this site that every browser reads the same way, else
    ``None``.

    Browsers drop tabs and newlines from URLs, so ``"/\\t/evil.example"`` is
    ``"//evil.example"`` to them: control characters and backslashes are refused. This site's
    own absolute URL (a view passed ``request.url``) is cut down to its path.
    """
    if not isinstance(target, str) or not 0 < len(target) <= MAX_NEXT_LENGTH:
        return None
    if any(char < " " or char in "\x7f\\" for char in target):
        return None
    parts = urlsplit(target)
    if parts.scheme in ("http", "https") and parts.netloc == request.host:
        target = urlunsplit(("", "", parts.path, parts.query, parts.fragment))
    elif parts.scheme or parts.netloc:
        return None
    if not target.startswith("/") or target.startswith("//"):
        return None
    return target


@two_factor.account_name_loader
def account_name(token: Token) -> str:
    """The name authenticator apps show next to the issuer."""
    return token.user.username


@auth.get("/api/me")
@require_oauth()
def me() -> ResponseReturnValue:
    """A protected resource: who the token belongs to and how they logged in."""
    token: Token = current_token
    return jsonify(
        {
            "username": token.user.username,
            "amr": token.amr.split(),
            "authTime": token.auth_time,
        }
    )


@auth.get("/api/me/security")
@require_oauth()
@two_factor.second_factor_required
def security() -> ResponseReturnValue:
    """A sensitive resource: users with 2FA need a token from a login that used it."""
    token: Token = current_token
    return jsonify({"username": token.user.username, "secondFactor": "otp" in token.amr.split()})


def _error(status: int, error_code: str, why: str) -> ResponseReturnValue:
    return jsonify({"statusCode": status, "why": why, "errorCode": error_code}), status
