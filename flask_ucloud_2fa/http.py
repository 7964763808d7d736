"""The JSON routes, and the one renderer of the extension's errors: HTTP in, a facade call,
JSON out. No rules live here."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from authlib.oauth2 import OAuth2Error
from flask import Blueprint
from flask import Response
from flask import current_app
from flask import jsonify
from flask import request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from .catalogues import N_
from .config import app_state
from .data import SetupConfirmed
from .errors import DatabaseUnavailable
from .errors import InsufficientUserAuthentication
from .errors import InvalidCode
from .errors import InvalidRequest
from .errors import TokenRefused
from .errors import TooManyAttempts
from .errors import TwoFactorError
from .i18n import gettext
from .i18n import localized_why
from .i18n import ngettext
from .i18n import page_language
from .openapi import openapi_document
from .proofs import is_challenge_id
from .proofs import proof_from_json

if TYPE_CHECKING:
    from .extension import TwoFactor

blueprint = Blueprint("ucloud_2fa", __name__, template_folder="templates")
# The templates' translations, under names of their own: an app's ``_`` keeps translating the
# app's messages, also in its own templates around the extension's (see .i18n).
blueprint.add_app_template_global(gettext, "_2fa")
blueprint.add_app_template_global(ngettext, "_2fa_plural")
blueprint.add_app_template_global(page_language, "_2fa_language")

#: ``errorCode`` of Werkzeug's errors, by status: fixed, whatever their reason phrases say.
HTTP_ERROR_CODES = {
    400: "BAD_REQUEST",
    401: "UNAUTHORIZED",
    403: "FORBIDDEN",
    404: "NOT_FOUND",
    405: "METHOD_NOT_ALLOWED",
    406: "NOT_ACCEPTABLE",
    408: "REQUEST_TIMEOUT",
    409: "CONFLICT",
    411: "LENGTH_REQUIRED",
    413: "REQUEST_ENTITY_TOO_LARGE",
    414: "REQUEST_URI_TOO_LARGE",
    415: "UNSUPPORTED_MEDIA_TYPE",
    429: "TOO_MANY_REQUESTS",
    431: "REQUEST_HEADER_FIELDS_TOO_LARGE",
    500: "INTERNAL_SERVER_ERROR",
    501: "NOT_IMPLEMENTED",
    502: "BAD_GATEWAY",
    503: "SERVICE_UNAVAILABLE",
    504: "GATEWAY_TIMEOUT",
}

#: ``errorCode`` of the resource protector's (Authlib's) errors, by their OAuth ``error``.
TOKEN_ERROR_CODES = {
    error: error.upper()
    for error in (
        "missing_authorization",
        "unsupported_token_type",
        "invalid_token",
        "insufficient_scope",
        "invalid_request",
    )
}


# -- the renderer ------------------------------------------------------------------------------


def error_response(error: TwoFactorError) -> Response:
    """``error`` as UCloud answers errors: ``{"statusCode", "why", "errorCode"}``, with
    ``remainingAttempts``, ``retryAfter`` and ``clockDriftSeconds`` where they apply, its
    status, and the standard headers (``Retry-After``, ``WWW-Authenticate``).

    The extension registers it for :class:`TwoFactorError` on the app, so errors raised in the
    app's own views (the login step, step-up checks) are answered in this shape too; an app can
    raise its own subclasses, or call it to answer in the same shape.

    ``why`` is in the request's language (:func:`~flask_ucloud_2fa.localized_why`);
    ``errorCode`` never changes with it, and ``WWW-Authenticate`` stays English (RFC 6750
    allows only ASCII there).
    """
    body: dict[str, Any] = {
        "statusCode": error.status_code,
        "why": localized_why(error),
        "errorCode": error.error_code,
    }
    headers: dict[str, str] = {}
    if isinstance(error, InvalidCode) and error.remaining_attempts is not None:
        body["remainingAttempts"] = error.remaining_attempts
    if isinstance(error, InvalidCode) and error.clock_drift_seconds is not None:
        body["clockDriftSeconds"] = error.clock_drift_seconds
    retry_after = getattr(error, "retry_after", None)
    waits = (InvalidCode, TooManyAttempts, DatabaseUnavailable)
    if isinstance(error, waits) and retry_after is not None:
        body["retryAfter"] = retry_after
        headers["Retry-After"] = str(retry_after)
    if isinstance(error, TokenRefused) and error.www_authenticate:
        headers["WWW-Authenticate"] = error.www_authenticate
    if isinstance(error, InsufficientUserAuthentication):
        headers["WWW-Authenticate"] = (
            f'Bearer error="insufficient_user_authentication", error_description="{error.why}"'
        )
    response = jsonify(body)
    response.status_code = error.status_code
    response.headers.update(headers)
    return response


def http_error_response(error: HTTPException) -> Response:
    """One of Werkzeug's errors (a 405 with its ``Allow``, a 413, ...) in the same shape."""
    status = error.code or 500
    rendered = TwoFactorError(error.description or error.name)
    rendered.status_code = status
    rendered.error_code = HTTP_ERROR_CODES.get(status, f"HTTP_{status}")
    response = error_response(rendered)
    response.headers.update(
        (name, value) for name, value in error.get_headers() if name.lower() != "content-type"
    )
    return response


def acquire_token(resource_protector: Any, scopes: list[str] | None) -> Any:
    """The request's bearer token, validated by the integrator's resource protector.

    :raises TokenRefused: no token, or one the protector refused; with the protector's status,
        error and ``WWW-Authenticate`` challenge.
    """
    try:
        return resource_protector.acquire_token(scopes)
    except OAuth2Error as error:
        challenge = dict(error.get_headers()).get("WWW-Authenticate")
        raise TokenRefused(
            error.description or None,
            status_code=error.status_code,
            error_code=TOKEN_ERROR_CODES.get(str(error.error), TokenRefused.error_code),
            www_authenticate=challenge,
        ) from None


# -- the routes --------------------------------------------------------------------------------


def _two_factor() -> TwoFactor:
    extension: TwoFactor = app_state().extension
    return extension


@blueprint.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    """The OpenAPI 3.1 document of these routes, under this app's prefix."""
    return jsonify(openapi_document(app_state().settings.url_prefix))


@blueprint.get("/status")
def status() -> ResponseReturnValue:
    """``GET /auth/2fa/status``: ``{"connected": bool}`` for the token's user."""
    two_factor = _two_factor()
    return jsonify({"connected": two_factor.is_connected(token=two_factor.request_token())})


@blueprint.post("")
def create_credentials() -> ResponseReturnValue:
    """``POST /auth/2fa``: a new pending secret, its QR code and the challenge confirming it."""
    two_factor = _two_factor()
    token = two_factor.request_token(manage=True)
    created = two_factor.start_setup(
        two_factor.token_user_id(token), two_factor.token_account_name(token)
    )
    return jsonify(
        {
            "otpAuthUri": created.otp_auth_uri,
            "qrCodeB64Data": created.qr_code_b64_data,
            "secret": created.secret,
            "challengeId": created.challenge_id,
        }
    )


@blueprint.post("/challenge")
def answer_challenge() -> ResponseReturnValue:
    """``POST /auth/2fa/challenge``: answer a setup challenge (with a token) or a login one
    (with a TOTP ``verificationCode`` or a ``recoveryCode``)."""
    body = json_object()
    challenge_id = body.get("challengeId")
    if not is_challenge_id(challenge_id):
        raise InvalidRequest(N_("challengeId must be the challenge id string you were given."))
    result = _two_factor().answer_challenge(challenge_id, proof_from_json(body))
    if isinstance(result, SetupConfirmed):
        # UCloud answers {}; the first recovery codes only when the app asks for them.
        codes = result.recovery_codes
        return jsonify({"recoveryCodes": codes} if codes else {})
    return current_app.make_response(result)


@blueprint.post("/recovery-codes")
def regenerate_recovery_codes() -> ResponseReturnValue:
    """``POST /auth/2fa/recovery-codes``: new recovery codes, shown once, for a second-factor
    proof (``verificationCode`` or ``recoveryCode``); the earlier codes stop working."""
    two_factor = _two_factor()
    user_id = two_factor.token_user_id(_proven_token(two_factor))
    codes = two_factor.regenerate_recovery_codes(user_id, proof_from_json(json_object()))
    return jsonify({"recoveryCodes": codes})


@blueprint.post("/disable")
def disable() -> ResponseReturnValue:
    """``POST /auth/2fa/disable``: remove the user's 2FA, for a second-factor proof."""
    two_factor = _two_factor()
    user_id = two_factor.token_user_id(_proven_token(two_factor))
    two_factor.disable(user_id, proof_from_json(json_object()))
    return jsonify({})


def _proven_token(two_factor: TwoFactor) -> Any:
    """The request's token, meant for managing the second factor and, for a user with 2FA,
    from a login that used it: who can turn it off or see new recovery codes must have passed
    it, not just the password. Checked before the proof, so a refusal counts no failure.

    :raises TokenRefused: no token, or not one for managing the second factor.
    :raises InsufficientUserAuthentication: a login without the second factor the user has.
    """
    token = two_factor.request_token(manage=True)
    two_factor.check_second_factor(token)
    return token


def json_object() -> dict[str, Any]:
    """The request body as a JSON object, whatever its Content-Type (UCloud's own curl
    examples send a malformed one).

    :raises InvalidRequest: the body is not a JSON object.
    """
    bound_body()
    try:
        body = request.get_json(force=True, silent=True)
    except RecursionError:  # nested deeper than the JSON parser goes
        body = None
    if not isinstance(body, dict):
        raise InvalidRequest(N_("The body must be a JSON object."))
    return body


#: The largest body the extension's routes read: their bodies are a few hundred bytes.
MAX_BODY_BYTES = 16 * 1024


def bound_body() -> None:
    """Before reading the body: Werkzeug answers a larger one with 413, unread (as the app's
    own ``MAX_CONTENT_LENGTH`` would, which an app may leave unset)."""
    request.max_content_length = MAX_BODY_BYTES


@blueprint.after_request
def _security_headers(response: Response) -> Response:
    # Secrets, QR codes and tokens must not sit in caches; the challenge page is not framed
    # (clickjacking). An app's own after_request runs later and may set a policy of its own.
    headers = response.headers
    headers["Cache-Control"] = "no-store"
    headers["X-Frame-Options"] = "DENY"
    headers["Content-Security-Policy"] = "frame-ancestors 'none'"
    return response


@blueprint.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    # Werkzeug's errors inside the blueprint (413, ...) in the same JSON shape as ours.
    return http_error_response(error)


def routing_error(prefix: str) -> Response | None:
    """Before any view: a wrong method (``GET /auth/2fa/challenge``) or an unknown path under
    ``prefix``, in UCloud's JSON shape; ``None`` for every other request.

    Such a request fails in routing, before a blueprint is chosen, so no handler of the
    blueprint sees it; the app's own handlers keep every other path.
    """
    error = request.routing_exception
    if not isinstance(error, HTTPException) or error.code not in (404, 405):
        return None
    path = request.path
    if path == prefix or path.startswith(prefix + "/"):
        return http_error_response(error)
    return None
