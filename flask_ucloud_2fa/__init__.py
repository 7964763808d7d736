"""UCloud-compatible TOTP two-factor authentication for Flask and Authlib auth servers."""

from __future__ import annotations

from .data import CreatedCredentials
from .data import CredentialStatus
from .data import LoginCompleted
from .errors import AlreadyConnected
from .errors import ChallengeNotFound
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
from .models import ChallengeMixin
from .models import CredentialMixin
from .models import RecoveryCodeMixin
from .models import TwoFactorModels
from .openapi import openapi_document
from .proofs import Proof
from .proofs import proof_from_form
from .proofs import proof_from_json
from .stepup import second_factor_required

__all__ = [
    "AlreadyConnected",
    "ChallengeMixin",
    "ChallengeNotFound",
    "CreatedCredentials",
    "CredentialMixin",
    "CredentialStatus",
    "InsufficientUserAuthentication",
    "InvalidCode",
    "InvalidRequest",
    "LockedOut",
    "LoginCompleted",
    "NotConnected",
    "Proof",
    "RecoveryCodeMixin",
    "TokenRefused",
    "TooManyAttempts",
    "TwoFactor",
    "TwoFactorError",
    "TwoFactorModels",
    "UnreadableSecret",
    "error_response",
    "openapi_document",
    "proof_from_form",
    "proof_from_json",
    "second_factor_required",
]
