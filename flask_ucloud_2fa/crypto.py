"""Secrets at rest: Fernet encryption under rotating keys, keyed hashes. Pure, no Flask.

Fernet (AES-128-CBC with HMAC-SHA256) is authenticated encryption from ``cryptography``. Keys are
used as given, without per-request stretching, so a decryption costs microseconds: the keys are
random 256-bit values, not passwords, and need none.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence

from cryptography.fernet import Fernet
from cryptography.fernet import InvalidToken
from cryptography.fernet import MultiFernet
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

from .errors import UnreadableSecret

__all__ = ["SecretBox", "derive_key", "parse_keys", "sha256_hex"]


def derive_key(secret_key: str | bytes, purpose: str) -> bytes:
    """A Fernet key derived from an app's ``SECRET_KEY`` with HKDF-SHA256, one per ``purpose``."""
    material = secret_key.encode("utf-8") if isinstance(secret_key, str) else secret_key
    raw = HKDF(
        algorithm=hashes.SHA256(),
        length=32,
        salt=b"flask-ucloud-2fa",
        info=purpose.encode("ascii"),
    ).derive(material)
    return base64.urlsafe_b64encode(raw)


def parse_keys(value: str | bytes | Sequence[str | bytes]) -> list[bytes]:
    """Fernet keys from a list, or from one string of comma-separated keys (as from the
    environment). The first key encrypts; every key decrypts.

    :raises ValueError: no key, or a value that is not a Fernet key (32 url-safe base64 bytes).
    """
    if isinstance(value, (str, bytes)):
        text = value.decode("ascii") if isinstance(value, bytes) else value
        items: list[str | bytes] = [part.strip() for part in text.split(",") if part.strip()]
    else:
        items = list(value)
    keys = [item.encode("ascii") if isinstance(item, str) else item for item in items]
    if not keys:
        raise ValueError("UCLOUD_2FA_ENCRYPTION_KEYS is empty: give at least one Fernet key.")
    for position, key in enumerate(keys):
        try:
            Fernet(key)
        except ValueError:
            raise ValueError(
                f"UCLOUD_2FA_ENCRYPTION_KEYS[{position}] is not a Fernet key. Make one with"
                ' python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key()'
                '.decode())"'
            ) from None
    return keys


class SecretBox:
    """Encrypts TOTP secrets and hashes recovery codes under the configured keys.

    :param keys: Fernet keys, newest first: the first encrypts, all decrypt.
    """

    def __init__(self, keys: Sequence[bytes]) -> None:
        self._fernet = MultiFernet([Fernet(key) for key in keys])
        # Recovery codes are hashed under keys of their own, one derived from each configured
        # key, so a copy of the database cannot be checked against guesses without the config.
        self._hash_keys = [hashlib.sha256(b"recovery-codes:" + key).digest() for key in keys]

    def __repr__(self) -> str:
        return "<SecretBox>"

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> str:
        """:raises UnreadableSecret: no configured key decrypts ``token``."""
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode("utf-8")
        except InvalidToken:
            raise UnreadableSecret() from None

    def rotate(self, token: str) -> str:
        """``token`` re-encrypted under the newest key.

        :raises UnreadableSecret: no configured key decrypts ``token``.
        """
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except InvalidToken:
            raise UnreadableSecret() from None

    def keyed_hash(self, value: str) -> str:
        """HMAC-SHA256 of ``value`` under the newest key, hex-encoded: the form to store."""
        return self.keyed_hashes(value)[0]

    def keyed_hashes(self, value: str) -> list[str]:
        """The keyed hash of ``value`` under every key, newest first: the forms to look up."""
        data = value.encode("utf-8")
        return [hmac.new(key, data, hashlib.sha256).hexdigest() for key in self._hash_keys]


def sha256_hex(value: str) -> str:
    """SHA-256 of ``value``, hex-encoded: the stored form of challenge ids and browser
    bindings, which are random and need no key or salt."""
    return hashlib.sha256(value.encode("utf-8")).hexdigest()
