"""The JSON login, its refresh, and two protected resources.

UCloud's web client compatibility: its password login is ``POST /auth/login?service=web``
with a ``multipart/form-data`` body (``service``, ``username``, ``password``) and
``Accept: application/json``, so the login takes JSON, URL-encoded and multipart bodies alike
and answers JSON. A completed login carries ``csrfToken`` beside the tokens: UCloud's client
keeps it with the access token (``setTokens(accessToken, csrfToken)``) and sends it as
``X-CSRFToken`` to ``POST /auth/refresh/web``. Here it is a random value bound to the token
family of the login (its hash is on the token row), and the refresh call wants it together with
the refresh token (``Authorization: Bearer <refreshToken>``; UCloud keeps that one in a cookie,
this app sets none). Because no answer of this route sets a cookie, a login form posted by
another site logs no browser in: there is no login CSRF to defend against. A form posted by a
browser that prefers HTML is refused (406) rather than sent to the browser challenge page.
"""

from __future__ import annotations

import hmac

from authlib.integrations.flask_oauth2 import current_token
from authlib.oauth2.rfc6749 import InvalidGrantError
from flask import Blueprint
from flask import Response
from flask import current_app
from flask import jsonify
from flask import request
from flask.typing import ResponseReturnValue

from flask_ucloud_2fa import InvalidRequest
from flask_ucloud_2fa import TwoFactorError
from flask_ucloud_2fa import error_response
from flask_ucloud_2fa import second_factor_required

from .extensions import require_oauth
from .models import FIRST_PARTY_CLIENT_ID
from .models import Token
from .models import hash_token
from .passwords import authenticate
from .tokens import by_refresh_token
from .tokens import rotate
from .ucloud_2fa import token_answer
from .ucloud_2fa import two_factor

auth = Blueprint("auth", __name__)


@auth.after_request
def _no_store(response: Response) -> Response:
    # Tokens, challenge ids and who the user is must not sit in caches.
    response.headers["Cache-Control"] = "no-store"
    return response


class InvalidCredentials(TwoFactorError):
    """The app's own error, answered in UCloud's shape like the extension's."""

    status_code = 401
    error_code = "INVALID_CREDENTIALS"
    why = "Incorrect username or password."


class NotAcceptable(TwoFactorError):
    status_code = 406
    error_code = "NOT_ACCEPTABLE"
    why = "This route answers JSON only: send Accept: application/json."


class InvalidRefreshToken(TwoFactorError):
    status_code = 401
    error_code = "INVALID_REFRESH_TOKEN"
    why = "Send a valid refresh token as Authorization: Bearer, and its X-CSRFToken."


#: The bodies of an HTML form; UCloud's web client sends multipart.
FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")
CREDENTIALS = ("username", "password")


def _credentials() -> tuple[str, str] | None:
    """The username and password of a JSON, URL-encoded or multipart body, else ``None``."""
    if request.mimetype in FORM_TYPES:
        fields = [request.form.getlist(key) for key in CREDENTIALS]
        if not all(len(values) == 1 for values in fields):
            return None
        return fields[0][0], fields[1][0]
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str) for k in CREDENTIALS):
        return None
    return body["username"], body["password"]


@auth.post("/auth/login")
def login() -> ResponseReturnValue:
    """``username`` and ``password`` (JSON or form fields; ``service`` is accepted and
    ignored) -> tokens, or ``{"2fa": challengeId}`` when 2FA is on."""
    is_form = request.mimetype in FORM_TYPES
    if is_form and _prefers_html():
        return error_response(NotAcceptable())
    credentials = _credentials()
    if credentials is None:
        why = "Send username and password, as a JSON object or form fields."
        return error_response(InvalidRequest(why))
    user_id = authenticate(*credentials)  # TooManyAttempts answers 429 with Retry-After
    if user_id is None:
        return error_response(InvalidCredentials())
    # The first factor passed: the extension decides whether a second one is needed.
    return two_factor.login(user_id)


def _prefers_html() -> bool:
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


@auth.post("/auth/refresh/web")
def refresh() -> ResponseReturnValue:
    """A login's refresh token (``Authorization: Bearer``) and its ``X-CSRFToken`` -> a new
    access, refresh and CSRF token in the same family; the old ones stop working. A refresh
    token used before revokes its whole family (:mod:`.tokens`)."""
    auth_header = request.authorization
    csrf_token = request.headers.get("X-CSRFToken", "")
    if auth_header is None or auth_header.type != "bearer" or not auth_header.token:
        return error_response(InvalidRefreshToken())
    token = by_refresh_token(auth_header.token)
    if token is None or token.client_id != FIRST_PARTY_CLIENT_ID or token.csrf_token is None:
        return error_response(InvalidRefreshToken())
    if not hmac.compare_digest(token.csrf_token, hash_token(csrf_token)):
        return error_response(InvalidRefreshToken())
    lifetime: int = current_app.config["ACCESS_TOKEN_LIFETIME"]
    try:
        new = rotate(token, lifetime)
    except InvalidGrantError:
        return error_response(InvalidRefreshToken())
    return token_answer(new, lifetime)


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
@second_factor_required
def security() -> ResponseReturnValue:
    """A sensitive resource: users with 2FA need a token from a login that used it."""
    token: Token = current_token
    return jsonify({"username": token.user.username, "secondFactor": "otp" in token.amr.split()})
