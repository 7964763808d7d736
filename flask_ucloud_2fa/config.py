"""The ``UCLOUD_2FA_*`` configuration: defaults, and the settings read once in ``init_app``."""

from __future__ import annotations

import logging
import weakref
from dataclasses import dataclass
from dataclasses import field
from typing import Any

from flask import Flask
from flask import current_app

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
    "UCLOUD_2FA_ENCRYPTION_KEYS": None,
    "UCLOUD_2FA_LOGIN_URL": "/",
    "UCLOUD_2FA_MANAGEMENT_SCOPE": None,
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
)


@dataclass(frozen=True)
class Settings:
    """The ``UCLOUD_2FA_*`` configuration of one app, read once in ``init_app``."""

    issuer: str
    url_prefix: str
    challenge_lifetime: int
    limits: Limits
    recovery_code_count: int
    login_url: str
    management_scope: str | None
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
            url_prefix=config["UCLOUD_2FA_URL_PREFIX"],
            challenge_lifetime=numbers["CHALLENGE_LIFETIME"],
            limits=Limits(
                max_attempts=numbers["MAX_ATTEMPTS"],
                backoff_after=numbers["BACKOFF_AFTER"],
                backoff_max=numbers["BACKOFF_MAX"],
                lockout_after=numbers["LOCKOUT_AFTER"],
                lockout_duration=numbers["LOCKOUT_DURATION"],
            ),
            recovery_code_count=numbers["RECOVERY_CODES"],
            login_url=config["UCLOUD_2FA_LOGIN_URL"],
            management_scope=_scope(config["UCLOUD_2FA_MANAGEMENT_SCOPE"]),
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
