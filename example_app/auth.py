"""The JSON login and two protected resources."""

from __future__ import annotations

from authlib.integrations.flask_oauth2 import current_token
from flask import Blueprint
from flask import Response
from flask import jsonify
from flask import request
from flask.typing import ResponseReturnValue

from flask_ucloud_2fa import InvalidRequest
from flask_ucloud_2fa import TwoFactorError
from flask_ucloud_2fa import error_response
from flask_ucloud_2fa import second_factor_required

from .extensions import require_oauth
from .models import Token
from .models import User
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


@auth.post("/auth/login")
def login() -> ResponseReturnValue:
    """``{"username", "password"}`` -> tokens, or ``{"2fa": challengeId}`` when 2FA is on."""
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not all(
        isinstance(body.get(key), str) for key in ("username", "password")
    ):
        return error_response(InvalidRequest("Send a JSON object with username and password."))
    user = User.authenticate(body["username"], body["password"])
    if user is None:
        return error_response(InvalidCredentials())
    # The first factor passed: the extension decides whether a second one is needed.
    return two_factor.login(user.id)


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
