"""Recovery codes: one-time look-up secrets (NIST SP 800-63B 5.1.2). Pure, no Flask."""

from __future__ import annotations

import base64
import re
import secrets

#: 80 bits each: 16 base32 characters, shown as four groups of four.
RECOVERY_CODE_BYTES = 10

_CODE = re.compile(r"[A-Z2-7]{16}")
_SEPARATORS = re.compile(r"[\s-]")


def new_recovery_code() -> str:
    """A new random recovery code: four groups of four base32 characters, like
    ``ABCD-EFGH-JKLM-NP23``."""
    text = base64.b32encode(secrets.token_bytes(RECOVERY_CODE_BYTES)).decode("ascii")
    return "-".join(text[i : i + 4] for i in range(0, 16, 4))


def normalize_recovery_code(value: object) -> str | None:
    """The canonical form of a recovery code (no dashes or spaces, upper case), or ``None``."""
    if not isinstance(value, str) or len(value) > 64:
        return None
    canonical = _SEPARATORS.sub("", value).upper()
    return canonical if _CODE.fullmatch(canonical) else None
