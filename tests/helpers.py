"""The tests' shared helpers: one home, imported as ``from helpers import ...``.

Requests go through a Flask test client; database helpers take the app and read its own ``db``
and extension (the integrator app builds both per app).
"""

from __future__ import annotations

import os
import secrets
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path
from typing import Any

import pyotp
import pytest
import requests
from click.testing import Result
from flask import Flask
from flask import jsonify
from flask import request
from flask.testing import FlaskClient
from flask.typing import ResponseReturnValue
from sqlalchemy import Engine
from sqlalchemy import event
from sqlalchemy import func
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from flask_ucloud_2fa import LoginCompleted
from flask_ucloud_2fa import TwoFactor
from flask_ucloud_2fa.store import hash_challenge_id

from integrator import integrator_of

#: The repository, where server processes of the tests start.
REPO = Path(__file__).resolve().parent.parent

IN_CI = os.environ.get("CI") == "true"
#: A cheap password hash: scrypt would cost 0.3 s per user and login.
FAST_HASH = "pbkdf2:sha256:1"
#: The keys of every UCloud error body.
ERROR_KEYS = {"statusCode", "why", "errorCode"}
#: What a login gives once every factor passed.
TOKEN_KEYS = {"accessToken", "refreshToken", "expiresAt"}
#: Well-formed, but never one of anybody's codes (recovery codes never contain "A2A2...").
UNKNOWN_RECOVERY_CODE = "A2A2-A2A2-A2A2-A2A2"
#: 5 s into a TOTP time step.
START = 1_800_000_000 - 1_800_000_000 % 30 + 5


def require_service(reason: str) -> None:
    """Skip for a missing service on a developer's machine; fail under ``CI=true``."""
    if IN_CI:
        pytest.fail(f"{reason} (CI=true: nothing may be skipped)", pytrace=False)
    pytest.skip(reason)


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def wait_until_serving(url: str, process: subprocess.Popen[bytes]) -> None:
    """Wait until a server process of the test answers at ``url`` (30 s at most)."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        assert process.poll() is None, "the server process exited"
        try:
            requests.get(url, timeout=5)
            return
        except requests.RequestException:
            time.sleep(0.1)
    raise AssertionError(f"{url} did not come up")


@contextmanager
def integrator_server(
    local_app: Flask, instance_path: str, *gunicorn_options: str, **config: Any
) -> Iterator[str]:
    """Gunicorn serving the integrator app on ``local_app``'s database, with its encryption
    keys and ``config`` (``UCLOUD_2FA_...`` keys); its base URL. Stopped at the end."""
    environment = {
        **os.environ,
        "FLASK_SQLALCHEMY_DATABASE_URI": local_app.config["SQLALCHEMY_DATABASE_URI"],
        "FLASK_SECRET_KEY": secrets.token_urlsafe(32),
        "FLASK_UCLOUD_2FA_ENCRYPTION_KEYS": ",".join(
            local_app.config["UCLOUD_2FA_ENCRYPTION_KEYS"]
        ),
        "INTEGRATOR_INSTANCE_PATH": instance_path,
        **{f"FLASK_{key}": str(value) for key, value in config.items()},
    }
    port = free_port()
    process = subprocess.Popen(
        [sys.executable, "-m", "gunicorn", *gunicorn_options, f"--bind=127.0.0.1:{port}",
         "--pythonpath=tests", "integrator:create_app_from_env()"],
        cwd=REPO, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=10)


# -- time and codes ----------------------------------------------------------------------------


@dataclass
class FakeClock:
    """A clock the tests move by hand; starts 5 s into a TOTP time step."""

    now: float = START

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def code_for(secret: str, clock: FakeClock, offset_steps: int = 0) -> str:
    """The TOTP code an authenticator app shows at ``clock`` plus ``offset_steps`` steps."""
    return pyotp.TOTP(secret).at(clock.now + 30 * offset_steps)


def wrong_code(secret: str, clock: FakeClock) -> str:
    """A six-digit code that no step of the skew window accepts."""
    valid = {code_for(secret, clock, offset) for offset in (-1, 0, 1)}
    return next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in valid)


def utc(clock: FakeClock, seconds: int = 0) -> datetime:
    """The clock's time plus ``seconds``, as the extension stores it (naive UTC)."""
    now = datetime.fromtimestamp(clock.now, timezone.utc).replace(tzinfo=None)
    return now + timedelta(seconds=seconds)


# -- users -------------------------------------------------------------------------------------


@dataclass
class TestUser:
    __test__ = False  # a fixture's value, not a test class

    id: int
    username: str
    password: str
    token: str

    @property
    def headers(self) -> dict[str, str]:
        return bearer(self.token)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def add_user(app: Flask, username: str | None = None) -> TestUser:
    """A new user of the integrator app, logged in with the password, so with a bearer token."""
    parts = integrator_of(app)
    username = username or f"user-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12)
    with app.app_context():
        user = parts.User(
            username=username, password_hash=generate_password_hash(password, FAST_HASH)
        )
        parts.db.session.add(user)
        parts.db.session.commit()
        user_id: int = user.id
    response = app.test_client().post(
        "/auth/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.json
    return TestUser(user_id, username, password, response.json["accessToken"])


# -- requests ----------------------------------------------------------------------------------


def answer(
    client: FlaskClient, challenge_id: str, code: Any, headers: dict[str, str] | None = None
) -> Any:
    """``POST /auth/2fa/challenge`` with a verification code."""
    return client.post(
        "/auth/2fa/challenge",
        headers=headers or {},
        json={"challengeId": challenge_id, "verificationCode": code},
    )


def answer_with_recovery_code(client: FlaskClient, challenge_id: str, code: str) -> Any:
    """``POST /auth/2fa/challenge`` with a recovery code."""
    return client.post(
        "/auth/2fa/challenge", json={"challengeId": challenge_id, "recoveryCode": code}
    )


def login(client: FlaskClient, user: TestUser, headers: dict[str, str] | None = None) -> Any:
    """``POST /auth/login`` with the user's password."""
    return client.post(
        "/auth/login",
        headers=headers or {},
        json={"username": user.username, "password": user.password},
    )


def begin_login(client: FlaskClient, user: TestUser) -> str:
    """Log in with the password as a user with 2FA; the login challenge id."""
    response = login(client, user)
    assert response.status_code == 200, response.json
    assert set(response.json) == {"2fa"}
    challenge_id: str = response.json["2fa"]
    return challenge_id


def login_challenge(app: Flask, user_id: Any) -> str:
    """A login challenge from the login step itself, as a JSON client gets it, without the
    password check (and its hash)."""
    with app.test_request_context("/auth/login", method="POST"):
        response = app.make_response(two_factor_of(app).login(user_id))
    assert response.status_code == 200, response.get_data(as_text=True)
    assert set(response.json) == {"2fa"}
    challenge_id: str = response.json["2fa"]
    return challenge_id


def me(client: FlaskClient, access_token: str) -> Any:
    return client.get("/api/me", headers=bearer(access_token))


def status(client: FlaskClient, user: TestUser) -> Any:
    """The body of ``GET /auth/2fa/status`` for the user's token."""
    return client.get("/auth/2fa/status", headers=user.headers).json


def create_setup(client: FlaskClient, headers: dict[str, str]) -> dict[str, str]:
    """``POST /auth/2fa``: the setup's secret, challenge id, URI and QR code."""
    response = client.post("/auth/2fa", headers=headers)
    assert response.status_code == 200, response.json
    body: dict[str, str] = response.json
    return body


def connect(
    client: FlaskClient, headers: dict[str, str], clock: FakeClock, prefix: str = "/auth/2fa"
) -> str:
    """Set up and confirm 2FA for the token's user; the secret. Moves the clock a step on, so
    the code that confirmed the setup is not needed again."""
    setup = client.post(prefix, headers=headers)
    assert setup.status_code == 200, setup.json
    secret: str = setup.json["secret"]
    confirmed = client.post(
        f"{prefix}/challenge",
        headers=headers,
        json={
            "challengeId": setup.json["challengeId"],
            "verificationCode": code_for(secret, clock),
        },
    )
    assert confirmed.status_code == 200, confirmed.json
    assert confirmed.json == {}
    clock.advance(30)
    return secret


def new_codes(
    client: FlaskClient, headers: dict[str, str], secret: str, clock: FakeClock
) -> list[str]:
    """Fresh recovery codes for a TOTP code; moves the clock a step on, so the code is spent."""
    response = client.post(
        "/auth/2fa/recovery-codes",
        headers=headers,
        json={"verificationCode": code_for(secret, clock)},
    )
    assert response.status_code == 200, response.json
    codes: list[str] = response.json["recoveryCodes"]
    clock.advance(30)
    return codes


def step_up(client: FlaskClient, user: TestUser, secret: str, clock: FakeClock) -> None:
    """Log ``user`` (with 2FA connected) in again with the password and a code: their token is
    then one whose login used the second factor, as disabling and new recovery codes need.
    Moves the clock a step on, so the code is spent."""
    answered = answer(client, begin_login(client, user), code_for(secret, clock))
    assert answered.status_code == 200, answered.json
    user.token = answered.json["accessToken"]
    clock.advance(30)


def connect_and_step_up(client: FlaskClient, user: TestUser, clock: FakeClock) -> str:
    """:func:`connect` 2FA for ``user``, then :func:`step_up`; the secret."""
    secret = connect(client, user.headers, clock)
    step_up(client, user, secret, clock)
    return secret


def arm(client: FlaskClient, user: TestUser, clock: FakeClock) -> tuple[str, list[str]]:
    """Connect 2FA for ``user`` (stepped up), make recovery codes and begin a login: a row in
    each of the extension's tables. The secret and the codes."""
    secret = connect_and_step_up(client, user, clock)
    codes = new_codes(client, user.headers, secret, clock)
    begin_login(client, user)
    return secret, codes


def cli(app: Flask, *args: str, input: str | None = None) -> Result:
    """``flask ucloud-2fa ARGS...`` on ``app``."""
    result: Result = app.test_cli_runner().invoke(args=["ucloud-2fa", *args], input=input)
    return result


def canonical(code: str) -> str:
    """A recovery code as stored and hashed: without its dashes."""
    return code.replace("-", "")


# -- answers -----------------------------------------------------------------------------------


def assert_error(response: Any, status: int, error_code: str) -> None:
    """A UCloud error body: ``statusCode``, ``errorCode`` and a ``why`` for people."""
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.json
    assert ERROR_KEYS <= set(body)
    assert body["statusCode"] == status
    assert body["errorCode"] == error_code
    assert isinstance(body["why"], str) and body["why"]


def assert_no_secrets(response: Any, *secrets_: str) -> None:
    text = response.get_data(as_text=True)
    for value in secrets_:
        assert value not in text


def assert_logs_in_with_the_password_alone(client: FlaskClient, user: TestUser) -> None:
    """The password gives tokens at once: no challenge, a password-only token, and the token's
    user has no 2FA."""
    response = login(client, user)
    assert response.status_code == 200, response.json
    assert set(response.json) == TOKEN_KEYS
    token = response.json["accessToken"]
    who = me(client, token).json
    assert (who["username"], who["amr"]) == (user.username, ["pwd"])
    assert client.get("/auth/2fa/status", headers=bearer(token)).json == {"connected": False}


def assert_blocked(response: Any, error_code: str, retry_after: int, *secrets_: str) -> None:
    """A 429 in UCloud's error shape plus ``retryAfter``, which ``Retry-After`` repeats."""
    assert_error(response, 429, error_code)
    body = response.json
    assert set(body) == ERROR_KEYS | {"retryAfter"}
    assert type(body["retryAfter"]) is int
    assert body["retryAfter"] == retry_after
    assert response.headers["Retry-After"] == str(retry_after)
    assert_no_secrets(response, *secrets_)


# -- an integrator's own app ---------------------------------------------------------------------


def add_id_login(app: Flask, two_factor: TwoFactor, *, login_completed: bool = True) -> None:
    """Wire the login step of a small app of a test's own: ``POST /login`` with
    ``{"user_id": ...}`` (no password) and, unless told not to, a completion hook that answers
    ``{"user": user_id, "amr": methods}``."""
    if login_completed:

        @two_factor.login_completed
        def finish(login: LoginCompleted) -> ResponseReturnValue:
            return jsonify({"user": login.user_id, "amr": login.methods})

    @app.post("/login")
    def login() -> ResponseReturnValue:
        return two_factor.login(request.get_json()["user_id"])


# -- the database --------------------------------------------------------------------------------


def db_of(app: Flask) -> Any:
    """The app's Flask-SQLAlchemy ``db``."""
    return app.extensions["sqlalchemy"]


def two_factor_of(app: Flask) -> TwoFactor:
    """The extension registered on ``app``."""
    extension: TwoFactor = app.extensions["ucloud_2fa"].extension
    return extension


def engine_of(app: Flask) -> Engine:
    with app.app_context():
        engine: Engine = db_of(app).engine
        return engine


def count(app: Flask, model: Any, *where: Any, **filters: Any) -> int:
    """The rows of ``model`` matching ``where`` and ``filters`` (column=value)."""
    with app.app_context():
        query = select(func.count()).select_from(model).where(*where).filter_by(**filters)
        total: int = db_of(app).session.execute(query).scalar_one()
        return total


# -- internals: the one place the tests reach into the package --------------------------------


def settings_of(app: Flask) -> Any:
    """The extension's settings of ``app``, read in ``init_app``."""
    return app.extensions["ucloud_2fa"].settings


def secret_box(app: Flask) -> Any:
    """The extension's encryption of secrets (and keyed hashes of recovery codes) of ``app``."""
    return settings_of(app).box


def decrypt_secret(app: Flask, encrypted: str) -> str:
    """The plaintext of a stored, encrypted TOTP secret."""
    plain: str = secret_box(app).decrypt(encrypted)
    return plain


def challenge_attempts(app: Flask, challenge_id: str) -> int | None:
    """The attempts stored for ``challenge_id``, or ``None`` when it has no row."""
    challenge = two_factor_of(app).models.Challenge
    with app.app_context():
        attempts: int | None = (
            db_of(app)
            .session.execute(
                select(challenge.attempts).where(
                    challenge.id_hash == hash_challenge_id(challenge_id)
                )
            )
            .scalar_one_or_none()
        )
        return attempts


def credential_value(app: Flask, user_id: Any, column: str) -> Any:
    """One column of the user's credential row (which must exist)."""
    credential = two_factor_of(app).models.Credential
    with app.app_context():
        return (
            db_of(app)
            .session.execute(
                select(getattr(credential, column)).where(credential.user_id == user_id)
            )
            .scalar_one()
        )


def failures_of(app: Flask, user_id: Any) -> int:
    failures: int = credential_value(app, user_id, "failures")
    return failures


def challenge_count(app: Flask, user_id: Any) -> int:
    challenge = two_factor_of(app).models.Challenge
    return count(app, challenge, challenge.user_id == user_id)


def stored_hashes(app: Flask, user_id: Any) -> list[str]:
    """The ``code_hash`` of every recovery-code row of the user's credential."""
    models = two_factor_of(app).models
    credential, recovery = models.Credential, models.RecoveryCode
    with app.app_context():
        return list(
            db_of(app)
            .session.execute(
                select(recovery.code_hash)
                .join(credential, credential.id == recovery.credential_id)
                .where(credential.user_id == user_id)
            )
            .scalars()
            .all()
        )


def rows_of(app: Flask, user_id: Any) -> dict[str, Any]:
    """What the database holds about the user's 2FA."""
    models = two_factor_of(app).models
    credential, challenge, recovery = models.Credential, models.Challenge, models.RecoveryCode
    with app.app_context():
        session = db_of(app).session
        credentials = session.execute(
            select(
                credential.id,
                credential.encrypted_secret,
                credential.connected,
                credential.last_used_step,
            ).where(credential.user_id == user_id)
        ).all()
        ids = [row.id for row in credentials]
        return {
            "credentials": [tuple(row) for row in credentials],
            "challenges": sorted(
                session.execute(
                    select(challenge.id_hash, challenge.kind, challenge.attempts).where(
                        challenge.user_id == user_id
                    )
                ).all()
            ),
            "recovery_codes": sorted(
                session.execute(
                    select(recovery.code_hash).where(recovery.credential_id.in_(ids))
                ).scalars()
            ),
        }


NOTHING = {"credentials": [], "challenges": [], "recovery_codes": []}


# -- counting statements -------------------------------------------------------------------------


class Statements(list[str]):
    """The statements an engine ran, whitespace collapsed, and how many commits."""

    commits = 0


@contextmanager
def counting(engine: Engine) -> Iterator[Statements]:
    """The statements and commits ``engine`` runs inside the block."""
    statements = Statements()

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        statements.append(" ".join(statement.split()))

    def commit(_conn: Any) -> None:
        statements.commits += 1

    event.listen(engine, "before_cursor_execute", record)
    event.listen(engine, "commit", commit)
    try:
        yield statements
    finally:
        event.remove(engine, "before_cursor_execute", record)
        event.remove(engine, "commit", commit)


# -- races ---------------------------------------------------------------------------------------


@dataclass
class Outcome:
    status: int
    body: Any


def race(app: Flask, calls: list[Callable[[FlaskClient], Any]]) -> list[Outcome]:
    """Run every call in a thread of its own, each with its own client, released together by
    a barrier so the requests hit the database at once; their outcomes, in order."""
    barrier = threading.Barrier(len(calls))
    outcomes: list[Outcome | None] = [None] * len(calls)
    errors: list[BaseException] = []

    def run(index: int) -> None:
        client = app.test_client()
        try:
            barrier.wait(timeout=10)
            response = calls[index](client)
            outcomes[index] = Outcome(response.status_code, response.json)
        except BaseException as error:  # reported below, on the test's thread
            errors.append(error)

    threads = [threading.Thread(target=run, args=(index,)) for index in range(len(calls))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=30)
    assert not any(thread.is_alive() for thread in threads), "a racing request hung"
    if errors:
        raise errors[0]
    return [outcome for outcome in outcomes if outcome is not None]


def assert_one_winner(outcomes: list[Outcome], losers: set[int]) -> Outcome:
    """Exactly one 200 among ``outcomes``, every other status one of ``losers``; the winner."""
    statuses = sorted(outcome.status for outcome in outcomes)
    assert statuses.count(200) == 1, statuses
    assert set(statuses) - {200} <= losers, statuses
    return next(outcome for outcome in outcomes if outcome.status == 200)
