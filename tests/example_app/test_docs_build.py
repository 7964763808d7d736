"""The documentation builds with warnings as errors, documents every config key, route and
error code, and its quickstart app works as shown."""

from __future__ import annotations

import importlib.util
import json
import re
import shutil
import subprocess
import sys
from pathlib import Path
from types import ModuleType

import pyotp
import pytest
from cryptography.fernet import Fernet

import flask_ucloud_2fa
from flask_ucloud_2fa.config import DEFAULTS

from helpers import require_service

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"


def test_docs_build_without_warnings(tmp_path: Path) -> None:
    if shutil.which("dot") is None:
        require_service("Graphviz 'dot' is not installed (apt-get install graphviz)")
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "sphinx",
            "-W",
            "--keep-going",
            "-q",
            "-b",
            "html",
            "-d",
            str(tmp_path / "doctrees"),
            str(DOCS),
            str(tmp_path / "html"),
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, f"make docs fails:\n{result.stdout}\n{result.stderr}"
    assert (tmp_path / "html" / "api.html").exists()


def test_configuration_page_documents_exactly_the_config_keys() -> None:
    text = (DOCS / "configuration.rst").read_text()
    documented = re.findall(r"^\.\. data:: (\S+)$", text, flags=re.MULTILINE)
    assert sorted(documented) == sorted(DEFAULTS)


def test_api_page_documents_every_route() -> None:
    text = (DOCS / "api.rst").read_text()
    document = json.loads((ROOT / "flask_ucloud_2fa" / "openapi.json").read_text())
    for path, operations in document["paths"].items():
        for method in operations:
            heading = f"``{method.upper()} {path}"
            assert heading in text, f"docs/api.rst has no section for {method.upper()} {path}"


#: The errors Werkzeug raises under the extension's prefix (routing, the body limit); their
#: ``errorCode`` comes from the HTTP layer's fixed table.
WERKZEUG_ERRORS = {404, 405, 413}


def _answerable_errors() -> set[tuple[int, str]]:
    """Every status and ``errorCode`` the extension's routes can answer: its error classes,
    the resource protector's errors and the HTTP errors under its prefix."""
    from authlib.oauth2.rfc6749 import errors as oauth2_errors
    from authlib.oauth2.rfc6750 import errors as bearer_errors

    from flask_ucloud_2fa.http import HTTP_ERROR_CODES
    from flask_ucloud_2fa.http import TOKEN_ERROR_CODES

    ours = {
        (error.status_code, error.error_code)
        for error in vars(flask_ucloud_2fa).values()
        if isinstance(error, type)
        and issubclass(error, flask_ucloud_2fa.TwoFactorError)
        and error is not flask_ucloud_2fa.TwoFactorError
    }
    authlib = [
        *vars(oauth2_errors).values(),
        *vars(bearer_errors).values(),
    ]
    protector = {
        (error.status_code, TOKEN_ERROR_CODES[error.error])
        for error in authlib
        if isinstance(error, type) and getattr(error, "error", None) in TOKEN_ERROR_CODES
    }
    werkzeug = {(status, HTTP_ERROR_CODES[status]) for status in WERKZEUG_ERRORS}
    return ours | protector | werkzeug


def _error_table() -> set[tuple[int, str]]:
    text = (DOCS / "api.rst").read_text()
    return {
        (int(status), code)
        for status, code in re.findall(r"^   \* - (\d{3})\n     - ``([A-Z_]+)``$", text, re.M)
    }


def test_api_page_error_table_is_every_error_the_routes_answer() -> None:
    answerable = _answerable_errors()
    assert {(401, "UNSUPPORTED_TOKEN_TYPE"), (403, "INSUFFICIENT_SCOPE")} <= answerable
    assert _error_table() == answerable


def _import_quickstart(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    monkeypatch.setenv("FLASK_SQLALCHEMY_DATABASE_URI", f"sqlite:///{tmp_path}/quickstart.sqlite")
    monkeypatch.setenv("FLASK_SECRET_KEY", "quickstart-test-secret-key")
    monkeypatch.setenv("FLASK_UCLOUD_2FA_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    spec = importlib.util.spec_from_file_location(
        "docs_quickstart_app", DOCS / "quickstart/app.py"
    )
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, spec.name, module)
    spec.loader.exec_module(module)
    return module


def test_quickstart_app_works_as_shown(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    quickstart = _import_quickstart(monkeypatch, tmp_path)
    now = [1_800_000_005.0]
    # The extension's clock (internal: TwoFactor(clock=...) is made at import, with the real one).
    monkeypatch.setattr(quickstart.two_factor, "clock", lambda: now[0])
    app = quickstart.app
    runner = app.test_cli_runner()
    created = runner.invoke(args=["create-user", "alice", "--password", "pw-alice"])
    assert created.exit_code == 0, created.output
    client = app.test_client()
    credentials = {"username": "alice", "password": "pw-alice"}

    # A body that is not JSON (no Content-Type) is told so, not answered "wrong password".
    unsent = client.post("/auth/login", data=json.dumps(credentials))
    assert (unsent.status_code, unsent.json["errorCode"]) == (400, "BAD_REQUEST")
    assert "JSON object with username and password" in unsent.json["why"]
    token = client.post("/auth/login", json=credentials).json["accessToken"]
    headers = {"Authorization": f"Bearer {token}"}
    assert client.get("/auth/2fa/status", headers=headers).json == {"connected": False}
    setup = client.post("/auth/2fa", headers=headers).json
    assert "otpauth://totp/docs_quickstart_app:alice?" in setup["otpAuthUri"]
    code = pyotp.TOTP(setup["secret"]).at(now[0])
    answer = client.post(
        "/auth/2fa/challenge",
        headers=headers,
        json={"challengeId": setup["challengeId"], "verificationCode": code},
    )
    assert answer.status_code == 200 and answer.json == {}

    now[0] += 30
    challenge = client.post("/auth/login", json=credentials).json["2fa"]
    code = pyotp.TOTP(setup["secret"]).at(now[0])
    tokens = client.post(
        "/auth/2fa/challenge", json={"challengeId": challenge, "verificationCode": code}
    ).json
    assert client.get(
        "/auth/2fa/status", headers={"Authorization": f"Bearer {tokens['accessToken']}"}
    ).json == {"connected": True}

    # Deleting the user deletes their tokens and 2FA: SQLite enforces the foreign keys.
    db, models = quickstart.db, quickstart.two_factor.models
    with app.app_context():
        db.session.execute(db.delete(quickstart.User))
        db.session.commit()
        for model in (quickstart.Token, models.Credential, models.Challenge, models.RecoveryCode):
            assert db.session.execute(db.select(db.func.count()).select_from(model)).scalar() == 0
        db.engine.dispose()
