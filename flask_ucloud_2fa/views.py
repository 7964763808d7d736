"""The blueprint: HTTP in, a service call, JSON out. No rules live here."""

from __future__ import annotations

import hmac
from typing import Any

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import jsonify
from flask import render_template
from flask import request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException

from . import totp
from .challenges import Proof
from .errors import BadRequest
from .errors import ChallengeNotFound
from .errors import InvalidCode
from .errors import TooManyAttempts
from .errors import http_error_response
from .extension import EXTENSION_KEY
from .extension import TwoFactor
from .login import BINDING_COOKIE
from .login import csrf_token
from .models import LOGIN
from .openapi import openapi_document
from .recovery import normalize_recovery_code

blueprint = Blueprint("ucloud_2fa", __name__, template_folder="templates")

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
    return jsonify({"connected": two_factor.is_connected(two_factor.acquire_token())})


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
    result = two_factor.service().answer(
        challenge_id,
        proof,
        setup_user=lambda: two_factor.user_id(two_factor.acquire_token()),
        complete_login=two_factor.complete_login,
    )
    if result is None:
        return jsonify({})
    return current_app.make_response(result)


@blueprint.get("")
def challenge_page() -> ResponseReturnValue:
    """``GET /auth/2fa?challengeId=...``: the HTML page where a browser answers its login
    challenge. Override ``ucloud_2fa/challenge.html`` in the app's templates to restyle it."""
    challenge_id = request.args.get("challengeId", "")
    binding = request.cookies.get(BINDING_COOKIE)
    if not challenge_id or binding is None:
        return _challenge_page(challenge_id, None, "expired", 404)
    return _challenge_page(challenge_id, binding, None, 200)


@blueprint.post("/challenge/form")
def answer_challenge_form() -> ResponseReturnValue:
    """The challenge page's form: on success the integrator's login-completion response
    (usually a redirect), else the page again with what went wrong."""
    challenge_id = request.form.get("challengeId", "")
    binding = request.cookies.get(BINDING_COOKIE)
    if binding is None:  # no login began in this browser, or it ended
        return _challenge_page(challenge_id, None, "expired", 404)
    if not hmac.compare_digest(
        request.form.get("csrfToken", ""), csrf_token(binding, challenge_id)
    ):
        return _challenge_page(challenge_id, None, "expired", 403)
    proof = _form_proof()
    if proof is None:
        return _challenge_page(challenge_id, binding, "malformed", 400)
    two_factor = _two_factor()
    try:
        result = two_factor.service().answer(
            challenge_id,
            proof,
            complete_login=two_factor.complete_login,
            browser_binding=binding,
            kind=LOGIN,
        )
    except InvalidCode as wrong:
        remaining = wrong.extra.get("remainingAttempts")
        if remaining == 0:
            return _challenge_page(challenge_id, None, "expired", 403)
        return _challenge_page(challenge_id, binding, "wrong", 403, remaining_attempts=remaining)
    except TooManyAttempts as blocked:
        page = _challenge_page(
            challenge_id, binding, "blocked", 429, retry_after=blocked.extra["retryAfter"]
        )
        page.headers.update(blocked.headers)
        return page
    except ChallengeNotFound:
        return _challenge_page(challenge_id, None, "expired", 404)
    if result is None:  # only setup challenges answer nothing, and kind=LOGIN excludes them
        return _challenge_page(challenge_id, None, "expired", 404)
    response = current_app.make_response(result)
    response.delete_cookie(BINDING_COOKIE, path=two_factor.settings.url_prefix)
    return response


def _form_proof() -> Proof | None:
    """The form's six-digit code, or else its recovery code; ``None`` when neither is one."""
    recovery = request.form.get("recoveryCode", "").strip()
    if recovery:
        recovery_code = normalize_recovery_code(recovery)
        return None if recovery_code is None else Proof(recovery_code=recovery_code)
    code = totp.normalize_code(request.form.get("verificationCode", "").strip())
    return None if code is None else Proof(code=code)


def _challenge_page(
    challenge_id: str, binding: str | None, failure: str | None, status: int, **context: Any
) -> Response:
    """The challenge page; without ``binding`` it offers only the way back to the login."""
    html = render_template(
        "ucloud_2fa/challenge.html",
        challenge_id=challenge_id,
        csrf_token=None if binding is None else csrf_token(binding, challenge_id),
        failure=failure,
        login_url=_two_factor().settings.login_url,
        **context,
    )
    return Response(html, status=status, mimetype="text/html")


@blueprint.post("/recovery-codes")
def regenerate_recovery_codes() -> ResponseReturnValue:
    """``POST /auth/2fa/recovery-codes``: new recovery codes, shown once, for a second-factor
    proof (``verificationCode`` or ``recoveryCode``); the earlier codes stop working."""
    two_factor = _two_factor()
    user_id = two_factor.user_id(two_factor.acquire_token())
    proof = _parse_proof(_json_object())
    codes = two_factor.service().regenerate_recovery_codes(user_id, proof)
    return jsonify({"recoveryCodes": codes})


@blueprint.post("/disable")
def disable() -> ResponseReturnValue:
    """``POST /auth/2fa/disable``: remove the user's 2FA, for a second-factor proof."""
    two_factor = _two_factor()
    user_id = two_factor.user_id(two_factor.acquire_token())
    proof = _parse_proof(_json_object())
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
    return http_error_response(error)
