"""``make demo`` end to end: the printed curl session, pasted into bash from any directory,
walks the whole flow and leaves nothing there; a second demo on a busy port says so and leaves
the running one alone."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import zxingcpp
from cryptography.fernet import Fernet
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from PIL import Image

from example_app.demo import PASSWORD
from example_app.demo import USERNAME
from example_app.demo import port_taken
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


@dataclass
class Demo:
    """A running demo: what it printed up to the session's end, and how it was started."""

    lines: list[str]
    port: int
    database: Path
    environment: dict[str, str]

    def command(self, port: int) -> list[str]:
        """The command line of a demo on ``port`` and this demo's database."""
        return [
            sys.executable,
            "-m",
            "example_app.demo",
            "--port",
            str(port),
            "--database",
            f"sqlite:///{self.database}",
        ]


@pytest.fixture
def demo(tmp_path: Path) -> Iterator[Demo]:
    """The demo server on a free port, started in ``tmp_path``; yields it once it listens."""
    started = Demo([], free_port(), tmp_path / "demo.sqlite", {**os.environ, **_keys()})
    started.environment["PYTHONPATH"] = str(REPO)
    process = subprocess.Popen(
        started.command(started.port),
        cwd=tmp_path,
        env=started.environment,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    assert process.stdout is not None
    lines = started.lines
    try:
        for line in process.stdout:
            lines.append(line)
            if line.startswith("Stop the server"):
                break
        # The server listens once Werkzeug says so; everything after the session is its log.
        for line in process.stdout:
            if "Running on" in line:
                break
        yield started
    finally:
        process.terminate()
        process.wait(timeout=10)
        process.stdout.close()


def test_the_printed_curl_session_connects_2fa_and_then_asks_for_a_code(
    demo: Demo, tmp_path: Path
) -> None:
    if shutil.which("curl") is None:
        require_service("curl is not installed")
    text = "".join(demo.lines)
    session = text[text.index("# 0.") : text.index("Stop the server")]
    python = re.search(r"^PYTHON=(.+)$", session, flags=re.MULTILINE)
    assert python is not None and Path(python[1]).is_absolute(), "paste it in any directory"
    # What a person does by hand: type the code the authenticator app shows. The login's code is
    # the next step's, as the session says to wait for it.
    authenticator = (
        f"$({sys.executable} -c 'import json, pyotp, sys, time; print(pyotp.TOTP(json.load("
        'open(sys.argv[1]))["secret"]).at(time.time() + {}))\' "$DEMO_DIR/setup.json")'
    )
    before_setup_code, before_login_code, rest = session.split("CODE=123456\n")
    before_cleanup, cleanup = rest.split("# 6.")
    script = "\n".join(
        [
            "set -e",
            before_setup_code + "CODE=" + authenticator.format(0),
            before_login_code + "CODE=" + authenticator.format(30),
            before_cleanup,
            # What the session keeps, and where: its own directory, for nobody else to read.
            '"$PYTHON" -c \'import os, sys; kept = sys.argv[1];'
            ' print("kept:", oct(os.stat(kept).st_mode & 0o777), *os.listdir(kept))\' "$DEMO_DIR"',
            "# 6." + cleanup,
        ]
    )
    # Pasted in a directory of its own, neither the repository nor the one the demo started in.
    elsewhere, temporary = tmp_path / "elsewhere", tmp_path / "tmp"
    elsewhere.mkdir()
    temporary.mkdir()
    result = subprocess.run(
        ["bash", "-c", script],
        cwd=elsewhere,
        env={**os.environ, "TMPDIR": str(temporary)},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    outputs = [line for line in result.stdout.splitlines() if line.startswith("{")]
    assert outputs[0] == '{"connected":false}'
    assert outputs[1] == "{}"
    assert outputs[2] == '{"connected":true}'
    assert '"accessToken"' in outputs[3] and '"refreshToken"' in outputs[3]
    assert "█" in result.stdout, "the QR code is drawn in the terminal"
    assert "kept: 0o700 setup.json" in result.stdout.splitlines()
    assert list(elsewhere.iterdir()) == [], "the session writes nothing where it is pasted"
    assert list(temporary.iterdir()) == [], "the session's last step removes its directory"


def _log_in(port: int) -> dict[str, object]:
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/auth/login",
        data=json.dumps({"username": USERNAME, "password": PASSWORD}).encode(),
        headers={"Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=10) as response:  # nosec B310 - loopback
        answer: dict[str, object] = json.load(response)
        return answer


def test_a_second_demo_on_the_busy_port_says_so_and_leaves_the_first_alone(
    demo: Demo, tmp_path: Path
) -> None:
    before = hashlib.sha256(demo.database.read_bytes()).hexdigest()
    second = subprocess.run(
        demo.command(demo.port),
        cwd=tmp_path,
        env=demo.environment,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert second.returncode == 1
    assert second.stdout == ""
    assert second.stderr == (
        f"Port {demo.port} on 127.0.0.1 is already in use (another demo?): nothing was started"
        " and no database was touched. Stop what listens there, or choose another port:"
        f" make demo PORT={demo.port + 1}\n"
    )
    assert hashlib.sha256(demo.database.read_bytes()).hexdigest() == before
    # The first demo still serves its demo user.
    assert "accessToken" in _log_in(demo.port)


@pytest.mark.parametrize("listening_on", ["127.0.0.1", "0.0.0.0"])
def test_a_port_is_taken_by_a_server_on_that_address_or_on_every_address(
    listening_on: str,
) -> None:
    with socket.socket() as server:
        server.bind((listening_on, 0))
        server.listen()
        port = server.getsockname()[1]
        assert port_taken("127.0.0.1", port)
    assert not port_taken("127.0.0.1", free_port())


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


def test_make_demo_installs_the_demo_extra_and_make_test_the_dev_extra(tmp_path: Path) -> None:
    if shutil.which("make") is None:
        require_service("make is not installed")
    venv = tmp_path / "venv"
    plans = {
        target: subprocess.run(
            ["make", "-n", target, f"VENV={venv}"],
            cwd=REPO,
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for target in ("demo", "test")
    }
    assert f"-m venv {venv}" in plans["demo"]
    assert "pip install --quiet -e '.[demo]'" in plans["demo"]
    assert "[dev]" not in plans["demo"]
    assert "-m example_app.demo --host 127.0.0.1 --port 5000" in plans["demo"]
    assert "pip install --quiet -e '.[dev]'" in plans["test"]
    # The dev extra holds the demo's packages: installing it counts as the demo's install too.
    assert f"touch {venv}/.installed {venv}/.demo-installed" in plans["test"]
