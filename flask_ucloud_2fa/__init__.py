"""UCloud-compatible TOTP two-factor authentication for Flask and Authlib auth servers."""

from __future__ import annotations

from .challenges import CompletedLogin
from .challenges import CreatedCredentials
from .challenges import CredentialStatus
from .challenges import Proof
from .crypto import UnreadableSecret
from .errors import AlreadyConnected
from .errors import BadRequest
from .errors import ChallengeNotFound
from .errors import InsufficientUserAuthentication
from .errors import InvalidCode
from .errors import LockedOut
from .errors import NotConnected
from .errors import TokenRefused
from .errors import TooManyAttempts
from .errors import TwoFactorError
from .errors import Unauthorized
from .extension import TwoFactor
from .openapi import openapi_document

__all__ = [
    "AlreadyConnected",
    "BadRequest",
    "ChallengeNotFound",
    "CompletedLogin",
    "CreatedCredentials",
    "CredentialStatus",
    "InsufficientUserAuthentication",
    "InvalidCode",
    "LockedOut",
    "NotConnected",
    "Proof",
    "TokenRefused",
    "TooManyAttempts",
    "TwoFactor",
    "TwoFactorError",
    "Unauthorized",
    "UnreadableSecret",
    "openapi_document",
]
