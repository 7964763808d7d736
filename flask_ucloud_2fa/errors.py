"""One exception hierarchy: every failure the extension reports, with typed attributes.

Each :class:`TwoFactorError` subclass carries the HTTP status, a stable ``errorCode`` and a
human ``why``; details are attributes (``remaining_attempts``, ``retry_after``). The HTTP layer's
renderer (:func:`flask_ucloud_2fa.error_response`) turns any of them into UCloud's JSON body and
its headers. No Flask here: the service raises these, the HTTP layer answers them.
"""

from __future__ import annotations

from .catalogues import N_


class TwoFactorError(Exception):
    """Base class of every error the extension answers with.

    :param why: the message shown to people; defaults to the class's :attr:`why`.
    """

    #: The HTTP status of the answer.
    status_code: int = 500
    #: UCloud's ``errorCode``: UPPER_SNAKE, stable across releases and class renames.
    error_code: str = "INTERNAL_ERROR"
    #: UCloud's ``why``: a sentence for people.
    why: str = N_("Internal error.")

    def __init__(self, why: str | None = None) -> None:
        if why is not None:
            self.why = why
        super().__init__(self.why)


class InvalidRequest(TwoFactorError):
    """The request is not what the route accepts: a body that is not a JSON object, a
    missing or malformed field."""

    status_code = 400
    error_code = "BAD_REQUEST"
    why = N_("Malformed request.")


class TokenRefused(TwoFactorError):
    """No bearer token, or one the resource protector refused.

    Without arguments: 401 ``UNAUTHORIZED``. From the resource protector: its status (401, or
    403 for a missing scope), its error as the ``errorCode`` (``MISSING_AUTHORIZATION``,
    ``INVALID_TOKEN``, ...) and its ``WWW-Authenticate`` challenge.
    """

    status_code = 401
    error_code = "UNAUTHORIZED"
    why = N_("A valid bearer token is required.")

    def __init__(
        self,
        why: str | None = None,
        *,
        status_code: int | None = None,
        error_code: str | None = None,
        www_authenticate: str | None = None,
    ) -> None:
        super().__init__(why)
        if status_code is not None:
            self.status_code = status_code
        if error_code is not None:
            self.error_code = error_code
        #: The ``WWW-Authenticate`` challenge of the resource protector, if it gave one.
        self.www_authenticate = www_authenticate


class InvalidCode(TwoFactorError):
    """The verification or recovery code is wrong, or was already used.

    :param remaining_attempts: answers left on the challenge, or ``None`` when no challenge
        was answered (recovery codes, disabling).
    :param retry_after: seconds before the user's next answer is looked at, when this failure
        started a back-off.
    :param clock_drift_seconds: only for a setup's code: how far ahead (positive) or behind
        (negative) the device's clock seems to be, a multiple of 30 seconds, when the code is
        that of a time step up to ten minutes away; ``None`` otherwise.
    """

    status_code = 403
    error_code = "INVALID_CODE"
    why = N_("Invalid 2FA code. Try again.")

    def __init__(
        self,
        why: str | None = None,
        *,
        remaining_attempts: int | None = None,
        retry_after: int | None = None,
        clock_drift_seconds: int | None = None,
    ) -> None:
        if why is None and remaining_attempts == 0:
            why = N_("Invalid 2FA code. No attempts are left on this challenge: start again.")
        super().__init__(why)
        self.remaining_attempts = remaining_attempts
        self.retry_after = retry_after
        self.clock_drift_seconds: int | None = clock_drift_seconds


class ChallengeNotFound(TwoFactorError):
    """The challenge is unknown, expired, used or burned, or belongs to someone else."""

    status_code = 404
    error_code = "CHALLENGE_NOT_FOUND"
    why = N_("Unknown or expired challenge. Start again.")


class AlreadyConnected(TwoFactorError):
    """The user already has a connected 2FA credential."""

    status_code = 409
    error_code = "ALREADY_CONNECTED"
    why = N_("Two-factor authentication is already connected for this user.")


class NotConnected(TwoFactorError):
    """The operation needs a connected credential and the user has none."""

    status_code = 409
    error_code = "NOT_CONNECTED"
    why = N_("Two-factor authentication is not connected for this user.")


class TooManyAttempts(TwoFactorError):
    """The user failed too often lately; answers are refused until ``retry_after`` passes.

    :param retry_after: seconds to wait before the next answer is looked at.
    """

    status_code = 429
    error_code = "TOO_MANY_ATTEMPTS"
    why = N_("Too many wrong codes. Wait before trying again.")

    def __init__(self, retry_after: int, why: str | None = None) -> None:
        super().__init__(why)
        self.retry_after = retry_after


class LockedOut(TooManyAttempts):
    """The user reached the consecutive-failure limit (NIST SP 800-63B 5.2.2)."""

    error_code = "LOCKED_OUT"
    why = N_(
        "Too many consecutive wrong codes: two-factor login is locked for a while."
        " An administrator can reset it."
    )


class DatabaseUnavailable(TwoFactorError):
    """The database is down, restarting or unreachable, or a statement or lock wait took
    longer than ``UCLOUD_2FA_STATEMENT_TIMEOUT``: try again after ``retry_after`` seconds.

    The extension answers SQLAlchemy's errors of an unavailable database with it, in every
    view of the app; register a handler for it (on the app or a blueprint) to answer it your
    way.

    :param retry_after: seconds to wait before trying again.
    """

    status_code = 503
    error_code = "SERVICE_UNAVAILABLE"
    why = N_("The service is unavailable for a moment. Try again in a few seconds.")

    def __init__(self, retry_after: int = 5, why: str | None = None) -> None:
        super().__init__(why)
        self.retry_after = retry_after


class InsufficientUserAuthentication(TwoFactorError):
    """The token's login did not use the second factor the user has (RFC 9470)."""

    status_code = 401
    error_code = "INSUFFICIENT_USER_AUTHENTICATION"
    why = N_("This needs a login with your second factor. Log in again with your 2FA code.")


class UnreadableSecret(RuntimeError):
    """No configured key decrypts a stored secret: a configuration mistake, not a user's."""

    def __init__(self) -> None:
        super().__init__(
            "A stored TOTP secret cannot be decrypted with any key of UCLOUD_2FA_ENCRYPTION_KEYS."
            " The key that encrypted it was removed from the list, or SECRET_KEY changed while"
            " UCLOUD_2FA_ENCRYPTION_KEYS was unset. Add the old key back after the newest one"
            " and run 'flask ucloud-2fa rotate-keys' before removing it again."
        )
