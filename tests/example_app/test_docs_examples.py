"""The JSON flows of the HTTP API page (``docs/api.rst``), run against the example app.

Each test performs one flow and compares it with its recording in ``docs/examples/``: the
request/response pairs (``<flow>.json``) and the same flow written as curl, Python (requests) and
TypeScript (fetch) (``<flow>.sh``, ``<flow>.py``, ``<flow>.ts``), which the page shows as copies
(``test_user_facing_files.py`` keeps them equal). Secrets, challenge ids, tokens, codes and QR
images are replaced by placeholders, so a recording changes only when a route's answer does. Set
``UCLOUD_2FA_RECORD_EXAMPLES=1`` to rewrite the recordings and their copies in ``docs/api.rst``
after a deliberate change, then review the diff of ``docs/``.
"""

from __future__ import annotations

import json
import os
import re
import shlex
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient

from helpers import FakeClock
from helpers import TestUser
from helpers import code_for

EXAMPLES = Path(__file__).resolve().parents[2] / "docs" / "examples"
RECORD = os.environ.get("UCLOUD_2FA_RECORD_EXAMPLES") == "1"
HOST = "http://127.0.0.1:5000"
#: Response headers worth showing; the rest (Content-Length, Set-Cookie, ...) are noise.
SHOWN_HEADERS = ("Retry-After", "WWW-Authenticate")
#: What each kind of secret value is shown as.
PLACEHOLDER = {
    "secret": "SECRET",
    "challenge": "CHALLENGE_ID",
    "access": "ACCESS_TOKEN",
    "refresh": "REFRESH_TOKEN",
    "csrf": "CSRF_TOKEN",
    "password": "PASSWORD",
    "recovery": "RECOVERY_CODE",
}


class Recorder:
    """Performs requests with the test client and keeps them, normalised, for the docs."""

    def __init__(self, client: FlaskClient) -> None:
        self.client = client
        self.exchanges: list[dict[str, Any]] = []
        self.names: dict[str, str] = {}
        self.codes: dict[str, int] = {}
        self.counts: dict[str, int] = {}

    def name(self, value: str, kind: str) -> str:
        """Register ``value`` as a secret of ``kind``; the placeholder that replaces it."""
        if value not in self.names:
            self.counts[kind] = self.counts.get(kind, 0) + 1
            number = self.counts[kind]
            suffix = "" if number == 1 else f"_{number}"
            self.names[value] = f"<{PLACEHOLDER[kind]}{suffix}>"
        return self.names[value]

    def code(self, value: str, shown: int) -> int:
        """A TOTP code to send (as a JSON integer, like UCloud), shown as ``shown``."""
        self.codes[value] = shown
        return int(value)

    def __call__(
        self,
        method: str,
        path: str,
        *,
        note: str,
        token: str | None = None,
        body: dict[str, Any] | None = None,
    ) -> Any:
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        response = self.client.open(path, method=method, headers=headers, json=body)
        data = response.get_json()
        self._learn(data)
        request: dict[str, Any] = {"method": method, "path": path}
        if token is not None:
            request["headers"] = {"Authorization": f"Bearer {token}"}
        if body is not None:
            request["json"] = body
        recorded: dict[str, Any] = {"status": response.status_code}
        shown = {key: response.headers[key] for key in SHOWN_HEADERS if key in response.headers}
        if shown:
            recorded["headers"] = shown
        recorded["json"] = data
        self.exchanges.append(
            {
                "note": note,
                "request": self._normalise(request),
                "response": self._normalise(recorded),
            }
        )
        return data

    def _learn(self, data: Any) -> None:
        """Register the secrets a response hands out."""
        if not isinstance(data, dict):
            return
        for key, kind in (
            ("secret", "secret"),
            ("challengeId", "challenge"),
            ("2fa", "challenge"),
            ("accessToken", "access"),
            ("refreshToken", "refresh"),
            ("csrfToken", "csrf"),
        ):
            if isinstance(data.get(key), str):
                self.name(data[key], kind)
        for code in data.get("recoveryCodes", []):
            self.name(code, "recovery")

    def _normalise(self, value: Any, key: str | None = None) -> Any:
        if isinstance(value, dict):
            return {k: self._normalise(v, k) for k, v in value.items()}
        if isinstance(value, list):
            return [self._normalise(v) for v in value]
        if key == "verificationCode":
            return self.codes[f"{value:06d}" if isinstance(value, int) else value]
        if key == "expiresAt":
            return 1800003600000
        if key == "qrCodeB64Data":
            assert value.startswith("data:image/png;base64,")
            return "data:image/png;base64,<QR_CODE_PNG>"
        if isinstance(value, str):
            for secret, placeholder in sorted(self.names.items(), key=lambda item: -len(item[0])):
                value = value.replace(secret, placeholder)
        return value


def check_recording(flow: str, exchanges: list[dict[str, Any]]) -> None:
    """Compare (or, with UCLOUD_2FA_RECORD_EXAMPLES=1, write) the flow's four files."""
    files = {
        f"{flow}.json": json.dumps(exchanges, indent=2) + "\n",
        f"{flow}.sh": render_curl(exchanges),
        f"{flow}.py": render_python(exchanges),
        f"{flow}.ts": render_typescript(exchanges),
    }
    if RECORD:
        EXAMPLES.mkdir(parents=True, exist_ok=True)
        for name, text in files.items():
            (EXAMPLES / name).write_text(text)
        return
    for name, text in files.items():
        path = EXAMPLES / name
        assert path.exists(), f"{path} is missing: run with UCLOUD_2FA_RECORD_EXAMPLES=1"
        assert path.read_text() == text, (
            f"docs/examples/{name} no longer matches what the example app answers. If the change"
            " is deliberate, run the tests with UCLOUD_2FA_RECORD_EXAMPLES=1 and update"
            " docs/api.rst where it describes the answer."
        )


def _comment(prefix: str, exchange: dict[str, Any]) -> list[str]:
    response = exchange["response"]
    lines = [f"{prefix} {response['status']}"]
    for header, value in response.get("headers", {}).items():
        lines.append(f"{prefix} {header}: {value}")
    lines += [f"{prefix} {line}" for line in json.dumps(response["json"], indent=4).splitlines()]
    return lines


def render_curl(exchanges: list[dict[str, Any]]) -> str:
    lines = [f"host={HOST}", ""]
    for exchange in exchanges:
        request = exchange["request"]
        lines.append(f"# {exchange['note']}")
        command = f"curl -X{request['method']}"
        for header, value in request.get("headers", {}).items():
            command += " -H " + shlex.quote(f"{header}: {value}")
        if "json" in request:
            command += " -H 'Content-Type: application/json'"
        command += f' "$host{request["path"]}"'
        if "json" in request:
            command += " -d " + shlex.quote(json.dumps(request["json"]))
        lines.append(command)
        lines += _comment("#", exchange)
        lines.append("")
    return "\n".join(lines)


def render_python(exchanges: list[dict[str, Any]]) -> str:
    lines = ["import requests", "", f'host = "{HOST}"', ""]
    for exchange in exchanges:
        request = exchange["request"]
        lines.append(f"# {exchange['note']}")
        lines.append(f"response = requests.{request['method'].lower()}(")
        lines.append(f'    f"{{host}}{request["path"]}",')
        for argument in ("headers", "json"):
            if argument in request:
                lines.append(f"    {argument}={_python_literal(request[argument])},")
        lines.append(")")
        lines.append("print(response.status_code, response.json())")
        lines += _comment("#", exchange)
        lines.append("")
    return "\n".join(lines)


def _python_literal(value: Any) -> str:
    """``value`` as Python source: JSON is Python for strings, numbers, lists and objects."""
    text = json.dumps(value)
    assert not re.search(r"\b(true|false|null)\b", text), f"not a Python literal: {text}"
    return text


def render_typescript(exchanges: list[dict[str, Any]]) -> str:
    lines = [f'const host = "{HOST}";', ""]
    for number, exchange in enumerate(exchanges, start=1):
        request = exchange["request"]
        lines.append(f"// {exchange['note']}")
        headers = dict(request.get("headers", {}))
        if "json" in request:
            headers["Content-Type"] = "application/json"
        options = [f'method: "{request["method"]}"']
        if headers:
            options.append(f"headers: {json.dumps(headers)}")
        if "json" in request:
            options.append(f"body: JSON.stringify({json.dumps(request['json'])})")
        lines.append(
            f"const response{number} = await fetch(`${{host}}{request['path']}`, "
            f"{{ {', '.join(options)} }});"
        )
        lines.append(f"console.log(response{number}.status, await response{number}.json());")
        lines += _comment("//", exchange)
        lines.append("")
    return "\n".join(lines)


# -- the flows ---------------------------------------------------------------------------------


def log_in(call: Recorder, user: TestUser, note: str) -> Any:
    call.name(user.password, "password")
    return call(
        "POST",
        "/auth/login",
        note=note,
        body={"username": user.username, "password": user.password},
    )


def wrong_code(secret: str, clock: FakeClock) -> str:
    """A code the authenticator app does not show now, nor one step before or after."""
    accepted = {code_for(secret, clock, offset) for offset in (-1, 0, 1)}
    return next(f"{n:06d}" for n in range(111111, 999999) if f"{n:06d}" not in accepted)


def connect(client: FlaskClient, user: TestUser, clock: FakeClock) -> str:
    """Connect 2FA for ``user`` without recording it; the secret."""
    setup = client.post("/auth/2fa", headers=user.headers).json
    answer = client.post(
        "/auth/2fa/challenge",
        headers=user.headers,
        json={
            "challengeId": setup["challengeId"],
            "verificationCode": code_for(setup["secret"], clock),
        },
    )
    assert answer.status_code == 200, answer.json
    clock.advance(30)
    return str(setup["secret"])


def test_setup_flow(client: FlaskClient, user: TestUser, clock: FakeClock) -> None:
    call = Recorder(client)
    tokens = log_in(call, user, "Log in: no 2FA yet, so the password alone gives tokens.")
    token = tokens["accessToken"]
    assert call("GET", "/auth/2fa/status", note="Is 2FA connected?", token=token) == {
        "connected": False
    }
    created = call("POST", "/auth/2fa", note="Start the setup.", token=token)
    code = call.code(code_for(created["secret"], clock), 123456)
    answer = call(
        "POST",
        "/auth/2fa/challenge",
        note="Answer the setup challenge with the code the authenticator app shows.",
        token=token,
        body={"challengeId": created["challengeId"], "verificationCode": code},
    )
    assert answer == {}
    assert call("GET", "/auth/2fa/status", note="Connected now.", token=token) == {
        "connected": True
    }
    check_recording("setup", call.exchanges)


def test_login_flow(client: FlaskClient, user: TestUser, clock: FakeClock) -> None:
    secret = connect(client, user, clock)
    call = Recorder(client)
    challenge = log_in(call, user, "Log in: the password is right, and 2FA is connected.")
    wrong = call.code(wrong_code(secret, clock), 111111)
    refused = call(
        "POST",
        "/auth/2fa/challenge",
        note="A wrong code: the challenge survives, with fewer attempts left.",
        body={"challengeId": challenge["2fa"], "verificationCode": wrong},
    )
    assert refused["errorCode"] == "INVALID_CODE"
    right = call.code(code_for(secret, clock), 123456)
    tokens = call(
        "POST",
        "/auth/2fa/challenge",
        note="The right code: the login completes (the example app issues tokens).",
        body={"challengeId": challenge["2fa"], "verificationCode": right},
    )
    me = call(
        "GET", "/api/me", note="The new token records both factors.", token=tokens["accessToken"]
    )
    assert me["amr"] == ["pwd", "otp"]
    check_recording("login", call.exchanges)


def log_in_with_a_code(call: Recorder, user: TestUser, secret: str, clock: FakeClock) -> str:
    """Record a login with the password and a code; its access token. Managing 2FA needs a
    token from such a login. The clock moves a step on, so the code is spent."""
    challenge = log_in(call, user, "Log in with the password...")
    tokens = call(
        "POST",
        "/auth/2fa/challenge",
        note="...and a code: managing 2FA needs a token from a login that used it.",
        body={
            "challengeId": challenge["2fa"],
            "verificationCode": call.code(code_for(secret, clock), 123456),
        },
    )
    clock.advance(30)
    token: str = tokens["accessToken"]
    return token


def test_recovery_codes_flow(client: FlaskClient, user: TestUser, clock: FakeClock) -> None:
    secret = connect(client, user, clock)
    call = Recorder(client)
    token = log_in_with_a_code(call, user, secret, clock)
    codes = call(
        "POST",
        "/auth/2fa/recovery-codes",
        note="New recovery codes, for a current code; show them once, then forget them.",
        token=token,
        body={"verificationCode": call.code(code_for(secret, clock), 234567)},
    )["recoveryCodes"]
    challenge = log_in(call, user, "Later, without the phone: log in.")
    tokens = call(
        "POST",
        "/auth/2fa/challenge",
        note="Answer the login challenge with a recovery code; it works once.",
        body={"challengeId": challenge["2fa"], "recoveryCode": codes[0]},
    )
    assert "accessToken" in tokens
    check_recording("recovery-codes", call.exchanges)


def test_disable_flow(client: FlaskClient, user: TestUser, clock: FakeClock) -> None:
    secret = connect(client, user, clock)
    call = Recorder(client)
    token = log_in_with_a_code(call, user, secret, clock)
    code = call.code(code_for(secret, clock), 234567)
    assert (
        call(
            "POST",
            "/auth/2fa/disable",
            note="Remove 2FA, proving the second factor (a code or a recovery code).",
            token=token,
            body={"verificationCode": code},
        )
        == {}
    )
    call("GET", "/auth/2fa/status", note="Not connected any more.", token=token)
    refused = call(
        "POST",
        "/auth/2fa/disable",
        note="Nothing left to disable.",
        token=token,
        body={"verificationCode": code},
    )
    assert refused["errorCode"] == "NOT_CONNECTED"
    check_recording("disable", call.exchanges)


def test_errors_flow(client: FlaskClient, user: TestUser, clock: FakeClock) -> None:
    secret = connect(client, user, clock)
    call = Recorder(client)
    call.name(user.token, "access")
    call("GET", "/auth/2fa/status", note="No bearer token.")
    call.name("not-a-token", "access")
    call("GET", "/auth/2fa/status", note="A token the server does not know.", token="not-a-token")
    call(
        "POST",
        "/auth/2fa",
        note="Setting up again while connected is refused; the credential is untouched.",
        token=user.token,
    )
    call.name("x" * 43, "challenge")
    call.codes["1234567"] = 1234567
    call(
        "POST",
        "/auth/2fa/challenge",
        note="A code that is not six digits.",
        body={"challengeId": "x" * 43, "verificationCode": 1234567},
    )
    call.code("000000", 123456)
    call(
        "POST",
        "/auth/2fa/challenge",
        note="An unknown, expired, used or burned challenge.",
        body={"challengeId": "x" * 43, "verificationCode": 0},
    )
    call(
        "GET",
        "/api/me/security",
        note="Step-up (example app): a password-only token of a user with 2FA.",
        token=user.token,
    )
    # Five wrong answers burn a challenge and start the user's back-off.
    challenge = client.post(
        "/auth/login", json={"username": user.username, "password": user.password}
    ).json["2fa"]
    wrong = wrong_code(secret, clock)
    for _ in range(5):
        client.post(
            "/auth/2fa/challenge", json={"challengeId": challenge, "verificationCode": wrong}
        )
    challenge = client.post(
        "/auth/login", json={"username": user.username, "password": user.password}
    ).json["2fa"]
    call.name(challenge, "challenge")
    call.code(code_for(secret, clock), 123456)
    blocked = call(
        "POST",
        "/auth/2fa/challenge",
        note="After 5 consecutive wrong codes answers are slowed down: wait Retry-After seconds.",
        body={"challengeId": challenge, "verificationCode": int(code_for(secret, clock))},
    )
    assert blocked["errorCode"] == "TOO_MANY_ATTEMPTS"
    check_recording("errors", call.exchanges)


@pytest.mark.app_config(UCLOUD_2FA_LOCKOUT_AFTER=6)
def test_lockout_flow(client: FlaskClient, user: TestUser, clock: FakeClock) -> None:
    secret = connect(client, user, clock)
    call = Recorder(client)
    for _ in range(5):
        challenge = client.post(
            "/auth/login", json={"username": user.username, "password": user.password}
        ).json["2fa"]
        client.post(
            "/auth/2fa/challenge",
            json={"challengeId": challenge, "verificationCode": wrong_code(secret, clock)},
        )
        clock.advance(60)
    wrong = wrong_code(secret, clock)
    challenge = log_in(call, user, "A login after 5 consecutive wrong codes.")
    call.code(wrong, 111111)
    call(
        "POST",
        "/auth/2fa/challenge",
        note="The 6th wrong code in a row (UCLOUD_2FA_LOCKOUT_AFTER=6 here; 100 by default).",
        body={"challengeId": challenge["2fa"], "verificationCode": int(wrong)},
    )
    call.code(code_for(secret, clock), 123456)
    locked = call(
        "POST",
        "/auth/2fa/challenge",
        note="Locked out: even the right code is refused until the lock-out ends.",
        body={"challengeId": challenge["2fa"], "verificationCode": int(code_for(secret, clock))},
    )
    assert locked["errorCode"] == "LOCKED_OUT"
    check_recording("lockout", call.exchanges)
