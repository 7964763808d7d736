"""``make demo`` end to end: the printed curl session, pasted into bash, walks the whole flow."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import zxingcpp
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from PIL import Image

from example_app.terminal_qr import terminal_qr

from helpers import free_port
from helpers import require_service

REPO = Path(__file__).resolve().parents[2]


def _keys() -> dict[str, str]:
    """Keys for the demo, so it makes none in the repository's instance folder."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    ).decode()
    return {
        "FLASK_SECRET_KEY": Fernet.generate_key().decode(),
        "FLASK_UCLOUD_2FA_ENCRYPTION_KEYS": Fernet.generate_key().decode(),
        "FLASK_OAUTH_JWT_KEY_PEM": pem,
    }


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[list[str]]:
    """The demo server on a free port; yields the lines it printed up to the session's end."""
    process = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "example_app.demo",
            "--port",
            str(free_port()),
            "--database",
            f"sqlite:///{tmp_path}/demo.sqlite",
        ],
        cwd=tmp_path,
        env={**os.environ, **_keys(), "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines: list[str] = []
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Stop the server"):
                break
        # The server listens once Werkzeug says so; everything after the session is its log.
        for line in process.stdout:
            if "Running on" in line:
                break
        yield lines
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def test_the_printed_curl_session_connects_2fa_and_then_asks_for_a_code(
    demo: list[str], tmp_path: Path
) -> None:
    if shutil.which("curl") is None:
        require_service("curl is not installed")
    text = "".join(demo)
    session = text[text.index("# 1.") : text.index("Stop the server")]
    # What a person does by hand: type the code the authenticator app shows. The login's code is
    # the next step's, as the session says to wait for it.
    authenticator = (
        f"$({sys.executable} -c 'import json, pyotp, time;"
        ' print(pyotp.TOTP(json.load(open("setup.json"))["secret"]).at(time.time() + {}))\')'
    )
    before_setup_code, before_login_code, rest = session.split("CODE=123456\n")
    script = "\n".join(
        [
            "set -e",
            before_setup_code + "CODE=" + authenticator.format(0),
            before_login_code + "CODE=" + authenticator.format(30),
            rest,
        ]
    )
    result = subprocess.run(
        ["bash", "-c", script], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    outputs = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert outputs[0] == '{"connected":false}'
    assert outputs[1] == "{}"
    assert outputs[2] == '{"connected":true}'
    assert '"accessToken"' in outputs[3] and '"refreshToken"' in outputs[3]
    assert "█" in result.stdout, "the QR code is drawn in the terminal"


def test_the_terminal_qr_code_reads_back_as_its_text() -> None:
    text = "otpauth://totp/Example%20Auth:demo?secret=JBSWY3DPEHPK3PXP&issuer=Example%20Auth"
    upper = {"█": True, "▀": True, "▄": False, " ": False}
    lower = {"█": True, "▀": False, "▄": True, " ": False}
    rows: list[list[bool]] = []
    for line in terminal_qr(text).splitlines():
        rows += [[upper[char] for char in line], [lower[char] for char in line]]
    image = Image.new("L", (len(rows[0]), len(rows)))
    image.putdata([255 if light else 0 for row in rows for light in row])
    image = image.resize((image.width * 4, image.height * 4), Image.Resampling.NEAREST)
    assert [symbol.text for symbol in zxingcpp.read_barcodes(image)] == [text]
