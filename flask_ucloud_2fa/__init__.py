"""UCloud-compatible TOTP two-factor authentication for Flask and Authlib auth servers."""

from __future__ import annotations

from .attempts import PasswordAttempt
from .data import CreatedCredentials
from .data import CredentialStatus
from .data import LoginCompleted
from .data import RememberedBrowser
from .data import SetupConfirmed
from .errors import AlreadyConnected
from .errors import ChallengeNotFound
from .errors import DatabaseUnavailable
from .errors import InsufficientUserAuthentication
from .errors import InvalidCode
from .errors import InvalidRequest
from .errors import LockedOut
from .errors import NotConnected
from .errors import TokenRefused
from .errors import TooManyAttempts
from .errors import TwoFactorError
from .errors import UnreadableSecret
from .extension import TwoFactor
from .http import error_response
from .i18n import localized_why
from .models import AttemptCounterMixin
from .models import ChallengeMixin
from .models import CredentialMixin
from .models import RecoveryCodeMixin
from .models import RememberedBrowserMixin
from .models import TwoFactorModels
from .openapi import openapi_document
from .proofs import Proof
from .proofs import proof_from_form
from .proofs import proof_from_json
from .stepup import second_factor_required

#: The version of the package; ``setup.cfg`` reads it from here, so the installed metadata
#: (``importlib.metadata.version("Flask-UCloud-2FA")``) is always the same.
__version__ = "0.1.0.dev0"

__all__ = [
    "AlreadyConnected",
    "AttemptCounterMixin",
    "ChallengeMixin",
    "ChallengeNotFound",
    "CreatedCredentials",
    "CredentialMixin",
    "CredentialStatus",
    "DatabaseUnavailable",
    "InsufficientUserAuthentication",
    "InvalidCode",
    "InvalidRequest",
    "LockedOut",
    "LoginCompleted",
    "NotConnected",
    "PasswordAttempt",
    "Proof",
    "RecoveryCodeMixin",
    "RememberedBrowser",
    "RememberedBrowserMixin",
    "SetupConfirmed",
    "TokenRefused",
    "TooManyAttempts",
    "TwoFactor",
    "TwoFactorError",
    "TwoFactorModels",
    "UnreadableSecret",
    "error_response",
    "localized_why",
    "openapi_document",
    "proof_from_form",
    "proof_from_json",
    "second_factor_required",
]
