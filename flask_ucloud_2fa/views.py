"""The blueprint: HTTP in, a service call, JSON out. No rules live here."""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import jsonify
from flask import request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from . import totp
from .challenges import Proof
from .errors import BadRequest
from .errors import TokenRefused
from .errors import TwoFactorError
from .errors import error_response
from .extension import EXTENSION_KEY
from .extension import TwoFactor
from .openapi import openapi_document
from .recovery import normalize_recovery_code

blueprint = Blueprint("ucloud_2fa", __name__)

#: Longer than any challenge id the extension makes (43 characters); bounds the work per request.
MAX_CHALLENGE_ID_LENGTH = 128


def _two_factor() -> TwoFactor:
    extension: TwoFactor = current_app.extensions[EXTENSION_KEY]
    return extension


@blueprint.get("/openapi.json")
def openapi() -> ResponseReturnValue:
    """The OpenAPI 3.1 document of these routes, under this app's prefix."""
    return jsonify(openapi_document(_two_factor().settings.url_prefix))


@blueprint.get("/status")
def status() -> ResponseReturnValue:
    """``GET /auth/2fa/status``: ``{"connected": bool}`` for the token's user."""
    two_factor = _two_factor()
    user_id = two_factor.user_id(two_factor.acquire_token())
    return jsonify({"connected": two_factor.service().is_connected(user_id)})


@blueprint.post("")
def create_credentials() -> ResponseReturnValue:
    """``POST /auth/2fa``: a new pending secret, its QR code and the challenge confirming it."""
    two_factor = _two_factor()
    token = two_factor.acquire_token()
    created = two_factor.service().create_credentials(
        two_factor.user_id(token), two_factor.account_name(token)
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
    body = _json_object()
    challenge_id = body.get("challengeId")
    if not isinstance(challenge_id, str) or not 0 < len(challenge_id) <= MAX_CHALLENGE_ID_LENGTH:
        raise BadRequest("challengeId must be the challenge id string you were given.")
    proof = _parse_proof(body)
    two_factor = _two_factor()
    token_user_id: str | None = None
    missing_token: TokenRefused | None = None
    try:
        token_user_id = two_factor.user_id(two_factor.acquire_token())
    except TokenRefused as refused:
        if not refused.missing:
            raise
        missing_token = refused
    result = two_factor.service().answer(
        challenge_id,
        proof,
        token_user_id=token_user_id,
        missing_token=missing_token,
        complete_login=two_factor.complete_login,
    )
    if result is None:
        return jsonify({})
    return current_app.make_response(result)


@blueprint.post("/recovery-codes")
def regenerate_recovery_codes() -> ResponseReturnValue:
    """``POST /auth/2fa/recovery-codes``: new recovery codes, shown once, for a second-factor
    proof (``verificationCode`` or ``recoveryCode``); the earlier codes stop working."""
    proof = _parse_proof(_json_object())
    two_factor = _two_factor()
    user_id = two_factor.user_id(two_factor.acquire_token())
    codes = two_factor.service().regenerate_recovery_codes(user_id, proof)
    return jsonify({"recoveryCodes": codes})


@blueprint.post("/disable")
def disable() -> ResponseReturnValue:
    """``POST /auth/2fa/disable``: remove the user's 2FA, for a second-factor proof."""
    proof = _parse_proof(_json_object())
    two_factor = _two_factor()
    user_id = two_factor.user_id(two_factor.acquire_token())
    two_factor.service().disable(user_id, proof)
    return jsonify({})


def _json_object() -> dict[str, Any]:
    """The request body as a JSON object, whatever its Content-Type (UCloud's own curl
    examples send a malformed one), or :class:`BadRequest`."""
    body = request.get_json(force=True, silent=True)
    if not isinstance(body, dict):
        raise BadRequest("The body must be a JSON object.")
    return body


def _parse_proof(body: dict[str, Any]) -> Proof:
    """The ``verificationCode`` or ``recoveryCode`` of a body (exactly one), or
    :class:`BadRequest`."""
    if ("verificationCode" in body) == ("recoveryCode" in body):
        raise BadRequest("Send either a verificationCode or a recoveryCode.")
    if "recoveryCode" in body:
        recovery_code = normalize_recovery_code(body["recoveryCode"])
        if recovery_code is None:
            raise BadRequest("recoveryCode must be one of your codes, like ABCD-EFGH-IJKL-MNOP.")
        return Proof(recovery_code=recovery_code)
    code = totp.normalize_code(body["verificationCode"])
    if code is None:
        raise BadRequest(
            "verificationCode must be a six-digit code: an integer from 0 to 999999 or a string"
            " of six digits."
        )
    return Proof(code=code)


@blueprint.after_request
def _no_store(response: Response) -> Response:
    # Secrets, QR codes and tokens must not sit in caches.
    response.headers["Cache-Control"] = "no-store"
    return response


@blueprint.errorhandler(HTTPException)
def _http_error(error: HTTPException) -> Response:
    # Werkzeug's errors inside the blueprint (413, ...) in the same JSON shape as ours.
    rendered = TwoFactorError(error.description or error.name)
    rendered.status_code = error.code or 500
    rendered.error_code = error.name.upper().replace(" ", "_")
    return error_response(rendered)
