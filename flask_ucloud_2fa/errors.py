"""One exception hierarchy and one JSON error shape, UCloud's.

Every failure the extension reports is a :class:`TwoFactorError` subclass carrying the HTTP
status, a stable ``errorCode`` and a human ``why``. :func:`error_response` renders any of them as
``{"statusCode": ..., "why": ..., "errorCode": ...}`` plus optional extra fields.
"""

from __future__ import annotations

from typing import Any

from flask import Response
from flask import jsonify
from werkzeug.exceptions import HTTPException


class TwoFactorError(Exception):
    """Base class of every error the extension answers with.

    :param why: the message shown to people; defaults to the class's :attr:`why`.
    :param extra: additional JSON fields, such as ``remainingAttempts``.
    """

    status_code: int = 500
    error_code: str = "INTERNAL_ERROR"
    why: str = "Internal error."

    def __init__(self, why: str | None = None, **extra: Any) -> None:
        if why is not None:
            self.why = why
        self.extra = extra
        self.headers: dict[str, str] = {}
        super().__init__(self.why)

    def to_dict(self) -> dict[str, Any]:
        """The UCloud JSON error body."""
        return {
            "statusCode": self.status_code,
            "why": self.why,
            "errorCode": self.error_code,
            **self.extra,
        }


class BadRequest(TwoFactorError):
    """The request body is not what the route accepts."""

    status_code = 400
    error_code = "BAD_REQUEST"
    why = "Malformed request."


class Unauthorized(TwoFactorError):
    """No bearer token, or one the resource protector refused."""

    status_code = 401
    error_code = "UNAUTHORIZED"
    why = "A valid bearer token is required."


class TokenRefused(Unauthorized):
    """The resource protector refused the request's bearer token, or found none.

    Carries the protector's status (401, or 403 for a missing scope), its error as the
    ``errorCode`` (``MISSING_AUTHORIZATION``, ``INVALID_TOKEN``, ...) and its
    ``WWW-Authenticate`` header.
    """

    def __init__(
        self,
        *,
        status_code: int,
        error_code: str,
        why: str,
        headers: dict[str, str],
    ) -> None:
        super().__init__(why)
        self.status_code = status_code
        self.error_code = error_code
        self.headers.update(headers)


class InvalidCode(TwoFactorError):
    """The verification code is wrong, or was already used."""

    status_code = 403
    error_code = "INVALID_CODE"
    why = "Invalid 2FA code. Try again."


class ChallengeNotFound(TwoFactorError):
    """The challenge is unknown, expired, used or burned, or belongs to someone else."""

    status_code = 404
    error_code = "CHALLENGE_NOT_FOUND"
    why = "Unknown or expired challenge. Start again."


class AlreadyConnected(TwoFactorError):
    """The user already has a connected 2FA credential."""

    status_code = 409
    error_code = "ALREADY_CONNECTED"
    why = "Two-factor authentication is already connected for this user."


def error_response(error: TwoFactorError) -> Response:
    """Render ``error`` in UCloud's JSON error shape with its status and headers."""
    response = jsonify(error.to_dict())
    response.status_code = error.status_code
    response.headers.update(error.headers)
    return response


def http_error_response(error: HTTPException) -> Response:
    """Render one of Werkzeug's errors (a 405 with its ``Allow``, a 413, ...) in the same JSON
    shape, ``errorCode`` from its name (``METHOD_NOT_ALLOWED``)."""
    rendered = TwoFactorError(error.description or error.name)
    rendered.status_code = error.code or 500
    rendered.error_code = error.name.upper().replace(" ", "_")
    rendered.headers.update(
        (name, value) for name, value in error.get_headers() if name.lower() != "content-type"
    )
    return error_response(rendered)


class NotConnected(TwoFactorError):
    """The operation needs a connected credential and the user has none."""

    status_code = 409
    error_code = "NOT_CONNECTED"
    why = "Two-factor authentication is not connected for this user."


class TooManyAttempts(TwoFactorError):
    """The user failed too often lately; answers are refused until ``retry_after`` passes."""

    status_code = 429
    error_code = "TOO_MANY_ATTEMPTS"
    why = "Too many wrong codes. Wait before trying again."

    def __init__(self, retry_after: int, why: str | None = None) -> None:
        super().__init__(why, retryAfter=retry_after)
        self.headers["Retry-After"] = str(retry_after)


class LockedOut(TooManyAttempts):
    """The user reached the consecutive-failure limit (NIST SP 800-63B 5.2.2)."""

    error_code = "LOCKED_OUT"
    why = (
        "Too many consecutive wrong codes: two-factor login is locked for a while."
        " An administrator can reset it."
    )


class InsufficientUserAuthentication(TwoFactorError):
    """The token's login did not use the second factor the user has (RFC 9470)."""

    status_code = 401
    error_code = "INSUFFICIENT_USER_AUTHENTICATION"
    why = "This needs a login with your second factor. Log in again with your 2FA code."

    def __init__(self, why: str | None = None) -> None:
        super().__init__(why)
        self.headers["WWW-Authenticate"] = (
            f'Bearer error="insufficient_user_authentication", error_description="{self.why}"'
        )
