"""The smoke test of a built wheel, installed alone (not editable) in a clean venv.

``.ci/package`` runs it with that venv's Python from an empty temporary directory, so nothing of
the source tree can be imported by accident. It checks what a stranger who runs
``pip install Flask-UCloud-2FA`` gets: the package and its license, a version that matches the
metadata, its templates, ``openapi.json`` and compiled catalogues, and no development tool.

Run once in the venv of the wheel alone, where pages and errors are English whatever the
request's ``Accept-Language``, and once more after the ``babel`` extra is installed there, where
they are Danish and German.
"""

from __future__ import annotations

import importlib.util
import re
import sys
import sysconfig
from importlib import metadata
from pathlib import Path
from typing import Any

DISTRIBUTION = "Flask-UCloud-2FA"
#: Tools that must never come with the package, besides everything its dev extra lists.
DEVELOPMENT_TOOLS = {"pytest", "sphinx", "playwright", "mypy", "ruff", "hypothesis", "bandit"}
NOW = 1_800_000_005.0
#: The languages of the catalogues the wheel ships, and what the challenge page and a JSON error
#: say in each (with the babel extra): the page's button, and the ``why`` of a body that is not
#: a JSON object.
LANGUAGES = {
    "en": ("Verify", "The body must be a JSON object."),
    "da": ("Bekræft", "Indholdet skal være et JSON-objekt."),
    "de": ("Bestätigen", "Der Inhalt muss ein JSON-Objekt sein."),
}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def check_installed_from_the_wheel() -> None:
    import flask_ucloud_2fa

    location = Path(flask_ucloud_2fa.__file__).resolve()
    site_packages = Path(sysconfig.get_paths()["purelib"]).resolve()
    assert site_packages in location.parents, f"imported from {location}, not from the venv"
    version = metadata.version(DISTRIBUTION)
    assert flask_ucloud_2fa.__version__ == version, (flask_ucloud_2fa.__version__, version)
    license_files = [
        file for file in metadata.distribution(DISTRIBUTION).files or [] if file.name == "LICENSE"
    ]
    assert license_files, "the wheel has no LICENSE"
    text = license_files[0].read_text()
    assert "BSD 3-Clause" in text and "The Flask-UCloud-2FA contributors" in text, text[:200]
    print(f"smoke: {DISTRIBUTION} {version} from {location.parent}")


def check_catalogues_shipped() -> None:
    """The wheel holds the compiled catalogues (the build compiles them), not their sources."""
    from importlib import resources

    translations = resources.files("flask_ucloud_2fa") / "translations"
    for language in sorted(set(LANGUAGES) - {"en"}):
        folder = translations / language / "LC_MESSAGES"
        assert (folder / "flask_ucloud_2fa.mo").is_file(), f"the wheel has no {language} catalogue"
        assert not (folder / "flask_ucloud_2fa.po").is_file(), "the wheel holds a .po file"
    print(f"smoke: compiled catalogues for {', '.join(sorted(set(LANGUAGES) - {'en'}))}")


def extra(name: str) -> set[str]:
    """The distributions the package's extra ``name`` lists."""
    return {
        canonical(re.split(r"[\s\[<>=!~;]", requirement, maxsplit=1)[0])
        for requirement in metadata.requires(DISTRIBUTION) or []
        if re.search(rf"extra\s*==\s*['\"]{name}['\"]", requirement)
    }


def check_no_development_tool() -> None:
    # The demo's packages are not tools, and a dependency may bring one of them (Authlib
    # brings joserfc): only what the dev extra adds to them must stay out.
    tools = (extra("dev") - extra("demo")) | DEVELOPMENT_TOOLS
    assert {"pytest", "sphinx", "build"} <= tools
    installed = {canonical(dist.metadata["Name"]) for dist in metadata.distributions()}
    unwanted = sorted(installed & tools)
    assert not unwanted, f"the wheel pulled in development tools: {unwanted}"
    print(f"smoke: {len(installed)} distributions installed, no development tool")


def check_an_app_runs() -> None:
    import pyotp
    from authlib.integrations.flask_oauth2 import ResourceProtector
    from cryptography.fernet import Fernet
    from flask import Flask
    from flask import jsonify
    from flask import request
    from flask_sqlalchemy import SQLAlchemy

    from flask_ucloud_2fa import LoginCompleted
    from flask_ucloud_2fa import TwoFactor
    from flask_ucloud_2fa import proof_from_json

    now = [NOW]
    db = SQLAlchemy()
    two_factor = TwoFactor(db=db, resource_protector=ResourceProtector(), clock=lambda: now[0])

    @two_factor.login_completed
    def finish_login(login: LoginCompleted) -> object:
        return jsonify(user=login.user_id, methods=login.methods)

    app = Flask("smoke", instance_path=str(Path.cwd() / "instance"))
    app.config.update(
        SECRET_KEY="smoke-test-secret-key",
        SQLALCHEMY_DATABASE_URI="sqlite://",
        UCLOUD_2FA_ENCRYPTION_KEYS=[Fernet.generate_key().decode()],
    )

    @app.post("/login")
    def login() -> object:
        return two_factor.login(request.form["user"])

    db.init_app(app)
    two_factor.init_app(app)
    with app.app_context():
        db.create_all()
        created = two_factor.start_setup("1", "alice")
        assert created.qr_code_b64_data.startswith("data:image/png;base64,")
        code = pyotp.TOTP(created.secret).at(now[0])
        two_factor.confirm_setup(
            created.challenge_id, proof_from_json({"verificationCode": code}), user_id="1"
        )

    client = app.test_client()
    document = client.get("/auth/2fa/openapi.json")
    assert document.status_code == 200, document.status_code
    assert document.json["openapi"].startswith("3.1"), document.json["openapi"]
    assert "/auth/2fa/status" in document.json["paths"], sorted(document.json["paths"])

    browser = {"Accept": "text/html"}
    redirect = client.post("/login", data={"user": "1"}, headers=browser)
    assert redirect.status_code in (302, 303), redirect.status_code
    page = client.get(redirect.headers["Location"], headers=browser)
    assert page.status_code == 200, page.status_code
    html = page.get_data(as_text=True)
    assert 'name="verificationCode"' in html, html
    challenge_id = re.search(r'name="challengeId" value="([^"]+)"', html)
    csrf_token = re.search(r'name="csrfToken" value="([^"]+)"', html)
    assert challenge_id and csrf_token, html
    check_languages(client, redirect.headers["Location"])

    now[0] += 30
    answer = client.post(
        "/auth/2fa/challenge/form",
        data={
            "challengeId": challenge_id[1],
            "csrfToken": csrf_token[1],
            "verificationCode": pyotp.TOTP(created.secret).at(now[0]),
        },
        headers=browser,
    )
    assert answer.json == {"user": "1", "methods": ["pwd", "otp"]}, answer.get_data(as_text=True)
    print("smoke: setup, challenge page, login and openapi.json work on SQLite")


def check_languages(client: Any, challenge_page: str) -> None:
    """With Flask-Babel (the babel extra), the challenge page and the JSON errors are in the
    language the request accepts; without it, English. ``errorCode`` is the same in both."""
    translated = importlib.util.find_spec("flask_babel") is not None
    for language in LANGUAGES:
        expected = language if translated else "en"
        button, why = LANGUAGES[expected]
        headers = {"Accept": "text/html", "Accept-Language": language}
        html = client.get(challenge_page, headers=headers).get_data(as_text=True)
        assert f'<html lang="{expected}">' in html, html[:200]
        assert f'<button type="submit">{button}</button>' in html, html
        error = client.post("/auth/2fa/challenge", data="[]", headers=headers)
        assert error.status_code == 400, error.status_code
        assert error.json["errorCode"] == "BAD_REQUEST", error.json
        assert error.json["why"] == why, error.json
    said = "in Danish and German" if translated else "in English only (no Flask-Babel)"
    print(f"smoke: the challenge page and the JSON errors {said}")


def main() -> None:
    check_installed_from_the_wheel()
    check_catalogues_shipped()
    check_no_development_tool()
    check_an_app_runs()
    print("smoke: passed")


if __name__ == "__main__":
    sys.exit(main())
