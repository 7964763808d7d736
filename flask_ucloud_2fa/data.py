"""The data the facade hands out and takes back: what a setup, a login and an administrator's
look return. Plain frozen dataclasses, no Flask, no database."""

from __future__ import annotations

from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from typing import Any


@dataclass(frozen=True)
class CreatedCredentials:
    """A started setup: UCloud's ``Create2FACredentialsResponse``, answered by
    ``POST /auth/2fa``.

    :param otp_auth_uri: the ``otpauth://`` URI authenticator apps read.
    :param qr_code_b64_data: a PNG of its QR code, as a ``data:`` URI for an ``<img>``.
    :param secret: the base32 secret, for typing into an app by hand.
    :param challenge_id: the setup challenge that the first code confirms.
    """

    otp_auth_uri: str = field(repr=False)
    qr_code_b64_data: str = field(repr=False)
    secret: str = field(repr=False)
    challenge_id: str = field(repr=False)


@dataclass(frozen=True)
class SetupConfirmed:
    """A setup challenge answered with the right code: the user's 2FA is connected. What
    :meth:`~flask_ucloud_2fa.TwoFactor.answer_challenge` returns for a setup challenge.

    :param recovery_codes: the first recovery codes, made in the transaction that connected the
        credential and stored only hashed: show them once. Empty unless they were asked for
        (``UCLOUD_2FA_RECOVERY_CODES_AT_SETUP``).
    """

    recovery_codes: list[str] = field(default_factory=list, repr=False)


@dataclass(frozen=True)
class LoginCompleted:
    """A login whose factors all succeeded, handed to the ``login_completed`` hook.

    :param user_id: the id the login view passed to the login step, in the type the extension
        stores it in: text by default, the user table's key type with ``user_table``.
    :param methods: the authentication methods used, as OpenID Connect ``amr`` values:
        ``["pwd"]`` without 2FA, ``["pwd", "otp"]`` after a TOTP code, ``["pwd", "otp", "rc"]``
        after a recovery code (``rc`` is this project's value), and ``["pwd"]`` from a
        remembered browser that skipped the challenge (``UCLOUD_2FA_REMEMBER_DAYS``).
    :param auth_time: when the last factor succeeded, in Unix seconds.
    :param state: the JSON-serialisable ``state`` the login view passed to the login step.
    """

    user_id: Any
    methods: list[str]
    auth_time: int
    state: dict[str, Any]


@dataclass(frozen=True)
class CredentialStatus:
    """An administrator's view of a user's 2FA, without the secret.

    :param user_id: the user.
    :param connected: whether a setup was confirmed (else one is pending).
    :param created_at: when the current secret was made, in naive UTC.
    :param connected_at: when it was confirmed, or ``None``.
    :param failures: consecutive wrong answers since the last right one.
    :param blocked_until: no answer is looked at before this time (back-off or lock-out).
    :param recovery_codes_left: unused recovery codes.
    :param pending_challenges: challenges that can still be answered.
    """

    user_id: Any
    connected: bool
    created_at: datetime
    connected_at: datetime | None
    failures: int
    blocked_until: datetime | None
    recovery_codes_left: int
    pending_challenges: int


@dataclass(frozen=True)
class RememberedBrowser:
    """A browser whose logins skip the second factor for a while ("Remember this browser"),
    as its user sees it in a list of them. Never the cookie's value, nor its hash.

    :param id: what :meth:`~flask_ucloud_2fa.TwoFactor.forget_browser` takes to forget it.
    :param created_at: when it was remembered, after a right code, in naive UTC.
    :param expires_at: when its logins ask for a code again, in naive UTC.
    :param last_used_at: its last login that skipped the code, or ``None``.
    :param user_agent: a summary of the browser, like ``"Firefox on Linux"``, or ``None``.
    :param current: whether it is the browser of the current request.
    """

    id: int
    created_at: datetime
    expires_at: datetime
    last_used_at: datetime | None
    user_agent: str | None
    current: bool
