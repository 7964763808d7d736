"""The tests' shared helpers: one home, imported as ``from helpers import ...``.

Requests go through a Flask test client; database helpers take the app and read its own ``db``
and extension (the integrator app builds both per app).
"""

from __future__ import annotations

import json
import os
import re
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

import psycopg
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
from sqlalchemy import make_url
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


def connect_over_http(base: str, headers: dict[str, str]) -> pyotp.TOTP:
    """Set up and confirm 2FA through a running server at ``base``, on its own (real) clock;
    the user's authenticator."""
    setup = requests.post(f"{base}/auth/2fa", headers=headers, timeout=10).json()
    totp = pyotp.TOTP(setup["secret"])
    confirmed = requests.post(
        f"{base}/auth/2fa/challenge",
        headers=headers,
        json={"challengeId": setup["challengeId"], "verificationCode": totp.now()},
        timeout=10,
    )
    assert confirmed.status_code == 200, confirmed.text
    return totp


@contextmanager
def integrator_server(
    local_app: Flask, instance_path: str, *gunicorn_options: str, **config: Any
) -> Iterator[str]:
    """Gunicorn serving the integrator app on ``local_app``'s database, with its engine
    options, encryption keys and ``config`` (``UCLOUD_2FA_...`` keys); its base URL. Stopped
    at the end."""
    with integrator_process(local_app, instance_path, *gunicorn_options, **config) as served:
        yield served.url


@dataclass
class Served:
    """A gunicorn of the tests: its base URL, its master process and the file of its log."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path

    def workers(self) -> set[int]:
        """The process ids of the master's workers now."""
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children")
        return {int(pid) for pid in children.read_text().split()}


@contextmanager
def integrator_process(
    local_app: Flask, instance_path: str, *gunicorn_options: str, **config: Any
) -> Iterator[Served]:
    """:func:`integrator_server`, with its process and its log (``gunicorn.log`` in
    ``instance_path``)."""
    environment = {
        **os.environ,
        "FLASK_SQLALCHEMY_DATABASE_URI": local_app.config["SQLALCHEMY_DATABASE_URI"],
        "FLASK_SQLALCHEMY_ENGINE_OPTIONS": json.dumps(
            local_app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {})
        ),
        "FLASK_SECRET_KEY": secrets.token_urlsafe(32),
        "FLASK_UCLOUD_2FA_ENCRYPTION_KEYS": ",".join(
            local_app.config["UCLOUD_2FA_ENCRYPTION_KEYS"]
        ),
        "INTEGRATOR_INSTANCE_PATH": instance_path,
        **{f"FLASK_{key}": str(value) for key, value in config.items()},
    }
    port = free_port()
    log = Path(instance_path) / f"gunicorn-{port}.log"
    with open(log, "wb") as output:
        process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", *gunicorn_options, f"--bind=127.0.0.1:{port}",
             "--pythonpath=tests", "integrator:create_app_from_env()"],
            cwd=REPO, env=environment, stdout=output, stderr=subprocess.STDOUT,
        )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_serving(url, process)
        yield Served(url, process, log)
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


#: What a browser accepts: it prefers HTML, so the login step treats the request as a browser's.
BROWSER = {"Accept": "text/html,application/xhtml+xml;q=0.9,*/*;q=0.8"}


@dataclass
class BrowserChallenge:
    """A browser's login challenge: the challenge page and its form's hidden fields."""

    page: str
    fields: dict[str, str]


def browser_login(client: FlaskClient, user: TestUser) -> Any:
    """``POST /auth/login`` with the user's password, as a browser (its cookies in ``client``)."""
    return client.post(
        "/auth/login",
        json={"username": user.username, "password": user.password},
        headers=BROWSER,
    )


def begin_browser_login(client: FlaskClient, user: TestUser) -> BrowserChallenge:
    """Log in as a browser, as a user with 2FA: the challenge page it is sent to (its binding
    cookie is in ``client``)."""
    started = browser_login(client, user)
    assert started.status_code == 302, started.get_data(as_text=True)
    assert "/auth/2fa?challengeId=" in started.headers["Location"]
    page = client.get(started.headers["Location"], headers=BROWSER)
    assert page.status_code == 200, page.get_data(as_text=True)
    html = page.get_data(as_text=True)
    fields = dict(re.findall(r'name="(challengeId|csrfToken)" value="([^"]+)"', html))
    assert set(fields) == {"challengeId", "csrfToken"}
    return BrowserChallenge(html, fields)


def answer_in_browser(
    client: FlaskClient, challenge: BrowserChallenge, code: str, **form: str
) -> Any:
    """Post the challenge page's form with ``code`` (a TOTP or a recovery code) and ``form``'s
    other fields (``rememberBrowser="yes"``)."""
    return client.post(
        "/auth/2fa/challenge/form",
        data={**challenge.fields, "verificationCode": code, **form},
        headers=BROWSER,
    )


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


#: What no answer may show of a failure: a traceback, the driver, the SQL, the server.
FAILURE_TRACES = (
    "Traceback", "psycopg", "sqlalchemy", "SQLAlchemy", "OperationalError", "SELECT ",
    "UPDATE ", "SET LOCAL", "postgresql", "127.0.0.1",
)  # fmt: skip
#: ``Retry-After`` of an unavailable database.
UNAVAILABLE_RETRY_AFTER = 5


def assert_no_trace(response: Any, *secrets_: str) -> None:
    """Nothing of the failure, and none of ``secrets_``, in the body."""
    text = response.get_data(as_text=True)
    for value in (*FAILURE_TRACES, *secrets_):
        assert value not in text, value


def assert_unavailable(response: Any, *secrets_: str) -> None:
    """A 503 ``SERVICE_UNAVAILABLE`` in UCloud's shape with ``retryAfter``, which
    ``Retry-After`` repeats, and nothing of the failure in it."""
    assert_error(response, 503, "SERVICE_UNAVAILABLE")
    assert set(response.json) == ERROR_KEYS | {"retryAfter"}
    assert response.json["retryAfter"] == UNAVAILABLE_RETRY_AFTER
    assert response.headers["Retry-After"] == str(UNAVAILABLE_RETRY_AFTER)
    assert_no_trace(response, *secrets_)


def assert_unavailable_page(response: Any, *secrets_: str) -> None:
    """A browser's 503: an HTML page with ``Retry-After``, and nothing of the failure in it."""
    assert response.status_code == 503, response.get_data(as_text=True)
    assert response.mimetype == "text/html"
    assert response.headers["Retry-After"] == str(UNAVAILABLE_RETRY_AFTER)
    assert "unavailable for a moment" in response.get_data(as_text=True)
    assert_no_trace(response, *secrets_)


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


# -- locks held from outside --------------------------------------------------------------------


def libpq_url(database_url: str) -> str:
    """An SQLAlchemy URL as psycopg takes it."""
    return make_url(database_url).set(drivername="postgresql").render_as_string(False)


@contextmanager
def credentials_locked(app: Flask, *user_ids: Any) -> Iterator[None]:
    """The users' credential rows locked by another connection of PostgreSQL (``SELECT ...
    FOR UPDATE`` in a transaction of its own, as an administrator's session or a migration may
    hold them) until the block ends."""
    table = two_factor_of(app).models.Credential.__table__.name
    url = libpq_url(app.config["SQLALCHEMY_DATABASE_URI"])
    with psycopg.connect(url, prepare_threshold=None) as holder:
        locked = holder.execute(
            f'SELECT id FROM "{table}" WHERE user_id = ANY(%s) FOR UPDATE', (list(user_ids),)
        ).fetchall()
        assert len(locked) == len(user_ids)
        yield
        holder.rollback()


def lock_waits(app: Flask) -> int:
    """How many connections to the app's PostgreSQL database wait for a lock now."""
    url = libpq_url(app.config["SQLALCHEMY_DATABASE_URI"])
    with psycopg.connect(url, prepare_threshold=None, autocommit=True) as connection:
        row = connection.execute(
            "SELECT count(*) FROM pg_stat_activity"
            " WHERE datname = current_database() AND wait_event_type = 'Lock'"
        ).fetchone()
    assert row is not None
    waits: int = row[0]
    return waits


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


# -- the browser tests (Playwright in Chromium, tests/example_app) ------------------------------

#: Debian's Chromium, which Playwright drives (never ``playwright install``).
CHROMIUM = os.environ.get("UCLOUD_2FA_CHROMIUM", "/usr/bin/chromium")
#: Where ``UCLOUD_2FA_SCREENSHOTS=1`` saves a screenshot of each page, for the docs.
SCREENSHOTS = REPO / "docs" / "_static" / "screenshots"


@dataclass
class Server:
    """The example app served over HTTP for a browser: its user and its extension's clock."""

    url: str
    callback: str
    username: str
    password: str
    clock: FakeClock


def snapshot(page: Any, name: str) -> None:
    """Save a screenshot for the docs when UCLOUD_2FA_SCREENSHOTS=1."""
    if os.environ.get("UCLOUD_2FA_SCREENSHOTS") == "1":
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(SCREENSHOTS / f"{name}.png"), full_page=True)


def log_in(page: Any, server: Server, name: str = "login") -> None:
    """Log in on the example's login page with the server's user and password."""
    page.goto(f"{server.url}/login")
    page.get_by_label("Username").fill(server.username)
    page.get_by_label("Password").fill(server.password)
    snapshot(page, name)
    page.get_by_role("button", name="Log in").click()


def fresh_code(totp: pyotp.TOTP, clock: FakeClock) -> str:
    """The code of the next time step, which the server has not seen: its clock moves on."""
    clock.advance(30)
    return totp.at(clock.now)
