"""Second-factor proofs, parsed from what clients and people send. Pure, no Flask.

A :class:`Proof` is a six-digit TOTP code or a recovery code, in canonical form. The JSON
routes follow the contract's rules (:func:`proof_from_json`); forms are kinder to people
(:func:`proof_from_form`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import TypeGuard

from .catalogues import N_
from .errors import InvalidRequest
from .recovery import normalize_recovery_code
from .totp import MAX_CODE_TEXT
from .totp import normalize_code

__all__ = ["Proof", "is_challenge_id", "proof_from_form", "proof_from_json"]

#: What a challenge id can look like: the extension makes them URL-safe base64 (43 characters).
_CHALLENGE_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


@dataclass(frozen=True)
class Proof:
    """A second-factor proof: a six-digit TOTP code or a recovery code.

    :param code: six ASCII digits.
    :param recovery_code: a recovery code in canonical form: 16 characters, upper case, no
        dashes.
    """

    code: str | None = field(default=None, repr=False)
    recovery_code: str | None = field(default=None, repr=False)


def proof_from_json(body: Mapping[str, Any]) -> Proof:
    """The proof in a JSON body: exactly one of ``verificationCode`` (an integer 0..999999, or
    six ASCII digits with surrounding whitespace ignored) and ``recoveryCode``.

    :raises InvalidRequest: neither or both fields, or a value that is not a code.
    """
    if ("verificationCode" in body) == ("recoveryCode" in body):
        raise InvalidRequest(N_("Send either a verificationCode or a recoveryCode."))
    if "recoveryCode" in body:
        recovery_code = normalize_recovery_code(body["recoveryCode"])
        if recovery_code is None:
            raise InvalidRequest(
                N_("recoveryCode must be one of your codes, like ABCD-EFGH-IJKL-MNOP.")
            )
        return Proof(recovery_code=recovery_code)
    code = normalize_code(body["verificationCode"])
    if code is None:
        raise InvalidRequest(
            N_(
                "verificationCode must be a six-digit code: an integer from 0 to 999999 or a"
                " string of six digits."
            )
        )
    return Proof(code=code)


def proof_from_form(text: str) -> Proof | None:
    """The proof a person typed into a form, or ``None`` when it is neither kind.

    A TOTP code may have spaces anywhere (apps show ``123 456``); a recovery code may have
    dashes or spaces and any case.
    """
    if not isinstance(text, str) or len(text) > MAX_CODE_TEXT:
        return None
    code = normalize_code("".join(text.split()))
    if code is not None:
        return Proof(code=code)
    recovery_code = normalize_recovery_code(text.strip())
    return None if recovery_code is None else Proof(recovery_code=recovery_code)


def is_challenge_id(value: object) -> TypeGuard[str]:
    """Whether ``value`` can be a challenge id at all: text of the URL-safe base64 alphabet,
    at most 128 characters. Anything else (other characters, lone surrogates, NUL) is not
    looked up."""
    return isinstance(value, str) and _CHALLENGE_ID.fullmatch(value) is not None
