"""The ``UCLOUD_2FA_*`` configuration: defaults, and the settings read once in ``init_app``."""

from __future__ import annotations

import logging
import math
import weakref
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from flask import Flask
from flask import current_app

from .attempts import PasswordLimits
from .crypto import SecretBox
from .crypto import derive_key
from .crypto import parse_keys
from .limits import Limits

logger = logging.getLogger("flask_ucloud_2fa")

DEFAULTS: dict[str, Any] = {
    "UCLOUD_2FA_ISSUER": None,
    "UCLOUD_2FA_URL_PREFIX": "/auth/2fa",
    "UCLOUD_2FA_CHALLENGE_LIFETIME": 600,
    "UCLOUD_2FA_MAX_ATTEMPTS": 5,
    "UCLOUD_2FA_BACKOFF_AFTER": 5,
    "UCLOUD_2FA_BACKOFF_MAX": 60,
    "UCLOUD_2FA_LOCKOUT_AFTER": 100,
    "UCLOUD_2FA_LOCKOUT_DURATION": 3600,
    "UCLOUD_2FA_RECOVERY_CODES": 10,
    "UCLOUD_2FA_RECOVERY_CODES_AT_SETUP": False,
    "UCLOUD_2FA_ENCRYPTION_KEYS": None,
    "UCLOUD_2FA_LOGIN_URL": "/",
    "UCLOUD_2FA_MANAGEMENT_SCOPE": None,
    "UCLOUD_2FA_STATEMENT_TIMEOUT": None,
    "UCLOUD_2FA_LOGIN_ADDRESS_BUDGET": 100,
    "UCLOUD_2FA_LOGIN_ADDRESS_FORGIVE": 60,
    "UCLOUD_2FA_LOGIN_USER_BUDGET": 1000,
    "UCLOUD_2FA_LOGIN_USER_FORGIVE": 10,
    "UCLOUD_2FA_REMEMBER_DAYS": 0,
}

#: The keys that hold a positive whole number.
_NUMBERS = (
    "CHALLENGE_LIFETIME",
    "MAX_ATTEMPTS",
    "BACKOFF_AFTER",
    "BACKOFF_MAX",
    "LOCKOUT_AFTER",
    "LOCKOUT_DURATION",
    "RECOVERY_CODES",
    "LOGIN_ADDRESS_BUDGET",
    "LOGIN_ADDRESS_FORGIVE",
    "LOGIN_USER_BUDGET",
    "LOGIN_USER_FORGIVE",
)


@dataclass(frozen=True)
class Settings:
    """The ``UCLOUD_2FA_*`` configuration of one app, read once in ``init_app``."""

    issuer: str
    url_prefix: str
    challenge_lifetime: int
    limits: Limits
    password_limits: PasswordLimits
    recovery_code_count: int
    #: The answer to a setup challenge carries the first recovery codes.
    recovery_codes_at_setup: bool
    login_url: str
    management_scope: str | None
    #: Seconds a statement of the extension may run or wait for a lock, on PostgreSQL.
    statement_timeout: float | None
    #: Days a browser's logins skip the second factor once remembered; 0 for never.
    remember_days: int
    box: SecretBox = field(repr=False)

    @classmethod
    def from_config(cls, app: Flask) -> Settings:
        """:raises ValueError: a value that cannot work, naming the key and what to change.
        :raises RuntimeError: no key to encrypt secrets with."""
        config = app.config
        issuer = config["UCLOUD_2FA_ISSUER"] or app.name
        if ":" in issuer:
            raise ValueError(
                f"UCLOUD_2FA_ISSUER {issuer!r} contains ':', which authenticator apps read as the"
                " end of the issuer. Choose a name without it."
            )
        numbers = {key: _positive_int(config, f"UCLOUD_2FA_{key}") for key in _NUMBERS}
        return cls(
            issuer=issuer,
            url_prefix=_url_prefix(config["UCLOUD_2FA_URL_PREFIX"]),
            challenge_lifetime=numbers["CHALLENGE_LIFETIME"],
            limits=Limits(
                max_attempts=numbers["MAX_ATTEMPTS"],
                backoff_after=numbers["BACKOFF_AFTER"],
                backoff_max=numbers["BACKOFF_MAX"],
                lockout_after=numbers["LOCKOUT_AFTER"],
                lockout_duration=numbers["LOCKOUT_DURATION"],
            ),
            password_limits=PasswordLimits.of(
                backoff_after=numbers["BACKOFF_AFTER"],
                backoff_max=numbers["BACKOFF_MAX"],
                address_budget=numbers["LOGIN_ADDRESS_BUDGET"],
                address_forgive=numbers["LOGIN_ADDRESS_FORGIVE"],
                user_budget=numbers["LOGIN_USER_BUDGET"],
                user_forgive=numbers["LOGIN_USER_FORGIVE"],
            ),
            recovery_code_count=numbers["RECOVERY_CODES"],
            recovery_codes_at_setup=_flag(config, "UCLOUD_2FA_RECOVERY_CODES_AT_SETUP"),
            login_url=config["UCLOUD_2FA_LOGIN_URL"],
            management_scope=_scope(config["UCLOUD_2FA_MANAGEMENT_SCOPE"]),
            statement_timeout=_timeout(config["UCLOUD_2FA_STATEMENT_TIMEOUT"]),
            remember_days=_days(config["UCLOUD_2FA_REMEMBER_DAYS"]),
            box=SecretBox(_encryption_keys(app)),
        )


def _positive_int(config: Any, key: str) -> int:
    value = config[key]
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a whole number, not {value!r}.") from None
    if number <= 0:
        raise ValueError(f"{key} must be positive, not {number}.")
    return number


def _days(value: Any) -> int:
    """``UCLOUD_2FA_REMEMBER_DAYS``: 0 (off) to :data:`MAX_REMEMBER_DAYS`, as a number or
    digits.

    :raises ValueError: anything else."""
    if not isinstance(value, bool) and isinstance(value, (int, str)):
        text = str(value).strip()
        digits = text.isascii() and text.isdigit() and len(text) <= 6
        if digits and int(text) <= MAX_REMEMBER_DAYS:
            return int(text)
    raise ValueError(
        "UCLOUD_2FA_REMEMBER_DAYS must be a whole number of days from 0 (off, the default) to"
        f" {MAX_REMEMBER_DAYS}, like 30, not {value!r}."
    )


#: The most days a browser can be remembered for: far beyond any sensible setting.
MAX_REMEMBER_DAYS = 3650


def _flag(config: Any, key: str) -> bool:
    """:raises ValueError: not ``True`` or ``False``."""
    value = config[key]
    if not isinstance(value, bool):
        raise ValueError(f"{key} must be True or False, not {value!r}.")
    return value


def _timeout(value: Any) -> float | None:
    """Seconds, ``None`` (or ``""``, ``0``) for no limit.

    :raises ValueError: not a number of seconds."""
    if value is None or value == "":
        return None
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        seconds = math.nan
    if isinstance(value, bool) or not math.isfinite(seconds) or seconds < 0:
        raise ValueError(
            "UCLOUD_2FA_STATEMENT_TIMEOUT must be a number of seconds, like 5 or 0.5, or None"
            f" for no limit, not {value!r}."
        )
    return seconds or None


def _url_prefix(value: Any) -> str:
    """:raises ValueError: not a path of its own under which the routes can live."""
    if (
        not isinstance(value, str)
        or not value.startswith("/")
        or value.endswith("/")
        or any(character in value for character in " \t\n?#<>%")
    ):
        raise ValueError(
            "UCLOUD_2FA_URL_PREFIX must be a path that starts with '/' and does not end with"
            f" one, like '/auth/2fa', not {value!r}."
        )
    return value


def _scope(value: Any) -> str | None:
    """:raises ValueError: not one OAuth scope token."""
    if value is None or value == "":
        return None
    if not isinstance(value, str) or len(value.split()) != 1 or value != value.strip():
        raise ValueError(
            "UCLOUD_2FA_MANAGEMENT_SCOPE must be one OAuth scope, like 'ucloud-2fa',"
            f" not {value!r}."
        )
    return value


def _encryption_keys(app: Flask) -> list[bytes]:
    configured = app.config["UCLOUD_2FA_ENCRYPTION_KEYS"]
    if configured:
        return parse_keys(configured)
    if not app.config.get("SECRET_KEY"):
        raise RuntimeError(
            "Flask-UCloud-2FA encrypts TOTP secrets and needs a key: set"
            " UCLOUD_2FA_ENCRYPTION_KEYS to a list of Fernet keys (make one with"
            ' python -c "from cryptography.fernet import Fernet;'
            ' print(Fernet.generate_key().decode())"), or at least SECRET_KEY.'
        )
    logger.warning(
        "UCLOUD_2FA_ENCRYPTION_KEYS is not set: TOTP secrets are encrypted under a key derived"
        " from SECRET_KEY, so changing SECRET_KEY makes them unreadable. Set"
        " UCLOUD_2FA_ENCRYPTION_KEYS for production."
    )
    return [derive_key(app.config["SECRET_KEY"], "flask-ucloud-2fa secrets")]


#: Where an app keeps this extension's state: ``app.extensions[EXTENSION_KEY]``.
EXTENSION_KEY = "ucloud_2fa"


@dataclass(frozen=True)
class AppState:
    """What one app keeps of the extension, in ``app.extensions["ucloud_2fa"]``.

    :param extension: the :class:`~flask_ucloud_2fa.TwoFactor` registered on the app.
    :param settings: the app's settings.
    :param app: the app itself (weakly), the sender of the signals.
    """

    extension: Any
    settings: Settings
    app: weakref.ref[Flask] = field(repr=False)


def app_state() -> AppState:
    """The extension's state of the current app.

    :raises RuntimeError: the extension was never registered on the current app.
    """
    state: AppState | None = current_app.extensions.get(EXTENSION_KEY)
    if state is None:
        raise RuntimeError(
            "Flask-UCloud-2FA is not registered on the current app. Call"
            " 'two_factor.init_app(app)' in your app factory, or pass the app to"
            " 'TwoFactor(app, ...)'."
        )
    return state
