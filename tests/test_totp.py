"""The pure TOTP and QR functions, with property tests."""

from __future__ import annotations

import base64
import io
import re
import string

import pyotp
import pytest
import zxingcpp
from hypothesis import given
from hypothesis import strategies as st
from PIL import Image

from flask_ucloud_2fa import qr
from flask_ucloud_2fa import totp

SIX_DIGITS = re.compile(r"[0-9]{6}")
#: A fixed 160-bit secret for tests that need known codes.
SECRET = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"


def test_new_secret_is_160_bits_of_unpadded_base32() -> None:
    secret = totp.new_secret()
    assert len(secret) == 32
    assert set(secret) <= set(string.ascii_uppercase + "234567")
    assert len(base64.b32decode(secret)) == 20


def test_new_secrets_differ() -> None:
    assert len({totp.new_secret() for _ in range(100)}) == 100


def test_otpauth_uri_spells_out_every_parameter() -> None:
    uri = totp.otpauth_uri(SECRET, "alice smith", "My Org")
    assert uri == (
        f"otpauth://totp/My%20Org:alice%20smith?secret={SECRET}&issuer=My%20Org"
        "&algorithm=SHA1&digits=6&period=30"
    )


def test_otpauth_uri_is_read_back_by_pyotp() -> None:
    parsed = pyotp.parse_uri(totp.otpauth_uri(SECRET, "bob@example.org", "Issuer"))
    assert parsed.secret == SECRET
    assert parsed.name == "bob@example.org"
    assert parsed.issuer == "Issuer"


@given(st.integers(min_value=0, max_value=999_999))
def test_integers_are_zero_padded(value: int) -> None:
    code = totp.normalize_code(value)
    assert code is not None and len(code) == 6 and int(code) == value


@given(st.text(alphabet="0123456789", min_size=6, max_size=6))
def test_six_digit_strings_are_kept(value: str) -> None:
    assert totp.normalize_code(value) == value


@given(
    st.one_of(
        st.integers().filter(lambda n: not 0 <= n <= 999_999),
        st.booleans(),
        st.floats(),
        st.none(),
        st.lists(st.integers()),
        st.text().filter(
            lambda s: not (len(s) <= totp.MAX_CODE_TEXT and SIX_DIGITS.fullmatch(s.strip()))
        ),
    )
)
def test_everything_else_is_refused(value: object) -> None:
    assert totp.normalize_code(value) is None


@given(
    st.text(alphabet="0123456789", min_size=6, max_size=6),
    st.text(alphabet=" \t\r\n", max_size=4),
    st.text(alphabet=" \t\r\n", max_size=4),
)
def test_surrounding_whitespace_is_ignored(code: str, before: str, after: str) -> None:
    assert totp.normalize_code(before + code + after) == code


@pytest.mark.parametrize("offset", [-1, 0, 1])
def test_codes_within_one_step_match_their_step(offset: int) -> None:
    secret, now = totp.new_secret(), 1_700_000_015.0
    step = totp.time_step(now) + offset
    assert totp.matching_step(secret, totp.code_at(secret, step), now) == step


@pytest.mark.parametrize("offset", [-2, 2])
def test_codes_two_steps_away_do_not_match(offset: int) -> None:
    secret, now = SECRET, 1_700_000_015.0
    code = totp.code_at(secret, totp.time_step(now) + offset)
    assert all(totp.code_at(secret, totp.time_step(now) + near) != code for near in (-1, 0, 1)), (
        "the test secret needs distinct codes in the window"
    )
    assert totp.matching_step(secret, code, now) is None


def test_code_at_agrees_with_pyotp() -> None:
    secret, now = totp.new_secret(), 1_700_000_000.0
    assert totp.code_at(secret, totp.time_step(now)) == pyotp.TOTP(secret).at(now)


# otpauth URIs are printable ASCII: account names and issuers arrive percent-encoded.
@given(st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E), min_size=1, max_size=300))
def test_qr_code_decodes_to_its_text(text: str) -> None:
    uri = qr.qr_data_uri(text)
    prefix = "data:image/png;base64,"
    assert uri.startswith(prefix)
    image = Image.open(io.BytesIO(base64.b64decode(uri[len(prefix) :], validate=True)))
    assert image.format == "PNG"
    assert zxingcpp.read_barcodes(image)[0].text == text


def test_qr_code_has_the_quiet_zone_and_error_correction_of_the_standard() -> None:
    uri = totp.otpauth_uri(totp.new_secret(), "someone@example.org", "Example Auth Server")
    image = Image.open(io.BytesIO(qr.qr_png(uri)))
    width, height = image.size
    assert width == height and width % qr.BOX_SIZE == 0
    quiet = 4 * qr.BOX_SIZE
    rgb = image.convert("L")
    border = [rgb.getpixel((x, y)) for x in range(width) for y in range(quiet)]
    border += [rgb.getpixel((x, y)) for x in range(quiet) for y in range(height)]
    assert set(border) == {255}
    assert rgb.getpixel((quiet, quiet)) == 0  # the finder pattern's corner, dark
    symbol = zxingcpp.read_barcodes(image)[0]
    assert symbol.ec_level == "M"
    assert symbol.text == uri


def test_qr_code_of_a_text_too_long_for_any_symbol_is_refused() -> None:
    with pytest.raises(ValueError, match="Input too long for ECC level M"):
        qr.qr_png("x" * 3000)


# -- clock drift: a diagnostic for a setup code that was refused --------------------------------


def _codes_are_distinct(now: float, reach: int) -> bool:
    step = totp.time_step(now)
    return len({totp.code_at(SECRET, step + k) for k in range(-reach, reach + 1)}) == 2 * reach + 1


@pytest.mark.parametrize("offset", [0, 1, -1, 2, -2, 6, -14, 20, -20])
def test_drift_steps_finds_a_code_up_to_twenty_steps_away(offset: int) -> None:
    now = 1_700_000_015.0
    assert _codes_are_distinct(now, 41), "the test secret needs distinct codes around now"
    code = totp.code_at(SECRET, totp.time_step(now) + offset)
    assert totp.drift_steps(SECRET, code, now) == offset


@pytest.mark.parametrize("offset", [21, -21, 41])
def test_drift_steps_looks_no_further_than_its_window(offset: int) -> None:
    now = 1_700_000_015.0
    assert _codes_are_distinct(now, 41), "the test secret needs distinct codes around now"
    code = totp.code_at(SECRET, totp.time_step(now) + offset)
    assert totp.drift_steps(SECRET, code, now) is None
    assert totp.drift_steps(SECRET, code, now, window=abs(offset)) == offset


def test_drift_steps_of_a_code_of_no_nearby_step_costs_41_hmacs(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    now = 1_700_000_015.0
    step = totp.time_step(now)
    nearby = {totp.code_at(SECRET, step + k) for k in range(-20, 21)}
    code = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in nearby)
    steps: list[int] = []
    generate = pyotp.TOTP.generate_otp

    def counted(self: pyotp.TOTP, input: int) -> str:
        steps.append(input)
        return generate(self, input)

    monkeypatch.setattr(pyotp.TOTP, "generate_otp", counted)
    assert totp.drift_steps(SECRET, code, now) is None
    assert sorted(steps) == list(range(step - 20, step + 21))
