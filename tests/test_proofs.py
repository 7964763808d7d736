"""Parsing second-factor proofs: ``proof_from_json`` (the JSON routes' contract) and
``proof_from_form`` (what a person types into a form)."""

from __future__ import annotations

import re
from typing import Any

import pytest

from flask_ucloud_2fa import InvalidRequest
from flask_ucloud_2fa import Proof
from flask_ucloud_2fa import proof_from_form
from flask_ucloud_2fa import proof_from_json

NOT_A_CODE = (
    "verificationCode must be a six-digit code: an integer from 0 to 999999 or a string of six"
    " digits."
)
NOT_A_RECOVERY_CODE = "recoveryCode must be one of your codes, like ABCD-EFGH-IJKL-MNOP."
ONE_OF_THEM = "Send either a verificationCode or a recoveryCode."
RECOVERY = "ABCD-EFGH-IJKL-MN23"


@pytest.mark.parametrize(
    ("value", "code"),
    [
        (0, "000000"),
        (7, "000007"),
        (123456, "123456"),
        (999999, "999999"),
        ("123456", "123456"),
        ("012345", "012345"),
        (" 123456 ", "123456"),
        ("\t123456\n", "123456"),
    ],
)
def test_json_verification_code(value: Any, code: str) -> None:
    assert proof_from_json({"verificationCode": value}) == Proof(code=code)


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("123 456", id="inner space"),
        pytest.param("\uff11\uff12\uff13\uff14\uff15\uff16", id="fullwidth digits"),
        pytest.param("\u0661\u0662\u0663\u0664\u0665\u0666", id="Arabic-Indic digits"),
        pytest.param(True, id="true"),
        pytest.param(False, id="false"),
        pytest.param(1.0, id="1.0"),
        pytest.param(123456.0, id="123456.0"),
        pytest.param(1_000_000, id="1000000"),
        pytest.param(-1, id="-1"),
        pytest.param("12345", id="five digits"),
        pytest.param("1234567", id="seven digits"),
        pytest.param("-12345", id="signed"),
        pytest.param("", id="empty"),
        pytest.param(" " * 100 + "123456", id="too long"),
        pytest.param(None, id="null"),
        pytest.param([], id="list"),
        pytest.param({}, id="object"),
    ],
)
def test_json_verification_code_refused(value: Any) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(NOT_A_CODE)) as raised:
        proof_from_json({"verificationCode": value})
    assert (raised.value.status_code, raised.value.error_code) == (400, "BAD_REQUEST")


@pytest.mark.parametrize(
    "value", [RECOVERY, RECOVERY.lower(), RECOVERY.replace("-", ""), "abcd efgh ijkl mn23"]
)
def test_json_recovery_code(value: str) -> None:
    assert proof_from_json({"recoveryCode": value}) == Proof(recovery_code="ABCDEFGHIJKLMN23")


@pytest.mark.parametrize(
    "value", [RECOVERY[:-1], RECOVERY[:-1] + "1", 1234, None, ["ABCDEFGHIJKLMN23"]]
)
def test_json_recovery_code_refused(value: Any) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(NOT_A_RECOVERY_CODE)):
        proof_from_json({"recoveryCode": value})


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({}, id="neither"),
        pytest.param({"verificationCode": "123456", "recoveryCode": RECOVERY}, id="both"),
        pytest.param({"code": "123456"}, id="another field"),
    ],
)
def test_json_needs_exactly_one_proof(body: dict[str, Any]) -> None:
    with pytest.raises(InvalidRequest, match=re.escape(ONE_OF_THEM)):
        proof_from_json(body)


@pytest.mark.parametrize(
    ("text", "proof"),
    [
        ("123456", Proof(code="123456")),
        ("123 456", Proof(code="123456")),
        (" 123 456 ", Proof(code="123456")),
        ("1 2 3 4 5 6", Proof(code="123456")),
        (RECOVERY, Proof(recovery_code="ABCDEFGHIJKLMN23")),
        (RECOVERY.lower(), Proof(recovery_code="ABCDEFGHIJKLMN23")),
        ("abcdefghijklmn23", Proof(recovery_code="ABCDEFGHIJKLMN23")),
        (" abcd efgh-ijkl mn23 ", Proof(recovery_code="ABCDEFGHIJKLMN23")),
    ],
)
def test_form_proof(text: str, proof: Proof) -> None:
    assert proof_from_form(text) == proof


@pytest.mark.parametrize(
    "text",
    [
        "",
        "12345",
        "1234567",
        "12345a",
        "\uff11\uff12\uff13\uff14\uff15\uff16",
        RECOVERY[:-1],
        RECOVERY[:-1] + "1",
        "hello",
        "1" * 1000,
    ],
)
def test_form_junk_is_none(text: str) -> None:
    assert proof_from_form(text) is None


def test_proof_repr_shows_no_code() -> None:
    assert "123456" not in repr(Proof(code="123456"))
    assert "ABCDEFGHIJKLMN23" not in repr(Proof(recovery_code="ABCDEFGHIJKLMN23"))
