"""The side-by-side comparison: our 2FA routes against Flask-Security-Too's two-factor.

Run it with ``.venv/bin/python bench/compare.py [--quick] [--output PATH] [--profile]`` (about
30 s, 10 s with ``--quick``) after installing Flask-Security-Too and ``qrcode``; when they are
missing, it prints how to install them and exits 0.

Two apps run in one process, each on its own temporary SQLite file, each called through Flask's
test client, and their routes are timed in the same interleaved rounds with ``bench/run.py``'s
``Case`` and ``measure``:

- setup: Flask-Security-Too's ``POST /tf-setup`` (JSON, ``setup=authenticator``) for a
  logged-in user, which returns the secret, the otpauth URI and the QR code, against our
  ``POST /auth/2fa`` for a user without 2FA, as ``run.py`` times it;
- validate: Flask-Security-Too's ``POST /tf-validate`` with a correct code, each call on a fresh
  password login (a new test client, logged in untimed), against a browser answering a fresh
  login challenge on our challenge page's form (``POST /auth/2fa/challenge/form``) with the code
  of a new time step: both logins end in a session cookie, like for like.

The two apps do different amounts of work, and the comparison keeps each one's own defaults:
Flask-Security-Too keeps no last-used time step (its ``Totp`` leaves replay protection to the
integrator) and counts no attempts, and its login ends in a session cookie; ours spends the
time step and the challenge in the database. For context, our JSON answer is timed too, as
``run.py`` times it: with the example app's ``login_completed`` hook, which issues tokens (an
``INSERT`` Flask-Security-Too's login does not do), and with a hook that issues nothing (the
extension's own share). Flask-Security-Too's password hash is
``plaintext`` so that the untimed logins are quick: the first factor is not what is compared.

The target is a speed-up (Flask-Security-Too's median over ours) of at least 10x on each; the
printed table and each row of the results say whether the row is like for like, and only those
rows are held to the target (the JSON answers are context). After the timings, a few calls of
each Flask-Security-Too route run under ``cProfile`` to show where their time goes
(``--profile`` prints the whole listing). The figures go to the ``flask_security`` section of
``bench/results.json``. Like ``run.py``, it only reports: it exits 0 whatever the timings, and
non-zero only when a route does not answer as it should.
"""

from __future__ import annotations

import argparse
import cProfile
import importlib.metadata
import importlib.util
import os
import pstats
import re
import secrets
import sys
import tempfile
import time
import warnings
from dataclasses import dataclass
from dataclasses import replace
from pathlib import Path
from typing import Any

import pyotp
from flask import Flask
from flask.testing import FlaskClient
from run import RESULTS
from run import Case
from run import FakeClock
from run import Figure
from run import answer_cases
from run import build_app
from run import connect
from run import make_user
from run import measure
from run import setup_case
from run import user_id_of
from run import write_section

import example_app

TARGET = 10.0
INSTALL = '.venv/bin/pip install "Flask-Security-Too[fsqla]>=5.9.2" "qrcode>=8.2"'
# Flask-Security-Too's forms use WTForms APIs that WTForms has deprecated; not our concern here.
NOISY_MODULES = r"(wtforms|flask_wtf|flask_security|passlib|flask_login|flask_principal)\b"


def fst_version() -> str | None:
    """Flask-Security-Too's version, or ``None`` when it or its QR code encoder is missing."""
    if any(importlib.util.find_spec(name) is None for name in ("flask_security", "qrcode")):
        return None
    return importlib.metadata.version("Flask-Security-Too")


def expect(response: Any, path: str) -> dict[str, Any]:
    """The JSON ``response`` object of a 200 answer from Flask-Security-Too.

    :raises RuntimeError: any other answer: the comparison would time the wrong thing.
    """
    if response.status_code != 200:
        raise RuntimeError(f"POST {path} answered {response.status_code}: {response.get_data()!r}")
    body: dict[str, Any] = response.json["response"]
    return body


def build_fst_app(database_uri: str, issuer: str) -> Flask:
    """Flask-Security-Too's documented two-factor app, with the authenticator method only.

    The models are its ``fsqla_v3`` mixins on a Flask-SQLAlchemy ``db`` of its own, as in its
    "Basic SQLAlchemy Two-Factor Application".
    """
    from flask_security import Security
    from flask_security import SQLAlchemyUserDatastore
    from flask_security.models import fsqla_v3 as fsqla
    from flask_sqlalchemy import SQLAlchemy
    from passlib.totp import generate_secret

    app = Flask("flask_security_bench")
    app.config.update(
        TESTING=True,
        SECRET_KEY=secrets.token_urlsafe(32),
        SQLALCHEMY_DATABASE_URI=database_uri,
        WTF_CSRF_ENABLED=False,  # the test client sends no CSRF token
        SECURITY_PASSWORD_HASH="plaintext",
        SECURITY_TWO_FACTOR=True,
        SECURITY_TWO_FACTOR_ENABLED_METHODS=["authenticator"],
        # The keys that encrypt the TOTP secrets, made the way its docs say.
        SECURITY_TOTP_SECRETS={"1": generate_secret()},
        # Our issuer, so that both QR codes encode URIs of about the same length.
        SECURITY_TOTP_ISSUER=issuer,
    )
    db = SQLAlchemy(app)
    fsqla.FsModels.set_db_info(db)

    class Role(db.Model, fsqla.FsRoleMixin):  # type: ignore[name-defined,misc]
        pass

    class User(db.Model, fsqla.FsUserMixin):  # type: ignore[name-defined,misc]
        pass

    # Unused here, but the user model refers to it when the webauthn package is installed.
    class WebAuthn(db.Model, fsqla.FsWebAuthnMixin):  # type: ignore[name-defined,misc]
        pass

    Security(app, SQLAlchemyUserDatastore(db, User, Role))
    with app.app_context():
        db.create_all()
    return app


def fst_user(app: Flask, email: str) -> dict[str, str]:
    """A new Flask-Security-Too user; its login body."""
    from flask_security import hash_password

    password = secrets.token_urlsafe(12)
    with app.app_context():
        datastore = app.extensions["security"].datastore
        datastore.create_user(email=email, password=hash_password(password))
        datastore.commit()
    return {"email": email, "password": password}


def fst_login(app: Flask, login: dict[str, str], two_factor: bool) -> FlaskClient:
    """A new client that has passed the password step; a second step is due if ``two_factor``."""
    client = app.test_client()
    answer = expect(client.post("/login", json=login), "/login")
    if answer.get("tf_required", False) is not two_factor:
        raise RuntimeError(f"POST /login: tf_required should be {two_factor}: {answer}")
    return client


def fst_setup(client: FlaskClient) -> dict[str, Any]:
    """Start authenticator setup; Flask-Security-Too's answer with the secret and QR code."""
    return expect(client.post("/tf-setup", json={"setup": "authenticator"}), "/tf-setup")


def fst_connect(app: Flask, login: dict[str, str]) -> str:
    """Set up and confirm authenticator 2FA through the routes; the base32 secret."""
    client = fst_login(app, login, two_factor=False)
    secret = str(fst_setup(client)["tf_authr_b32key"])
    expect(client.post("/tf-validate", json={"code": pyotp.TOTP(secret).now()}), "/tf-validate")
    return secret


def fst_cases(app: Flask, setups: int, validates: int) -> tuple[Case, Case]:
    """The setup and validate cases of Flask-Security-Too."""
    setup_client = fst_login(app, fst_user(app, "plain@example.com"), two_factor=False)
    validate_login = fst_user(app, "right@example.com")
    secret = fst_connect(app, validate_login)
    pending: dict[str, Any] = {}

    def setup() -> None:
        fst_setup(setup_client)

    def prepare_validate() -> None:
        # Flask-Security-Too accepts a code again (no last counter), and checks within
        # TWO_FACTOR_AUTHENTICATOR_VALIDITY (120 s): the code of now is right at the call.
        pending["client"] = fst_login(app, validate_login, two_factor=True)
        pending["code"] = pyotp.TOTP(secret).now()

    def validate() -> None:
        expect(
            pending["client"].post("/tf-validate", json={"code": pending["code"]}), "/tf-validate"
        )

    return (
        Case("fst_setup", "FST POST /tf-setup", setup, setups),
        Case("fst_validate", "FST POST /tf-validate", validate, validates, prepare_validate),
    )


def our_cases(app: Flask, clock: FakeClock, setups: int, answers: int) -> list[Case]:
    """Our setup and correct answers, as ``run.py`` builds them, and the browser login."""
    client = app.test_client()
    plain = make_user(app, client, "plain")
    secret = connect(client, make_user(app, client, "right"), clock)
    extension_only, with_tokens = answer_cases(app, client, clock, "right", secret, answers)
    return [
        replace(setup_case(client, plain, setups), key="our_setup", name="ours POST /auth/2fa"),
        browser_answer_case(app, clock, "right", secret, answers),
        replace(with_tokens, key="our_answer_json", name="  JSON + token INSERT"),
        replace(extension_only, key="our_answer_ext", name="  JSON, nothing issued"),
    ]


def browser_answer_case(
    app: Flask, clock: FakeClock, username: str, secret: str, number: int
) -> Case:
    """A browser's login challenge answered through the challenge page's form, with the code
    of a new time step: the example app's hook then sets the Flask session and redirects, as
    Flask-Security-Too's ``/tf-validate`` ends a login in a session cookie. Like for like."""
    user_id = user_id_of(app, username)
    browser: dict[str, FlaskClient] = {}
    form: dict[str, str] = {}

    def prepare() -> None:
        # A new browser for each login, as Flask-Security-Too's case has a new client: no
        # session cookie of an earlier login to read. The login step redirects it to the
        # challenge page with its binding cookie; the page's form carries the CSRF token.
        browser["client"] = client = app.test_client()
        clock.now += 30  # a new time step: the code below is unused
        step = client.post(f"/bench/login/{user_id}?browser=1", headers={"Accept": "text/html"})
        assert step.status_code == 302, step.status
        page = client.get(step.location).get_data(as_text=True)
        fields = dict(re.findall(r'name="(challengeId|csrfToken)" value="([^"]+)"', page))
        form.update(fields, verificationCode=pyotp.TOTP(secret).at(clock.now))

    def call() -> None:
        response = browser["client"].post("/auth/2fa/challenge/form", data=form)
        assert response.status_code == 302, response.status
        assert response.location == "/settings", response.location

    return Case("our_browser", "ours browser form POST", call, number, prepare)


def profile(case: Case, calls: int, listing: bool) -> dict[str, Any]:
    """Where one Flask-Security-Too route spends its time, from ``calls`` profiled calls.

    The PBKDF2 time is a C function's, which cProfile hardly slows; the QR code's is pure
    Python, which it slows a lot, so the QR code is given as a share of the profiled time.
    """
    profiler = cProfile.Profile()
    for _ in range(calls):
        if case.prepare is not None:
            case.prepare()
        profiler.enable()
        case.call()
        profiler.disable()
    stats = pstats.Stats(profiler)
    # pstats has no public accessor: {(file, line, function): (cc, nc, tt, ct, callers)}.
    entries: dict[tuple[str, int, str], tuple[Any, ...]] = stats.stats  # type: ignore[attr-defined]
    total: float = stats.total_tt  # type: ignore[attr-defined]

    def find(function: str, where: str) -> tuple[tuple[str, int, str] | None, tuple[Any, ...]]:
        for key, entry in entries.items():
            if key[2] == function and where in key[0]:
                return key, entry
        return None, (0, 0, 0.0, 0.0, {})

    _key, (_cc, pbkdf2_calls, pbkdf2, _ct, _callers) = find(
        "<built-in method _hashlib.pbkdf2_hmac>", "~"
    )
    qr_key, (_cc, _nc, _tt, qr, _callers) = find("generate_qrcode", "flask_security")
    # generate_qrcode first decrypts the secret for the otpauth URI: that is PBKDF2, not QR.
    _key, (_cc, _nc, _tt, _ct, uri_callers) = find("get_totp_uri", "flask_security")
    if qr_key is not None and qr_key in uri_callers:
        qr -= uri_callers[qr_key][3]
    if listing:
        print(f"\ncProfile of {case.name}, {calls} calls, by cumulative time:")
        stats.sort_stats("cumulative").print_stats(25)
    return {
        "calls": calls,
        "profiled_ms_per_call": round(total / calls * 1e3, 2),
        "pbkdf2_per_call": pbkdf2_calls / calls,
        "pbkdf2_ms_per_call": round(pbkdf2 / calls * 1e3, 2),
        "pbkdf2_profiled_share": round(pbkdf2 / total, 3),
        "qr_code_profiled_share": round(qr / total, 3),
    }


def compare(quick: bool, listing: bool) -> dict[str, Any]:
    """Build both apps, time their cases in the same rounds, profile Flask-Security-Too's
    routes and report; the ``flask_security`` section."""
    rounds = 5 if quick else 9
    # Flask-Security-Too's setup takes about 0.1 s under load: fewer calls than run.py makes.
    setups = 6 if quick else 20
    validates = 20 if quick else 80

    clock = FakeClock(now=1_800_000_000 - 1_800_000_000 % 30 + 5)
    example_app.two_factor.clock = clock
    with tempfile.TemporaryDirectory() as directory:
        ours = build_app("sqlite:///" + os.path.join(directory, "ours.sqlite"))
        fst = build_fst_app(
            "sqlite:///" + os.path.join(directory, "fst.sqlite"), ours.config["UCLOUD_2FA_ISSUER"]
        )
        fst_setup_case, fst_validate_case = fst_cases(fst, setups, validates)
        our_setup_case, *our_answer_cases = our_cases(ours, clock, setups, validates)
        print(
            f"Flask-Security-Too side by side ({'quick' if quick else 'full'}): "
            f"median of {rounds} rounds",
            flush=True,
        )
        figures = measure(
            [fst_setup_case, our_setup_case, fst_validate_case, *our_answer_cases], rounds
        )
        profiles = {
            "setup": profile(fst_setup_case, 5, listing),
            "validate": profile(fst_validate_case, 20, listing),
        }
    return report(figures, profiles, quick)


@dataclass(frozen=True)
class Pairing:
    """One row of the comparison: Flask-Security-Too's figure against one of ours."""

    theirs: str  # the key of Flask-Security-Too's case
    ours: str  # the key of our case
    targeted: bool  # whether the >= 10x target applies to this row
    comparison: str  # what is compared, and whether it is like for like


#: The rows, in the printed order. ``validate`` is the like-for-like row that the target
#: applies to: both logins end in a session cookie. The JSON answers are context only.
PAIRINGS = {
    "setup": Pairing(
        "fst_setup", "our_setup", True, "like for like: a new secret, its URI and QR code"
    ),
    "validate": Pairing(
        "fst_validate",
        "our_browser",
        True,
        "like for like: a browser's form answer, both end in a session cookie",
    ),
    "validate_json_tokens": Pairing(
        "fst_validate",
        "our_answer_json",
        False,
        "not like for like: JSON + token INSERT (FST writes no token)",
    ),
    "validate_json_ext": Pairing(
        "fst_validate",
        "our_answer_ext",
        False,
        "not like for like: JSON, the hook issues nothing (the extension's share)",
    ),
}


def report(
    figures: dict[str, Figure], profiles: dict[str, dict[str, Any]], quick: bool
) -> dict[str, Any]:
    """Print each row's speed-up (Flask-Security-Too's median over ours) and whether it meets
    the target, and where Flask-Security-Too's time goes; the ``flask_security`` section."""
    print()
    print(
        f"{'operation':<20} {'FST':>11} {'ours':>11} {'speed-up':>9}  {'target':<8} "
        f"{'met':<3}  compared"
    )
    results: dict[str, Any] = {}
    for operation, pairing in PAIRINGS.items():
        theirs, ours = figures[pairing.theirs], figures[pairing.ours]
        speedup = theirs.median / ours.median
        met = speedup >= TARGET if pairing.targeted else None
        target = f">= {TARGET:g}x" if pairing.targeted else "-"
        mark = "" if met is None else ("yes" if met else "NO")
        print(
            f"{operation:<20} {theirs.median * 1e6:9.1f}µs {ours.median * 1e6:9.1f}µs "
            f"{speedup:8.2f}x  {target:<8} {mark:<3}  {pairing.comparison}"
        )
        results[operation] = {
            "comparison": pairing.comparison,
            "like_for_like": pairing.targeted,
            "fst_median_us": round(theirs.median * 1e6, 1),
            "fst_rounds_us": [round(value * 1e6, 1) for value in theirs.rounds],
            "ours_median_us": round(ours.median * 1e6, 1),
            "ours_rounds_us": [round(value * 1e6, 1) for value in ours.rounds],
            "speedup": round(speedup, 2),
            "target": target,
            "met": met,
        }
    print(
        "The target is met or not on the like-for-like rows only; the validate_json rows "
        "are context."
    )
    print()
    for operation, found in profiles.items():
        theirs = figures[PAIRINGS[operation].theirs]
        found["pbkdf2_share_of_median"] = round(
            found["pbkdf2_ms_per_call"] / (theirs.median * 1e3), 3
        )
        print(
            f"FST {operation}: {found['pbkdf2_per_call']:g} PBKDF2 key derivation(s) a call, "
            f"{found['pbkdf2_ms_per_call']} ms, {found['pbkdf2_share_of_median']:.0%} of its "
            f"median; under cProfile, PBKDF2 {found['pbkdf2_profiled_share']:.0%} and the QR "
            f"code {found['qr_code_profiled_share']:.0%} of {found['profiled_ms_per_call']} ms"
        )
    return {
        "mode": "quick" if quick else "full",
        "flask_security_too": fst_version(),
        "database": "sqlite (a temporary file per app)",
        "like_for_like": [name for name, pairing in PAIRINGS.items() if pairing.targeted],
        "figures": results,
        "fst_profile": profiles,
    }


def main() -> int:
    """Run the comparison when Flask-Security-Too is installed; 0 whatever the timings."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick", action="store_true", help="fewer calls: about 10 s instead of 30"
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument(
        "--profile", action="store_true", help="print the cProfile listing of FST's routes"
    )
    args = parser.parse_args()
    version = fst_version()
    if version is None:
        print(
            f"Flask-Security-Too is not installed; skipping the comparison. Install it with\n"
            f"  {INSTALL}\n(it needs Python 3.11 or newer)."
        )
        return 0
    for category in (DeprecationWarning, PendingDeprecationWarning):
        warnings.filterwarnings("ignore", category=category, module=NOISY_MODULES)
    started = time.perf_counter()
    results = compare(args.quick, args.profile)
    results["seconds"] = round(time.perf_counter() - started, 1)
    write_section(args.output, "flask_security", results)
    print(
        f"\nWrote the Flask-Security-Too {version} comparison to {args.output} "
        f"in {results['seconds']} s."
    )
    return 0  # a benchmark reports; it never fails a build on a timing


if __name__ == "__main__":
    sys.exit(main())
