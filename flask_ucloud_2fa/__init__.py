"""UCloud-compatible TOTP two-factor authentication for Flask and Authlib auth servers."""

from __future__ import annotations

from .challenges import CompletedLogin
from .challenges import CreatedCredentials
from .errors import AlreadyConnected
from .errors import BadRequest
from .errors import ChallengeNotFound
from .errors import InvalidCode
from .errors import TokenRefused
from .errors import TwoFactorError
from .errors import Unauthorized
from .extension import TwoFactor

__all__ = [
    "AlreadyConnected",
    "BadRequest",
    "ChallengeNotFound",
    "CompletedLogin",
    "CreatedCredentials",
    "InvalidCode",
    "TokenRefused",
    "TwoFactor",
    "TwoFactorError",
    "Unauthorized",
]
