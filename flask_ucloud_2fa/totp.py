"""TOTP secrets, otpauth URIs and verification (RFC 6238). Pure functions, no Flask.

The parameters are fixed to what every authenticator app supports: SHA1, six digits, a 30 second
period, and one step of clock skew accepted each way.
"""

from __future__ import annotations

import base64
import hmac
import re
import secrets
from urllib.parse import quote

import pyotp

DIGITS = 6
PERIOD = 30
#: Time steps accepted on either side of the current one, for clock skew.
VALID_WINDOW = 1
#: 160 bits, the HMAC-SHA1 key size RFC 4226 recommends; 32 base32 characters, no padding.
SECRET_BYTES = 20

_SIX_DIGITS = re.compile(r"[0-9]{6}")
#: Longer text is not looked at: a code with any amount of padding is still a short string.
MAX_CODE_TEXT = 64


def new_secret() -> str:
    """A new random base32 secret of :data:`SECRET_BYTES` bytes, without padding."""
    return base64.b32encode(secrets.token_bytes(SECRET_BYTES)).decode("ascii").rstrip("=")


def otpauth_uri(secret: str, account: str, issuer: str) -> str:
    """The ``otpauth://`` key URI authenticator apps read from the QR code.

    The algorithm, digits and period are spelled out, as UCloud does, so no app has to guess.
    """
    label = f"{quote(issuer, safe='')}:{quote(account, safe='')}"
    return (
        f"otpauth://totp/{label}?secret={secret}&issuer={quote(issuer, safe='')}"
        f"&algorithm=SHA1&digits={DIGITS}&period={PERIOD}"
    )


def normalize_code(value: object) -> str | None:
    """The six-digit code in ``value``, or ``None`` when it is not one.

    Accepts a JSON integer 0..999999 (zero-padded: ``12345`` is ``"012345"``) or a string of
    exactly six ASCII digits, surrounding whitespace ignored (people paste codes with it, and
    UCloud's own server trims). Booleans, floats, inner spaces, other digits and everything else
    are refused.
    """
    if isinstance(value, bool):
        return None
    if isinstance(value, int):
        return f"{value:06d}" if 0 <= value <= 999_999 else None
    if isinstance(value, str) and len(value) <= MAX_CODE_TEXT:
        code = value.strip()
        return code if _SIX_DIGITS.fullmatch(code) else None
    return None


def time_step(for_time: float) -> int:
    """The RFC 6238 time step counter ``T`` at ``for_time`` (Unix seconds)."""
    return int(for_time // PERIOD)


def code_at(secret: str, step: int) -> str:
    """The code for ``secret`` at time step ``step``."""
    return pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD).generate_otp(step)


def matching_step(secret: str, code: str, for_time: float) -> int | None:
    """The time step whose code is ``code``, within the skew window, or ``None``.

    Every candidate is computed and compared in constant time, so the answer takes as long for a
    wrong code as for a right one.
    """
    now = time_step(for_time)
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)
    matched: int | None = None
    for step in range(now - VALID_WINDOW, now + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            matched = step
    return matched


#: Time steps looked at on either side for :func:`drift_steps`: ten minutes each way.
DRIFT_WINDOW = 20


def drift_steps(secret: str, code: str, for_time: float, window: int = DRIFT_WINDOW) -> int | None:
    """How many time steps ahead (positive) or behind (negative) of ``for_time`` the step
    whose code is ``code`` lies, within ``window`` steps each way; the nearest such step, or
    ``None``.

    A diagnostic for a code that :func:`matching_step` refused, never a way to accept one: a
    device whose clock is off shows the code of another step. At most ``2 * window + 1``
    HMACs, nearest first; its time tells how far off the code was, which is no secret once
    the code was refused.
    """
    now = time_step(for_time)
    totp = pyotp.TOTP(secret, digits=DIGITS, interval=PERIOD)
    for distance in range(window + 1):
        for offset in (distance, -distance) if distance else (0,):
            if hmac.compare_digest(totp.generate_otp(now + offset), code):
                return offset
    return None
