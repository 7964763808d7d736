"""The in-process benchmark: the 2FA routes against a bare protected route.

Run it with ``make bench`` or ``.venv/bin/python bench/run.py [--quick]``. It builds the example
app on a temporary SQLite file, adds a bare JSON route and the same route behind the app's
Authlib ``ResourceProtector``, and times each route through Flask's test client: many calls per
round, several rounds, the median round reported. Every figure is printed as a ratio to the
protected route measured in the same run, with its target, and written to
``bench/results.json``. It only reports: a missed target never makes it fail.
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import platform
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyotp
from flask import Flask
from flask import jsonify
from flask import request
from flask.testing import FlaskClient
from werkzeug.security import generate_password_hash
from werkzeug.test import TestResponse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import example_app  # noqa: E402
from example_app import create_app  # noqa: E402
from example_app import db  # noqa: E402
from example_app import require_oauth  # noqa: E402
from example_app.models import User  # noqa: E402
from example_app.ucloud_2fa import finish_login  # noqa: E402
from flask_ucloud_2fa import LoginCompleted  # noqa: E402

RESULTS = Path(__file__).resolve().parent / "results.json"


@dataclass
class FakeClock:
    """The 2FA clock: each correct answer moves it one TOTP step on, so its code is unused."""

    now: float

    def __call__(self) -> float:
        return self.now


@dataclass
class Figure:
    """One case's timings: the seconds per call of each round."""

    name: str
    rounds: list[float]  # seconds per call, one mean per round

    @property
    def median(self) -> float:
        return statistics.median(self.rounds)

    @property
    def spread(self) -> float:
        """The relative spread of the rounds, (max - min) / median: the noise of this run."""
        return (max(self.rounds) - min(self.rounds)) / self.median


@dataclass
class Case:
    """One route to time: ``call`` ``number`` times per round, ``prepare`` (untimed) first."""

    key: str
    name: str
    call: Callable[[], Any]
    number: int
    prepare: Callable[[], Any] | None = None

    def warm_up(self) -> None:
        # Caches, compiled statements, connection pools.
        for _ in range(max(3, self.number // 10)):
            if self.prepare is not None:
                self.prepare()
            self.call()

    def one_round(self) -> float:
        """Seconds per call over ``number`` calls.

        Like ``timeit``, the garbage collector is off while timing; unlike it, each call is
        timed on its own so the untimed preparation (a fresh challenge) stays out of the figure.
        """
        gc.collect()
        gc.disable()
        try:
            total = 0.0
            for _ in range(self.number):
                if self.prepare is not None:
                    self.prepare()
                start = time.perf_counter()
                self.call()
                total += time.perf_counter() - start
        finally:
            gc.enable()
        return total / self.number


def measure(cases: list[Case], rounds: int) -> dict[str, Figure]:
    """Every case, round after round, interleaved: a burst of load from elsewhere on the
    machine then slows one round of every figure instead of all rounds of one, and the ratios,
    taken between medians, stay fair."""
    for case in cases:
        case.warm_up()
    times: dict[str, list[float]] = {case.key: [] for case in cases}
    for _ in range(rounds):
        for case in cases:
            times[case.key].append(case.one_round())
    figures = {case.key: Figure(case.name, times[case.key]) for case in cases}
    for figure in figures.values():
        print(
            f"  {figure.name:<22} {figure.median * 1e6:10.1f} µs  (spread {figure.spread:.1%})",
            flush=True,
        )
    return figures


def build_app(database_uri: str) -> Flask:
    """The example app on ``database_uri``, with a bare and a protected JSON route."""
    app = create_app(
        {
            "TESTING": True,
            "SQLALCHEMY_DATABASE_URI": database_uri,
            # The wrong-code figure answers thousands of times for one user: no back-off or
            # lock-out, so every wrong answer does the full work of one.
            "UCLOUD_2FA_BACKOFF_AFTER": 10**9,
            "UCLOUD_2FA_LOCKOUT_AFTER": 10**9,
        }
    )

    # Registered before the first request, as Flask requires.
    @app.get("/bench/bare")
    def bare() -> Any:
        return jsonify({"ok": True})

    @app.get("/bench/protected")
    @require_oauth()
    def protected() -> Any:
        return jsonify({"ok": True})

    @app.post("/bench/login/<int:user_id>")
    def login_step(user_id: int) -> Any:
        # The login step after a password check the benchmark does not time: a browser
        # (Accept: text/html) gets the challenge page's cookie, any other client the challenge.
        state = {"browser": True, "next": "/settings"} if request.args.get("browser") else {}
        return example_app.two_factor.login(user_id, state=state)

    return app


def finished(login: LoginCompleted) -> Any:
    """A login_completed hook that issues nothing: the extension's share of an answer."""
    return jsonify({"userId": login.user_id})


def json_object(response: TestResponse) -> dict[str, Any]:
    """The JSON object a route answered."""
    body = response.get_json()
    assert isinstance(body, dict), response.get_data()
    return body


def make_user(app: Flask, client: FlaskClient, username: str) -> dict[str, str]:
    """A user logged in with the password; the Authorization header of its token."""
    password = secrets.token_urlsafe(12)
    with app.app_context():
        db.session.add(
            User(
                username=username,
                password_hash=generate_password_hash(password, "pbkdf2:sha256:1"),
            )
        )
        db.session.commit()
    response = client.post("/auth/login", json={"username": username, "password": password})
    assert response.status_code == 200, response.json
    return {"Authorization": f"Bearer {json_object(response)['accessToken']}"}


def connect(client: FlaskClient, headers: dict[str, str], clock: FakeClock) -> str:
    """Set up and confirm 2FA for the token's user; the TOTP secret."""
    setup = json_object(client.post("/auth/2fa", headers=headers))
    answer = client.post(
        "/auth/2fa/challenge",
        headers=headers,
        json={
            "challengeId": setup["challengeId"],
            "verificationCode": pyotp.TOTP(setup["secret"]).at(clock.now),
        },
    )
    assert answer.status_code == 200, answer.json
    clock.now += 30
    return str(setup["secret"])


def user_id_of(app: Flask, username: str) -> int:
    """The id of the example app's user ``username``."""
    with app.app_context():
        user = db.session.execute(db.select(User).filter_by(username=username)).scalar_one()
        return int(user.id)


def begin_login(client: FlaskClient, user_id: int) -> str:
    """A fresh login challenge for ``user_id``, through the login step (untimed)."""
    response = client.post(f"/bench/login/{user_id}")
    assert response.status_code == 200, response.json
    return str(json_object(response)["2fa"])


def get_case(
    key: str, name: str, client: FlaskClient, path: str, number: int, **headers: str
) -> Case:
    """``GET path`` answering 200."""

    def call() -> None:
        response = client.get(path, headers=headers)
        assert response.status_code == 200, response.json

    return Case(key, name, call, number)


def setup_case(client: FlaskClient, headers: dict[str, str], number: int) -> Case:
    """``POST /auth/2fa`` for a user without 2FA: a new pending secret with its QR code."""

    def call() -> None:
        response = client.post("/auth/2fa", headers=headers)
        assert response.status_code == 200, response.json

    return Case("setup", "POST setup", call, number)


def answer_cases(
    app: Flask, client: FlaskClient, clock: FakeClock, username: str, secret: str, number: int
) -> list[Case]:
    """Correct answers of fresh login challenges of ``username`` (2FA connected with
    ``secret``), each with the code of a new time step: the extension's share (the hook
    issues nothing) and the whole login with the example app's hook, which inserts a token."""
    user_id = user_id_of(app, username)
    pending: dict[str, Any] = {}

    def prepare() -> None:
        clock.now += 30  # a new time step: the code below is unused
        pending["body"] = {
            "challengeId": begin_login(client, user_id),
            "verificationCode": pyotp.TOTP(secret).at(clock.now),
        }

    def answer() -> None:
        response = client.post("/auth/2fa/challenge", json=pending["body"])
        assert response.status_code == 200, response.json

    def answer_without_tokens() -> None:
        # The extension's own work: the login_completed hook answers at once instead of
        # inserting a token, as a wrong answer (which never reaches the hook) does too.
        example_app.two_factor.login_completed(finished)
        try:
            answer()
        finally:
            example_app.two_factor.login_completed(finish_login)

    return [
        Case("answer_right", "POST challenge right", answer_without_tokens, number, prepare),
        Case("answer_login", "  + the hook's tokens", answer, number, prepare),
    ]


def wrong_answer_case(
    app: Flask, client: FlaskClient, clock: FakeClock, username: str, secret: str, number: int
) -> Case:
    """Wrong answers, each to a fresh challenge so that none reaches its attempt limit (the
    app must be built with back-off and lock-out out of reach, as :func:`build_app` does)."""
    user_id = user_id_of(app, username)
    pending: dict[str, Any] = {}

    def prepare() -> None:
        valid = {pyotp.TOTP(secret).at(clock.now + 30 * k) for k in (-1, 0, 1)}
        wrong = next(
            code for code in ("000000", "111111", "222222", "333333") if code not in valid
        )
        pending["body"] = {"challengeId": begin_login(client, user_id), "verificationCode": wrong}

    def call() -> None:
        response = client.post("/auth/2fa/challenge", json=pending["body"])
        assert response.status_code == 403, response.json

    return Case("answer_wrong", "POST challenge wrong", call, number, prepare)


def run(quick: bool) -> dict[str, Any]:
    """Build the app and its users, time every case and report; the ``inprocess`` section."""
    rounds = 5 if quick else 9
    number = 300 if quick else 1000
    answers = number // 2 if quick else number // 4
    setups = 40 if quick else 100

    clock = FakeClock(now=1_800_000_000 - 1_800_000_000 % 30 + 5)
    example_app.two_factor.clock = clock
    with tempfile.TemporaryDirectory() as directory:
        app = build_app("sqlite:///" + os.path.join(directory, "bench.sqlite"))
        client = app.test_client()
        plain = make_user(app, client, "plain")  # never connects: status and setup
        right_secret = connect(client, make_user(app, client, "right"), clock)
        wrong_secret = connect(client, make_user(app, client, "wrong"), clock)

        print(f"Benchmark ({'quick' if quick else 'full'}): median of {rounds} rounds", flush=True)
        cases = [
            get_case("bare", "bare route", client, "/bench/bare", number),
            get_case("protected", "protected route", client, "/bench/protected", number, **plain),
            get_case("status", "GET status", client, "/auth/2fa/status", number, **plain),
            get_case("me", "GET /api/me", client, "/api/me", number, **plain),
            *answer_cases(app, client, clock, "right", right_secret, answers),
            wrong_answer_case(app, client, clock, "wrong", wrong_secret, answers),
            setup_case(client, plain, setups),
        ]
        figures = measure(cases, rounds)
    return report(figures, quick)


def report(figures: dict[str, Figure], quick: bool) -> dict[str, Any]:
    """Print each figure as a ratio to the protected route with its target; the section."""
    base = figures["protected"].median
    noise = max(figures["answer_right"].spread, figures["answer_wrong"].spread, 0.02)
    targets: dict[str, tuple[str, Callable[[float], bool] | None]] = {
        "bare": ("-", None),
        "protected": ("baseline", None),
        "status": ("<= 1.10x", lambda r: r <= 1.10),
        "answer_right": ("<= 1.5x", lambda r: r <= 1.5),
        "me": ("- (the example's own route)", None),
        "answer_login": (
            "<= 2.0x GET /api/me",
            lambda _r: figures["answer_login"].median <= 2.0 * figures["me"].median,
        ),
        "answer_wrong": (
            f">= right x (1 - noise {noise:.1%})",
            lambda _r: (
                figures["answer_wrong"].median >= figures["answer_right"].median * (1 - noise)
            ),
        ),
        "setup": ("<= 5x", lambda r: r <= 5.0),
    }
    print()
    print(f"{'figure':<14} {'median':>11} {'ratio':>8}  {'target':<28} met")
    results: dict[str, Any] = {}
    for key, figure in figures.items():
        ratio = figure.median / base
        target, check = targets[key]
        met = None if check is None else bool(check(ratio))
        mark = "" if met is None else ("yes" if met else "NO")
        print(f"{key:<14} {figure.median * 1e6:9.1f}µs {ratio:7.2f}x  {target:<28} {mark}")
        results[key] = {
            "median_us": round(figure.median * 1e6, 1),
            "rounds_us": [round(value * 1e6, 1) for value in figure.rounds],
            "ratio_to_protected": round(ratio, 3),
            "target": target,
            "met": met,
        }
    results["login_over_me"] = round(figures["answer_login"].median / figures["me"].median, 3)
    print(
        f"\nA whole JSON login answer with the example's tokens: {results['login_over_me']}x"
        " its GET /api/me."
    )
    results["wrong_over_right"] = round(
        figures["answer_wrong"].median / figures["answer_right"].median, 3
    )
    return {
        "mode": "quick" if quick else "full",
        "database": "sqlite (temporary file)",
        "figures": results,
    }


def machine() -> dict[str, Any]:
    """What the figures were measured on."""
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpus": os.cpu_count(),
        "load_average": [round(load, 2) for load in os.getloadavg()],
    }


def write_section(output: Path, key: str, section: dict[str, Any]) -> None:
    """Store one script's figures under ``key`` of ``output``, keeping the other scripts'.

    Each benchmark script (``run.py``, ``load.py``, ``scale.py``, ``compare.py``) owns one
    section, so ``make bench`` leaves one file with every figure.
    """
    try:
        results = json.loads(output.read_text())
    except (FileNotFoundError, json.JSONDecodeError):
        results = {}
    results[key] = {**section, "machine": machine()}
    output.write_text(json.dumps(results, indent=2) + "\n")


def main() -> int:
    """Run the benchmark and store its section of ``--output``; always 0."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer calls: under a minute")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    started = time.perf_counter()
    results = run(args.quick)
    results["seconds"] = round(time.perf_counter() - started, 1)
    write_section(args.output, "inprocess", results)
    print(f"\nWrote the in-process figures to {args.output} in {results['seconds']} s.")
    return 0  # a benchmark reports; it never fails a build on a timing


if __name__ == "__main__":
    sys.exit(main())
