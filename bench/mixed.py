"""The sustained mixed-load benchmark: the example app on PostgreSQL under a realistic mix.

Run it with ``make bench`` or ``.venv/bin/python bench/mixed.py [--quick] [--duration S]
[--output PATH]`` (about 90 s: the seeding, 10 s of warm-up and 60 s of load; ``--quick``,
15 s of load, about 30 s). It needs a PostgreSQL server: ``UCLOUD_2FA_BENCH_DATABASE_URL``
(default ``postgresql+psycopg://postgres@127.0.0.1:5432/test``, as ``bench/scale.py``) names
one, and a database to connect to while creating the benchmark's own, which gets a random name
and is dropped at the end. When the server cannot be reached, it says so and exits 0.

The example app as deployed (``create_app``, its limits and back-off as they are) runs on that
database under gunicorn, 4 sync workers on a free port of 127.0.0.1. Its configuration comes
from ``FLASK_*`` environment variables, as in production (see :data:`SETTINGS`): fresh keys,
and password-attempt budgets for the client address and for each user far above the defaults,
because every request of the benchmark comes from 127.0.0.1, where a real deployment sees many
addresses. The users are seeded in process before the server starts, with a cheap password
hash (``pbkdf2:sha256:1``, so the first factor costs little and the mix measures the rest):
users with 2FA connected through the public facade (``two_factor.start_setup`` and
``confirm_setup``, each with its own secret) who log in, a few dozen who keep answering wrong
codes, users without 2FA who set it up during the run, and a bearer token for every user
(about 5,000 users in a full run, 2,000 in a quick one).

Client processes (2, of 4 threads each: twice as many requests in flight as workers; each
process owns its slice of the users) drive the mix in a closed loop, each thread sending its
next request when the last is answered, one connection per request (``http.client``), each
operation chosen at random with these weights:

- 80 % ``GET /auth/2fa/status`` with a random user's bearer token;
- 10 % a login: ``POST /auth/login`` with the password, then ``POST /auth/2fa/challenge`` with
  the code of the current time step. A code is accepted once per user, so the login users are
  taken round-robin and a user is taken again only in a later time step;
- 5 % a setup: ``POST /auth/2fa`` with the token of a user without 2FA (the example app's login
  tokens carry its management scope), then the setup challenge answered with a code; the user
  then joins the login users;
- 4 % a wrong code to the open login challenge of one of the wrong-code users (403
  ``INVALID_CODE``, the fifth burns the challenge; 429 once the user backs off), and 1 % a
  replay: a code accepted a moment before, sent again to a new login challenge of its user
  (403: a code is accepted once).

After a warm-up (a sixth of the duration, 3 to 10 s) the load runs for ``--duration`` seconds
(60; 15 with ``--quick``). It reports the throughput, the p50, p95 and p99 latency of each
route (requests started in the measured window), the answers by status, and the errors: 5xx
answers, answers other than the expected ones, and requests that got no answer. Then it checks
that no guarantee was lost, from the client's records and the database:

- no code accepted twice: every accepted (user, time step) is recorded and must be unique, and
  a wrong or replayed code is never accepted;
- each credential's ``last_used_step`` is the last step accepted for its user;
- every spent challenge (answered right) and every burned one (its last attempt used) is gone,
  no challenge has more attempts than the limit, no connected user has a setup challenge left;
- each accepted login answer issued its tokens once (the example app's token rows);
- each worker's memory (``VmRSS`` from ``/proc``) after the run is within 10 % of what it was
  after the warm-up (reported, not a failure).

The figures go to the ``mixed`` section of ``bench/results.json``. Like the other scripts, it
only reports: it exits 0 whatever the timings, and non-zero only when something is functionally
broken (a 5xx, an answer other than the expected one, a request without an answer, a lost
guarantee, gunicorn not starting or dying). gunicorn is stopped, its whole process group, and
the database dropped, whatever happens, Ctrl-C too.
"""

from __future__ import annotations

import argparse
import collections
import hashlib
import http.client
import importlib.metadata
import json
import multiprocessing
import os
import random
import secrets
import signal
import statistics
import sys
import tempfile
import threading
import time
from contextlib import AbstractContextManager
from dataclasses import dataclass
from dataclasses import field
from pathlib import Path
from typing import Any

import psycopg
import pyotp
from cryptography.fernet import Fernet
from flask import Flask
from flask import jsonify
from load import HOST
from load import BenchmarkError
from load import Server
from load import gunicorn
from load import server_cpu
from run import RESULTS
from run import write_section
from scale import DATABASE_URL_VARIABLE
from scale import DEFAULT_DATABASE_URL
from scale import databases
from scale import libpq_url
from sqlalchemy import func
from sqlalchemy import select
from sqlalchemy.engine import make_url
from werkzeug.security import generate_password_hash

from example_app import create_app
from example_app import db
from example_app import two_factor
from example_app.models import Token
from example_app.models import User
from flask_ucloud_2fa import Proof

WORKERS = 4
CLIENT_PROCESSES = 2
THREADS_PER_PROCESS = 4
#: The operations and their weights, in percent.
MIX = {"status": 80, "login": 10, "setup": 5, "wrong": 4, "replay": 1}
#: Rates above any run's on a 2-core machine (57 logins and 25 setups a second), which set how
#: many users are seeded: a login user logs in at most once per 30 s time step, so there are
#: more of them than the logins of one step, and each setup uses up a user without 2FA.
LOGINS_PER_SECOND = 80
SETUPS_PER_SECOND = 50
#: Few, so that they reach the back-off (429) within the run.
WRONG_USERS = 48
#: The cheap hash of the seeded passwords (the first factor is not what is measured).
FAST_HASH = "pbkdf2:sha256:1"
PERIOD = 30  # seconds per TOTP time step
TIMEOUT = 30.0  # seconds a request may take before it counts as unanswered
MAX_OPERATIONS = 10**6  # per client thread: a bound on the loop besides the deadline
MEMORY_TARGET = 0.10
#: Hosts of a PostgreSQL server on this machine, whose backends' CPU time ``/proc`` shows.
LOCAL_HOSTS = (None, "", "127.0.0.1", "localhost", "::1")
#: The configuration of the app under test, as a deployment sets it: ``FLASK_`` environment
#: variables (``create_app`` reads them with ``app.config.from_prefixed_env``).
SETTINGS = {
    # All load comes from one address: the budgets are far above what any run spends, so a
    # login is never refused for the address's or the user's recent attempts.
    "FLASK_UCLOUD_2FA_LOGIN_ADDRESS_BUDGET": "1000000",
    "FLASK_UCLOUD_2FA_LOGIN_USER_BUDGET": "1000000",
    # The issuer of ID tokens, which production must set (the app warns without it); the
    # benchmark asks for none.
    "FLASK_OAUTH_ISSUER": "http://127.0.0.1",
}

STATUS = "GET /auth/2fa/status"
LOGIN = "POST /auth/login"
ANSWER = "POST /auth/2fa/challenge, right code"
SETUP = "POST /auth/2fa"
CONFIRM = "POST /auth/2fa/challenge, setup"
WRONG = "POST /auth/2fa/challenge, wrong code"
REPLAY = "POST /auth/2fa/challenge, replayed code"
ROUTES = (STATUS, LOGIN, ANSWER, SETUP, CONFIRM, WRONG, REPLAY)
CHALLENGE_PATH = "/auth/2fa/challenge"


@dataclass
class Account:
    """A seeded user, as its client process knows it."""

    user_id: int
    username: str
    password: str
    token: str
    secret: str | None = None  # None: no 2FA yet
    last_step: int = -1  # the last time step accepted for the user
    challenge: str | None = None  # a wrong-code user's open login challenge
    challenge_made: float = 0.0


@dataclass
class Plan:
    """What one client process does: its users and its time window (Unix seconds)."""

    port: int
    seed: int
    login: list[Account]
    wrong: list[Account]
    setup: list[Account]
    tokens: list[str]
    start: float
    warm_end: float
    deadline: float
    challenge_lifetime: int


@dataclass
class Outcome:
    """What one client process saw."""

    #: (route, started in Unix seconds, seconds, status; 0 for no answer).
    requests: list[tuple[str, float, float, int]] = field(default_factory=list)
    #: (operation, started).
    operations: list[tuple[str, float]] = field(default_factory=list)
    #: (user, time step, how): every code the server accepted.
    accepted: list[tuple[int, int, str]] = field(default_factory=list)
    spent: list[str] = field(default_factory=list)  # challenges answered right
    burned: list[str] = field(default_factory=list)  # challenges whose last attempt was used
    skipped: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    samples: list[str] = field(default_factory=list)  # the first errors, for the report
    lost: list[str] = field(default_factory=list)  # guarantees broken, seen by the client
    #: Users whose right answer got no answer: the server may have accepted it.
    unanswered: set[int] = field(default_factory=set)
    #: CPU seconds the process used from the warm-up's end to the end of its load.
    cpu_seconds: float = 0.0


# -- the app ---------------------------------------------------------------------------------


def build_app(database_uri: str, instance_path: str) -> Flask:
    """The example app on ``database_uri``, configured by :data:`SETTINGS` from the
    environment, with ``bench/load.py``'s readiness route (``/bench/bare``)."""
    app = create_app({"SQLALCHEMY_DATABASE_URI": database_uri}, instance_path=instance_path)
    app.add_url_rule("/bench/bare", "bench_bare", lambda: jsonify({"ok": True}))
    return app


def configure_environment() -> None:
    """:data:`SETTINGS` and fresh keys in this process's environment, which the seeding app
    and gunicorn's workers read alike."""
    os.environ.update(SETTINGS)
    os.environ["FLASK_SECRET_KEY"] = json.dumps(secrets.token_urlsafe(32))
    os.environ["FLASK_UCLOUD_2FA_ENCRYPTION_KEYS"] = json.dumps([Fernet.generate_key().decode()])


def seed(
    app: Flask, logins: int, setups: int
) -> tuple[list[Account], list[Account], list[Account]]:
    """The users of each role with a bearer token each: login users and wrong-code users with
    2FA connected through the facade (a code of the previous time step, so each can log in at
    once), setup users without 2FA."""
    now = int(time.time())
    with app.app_context():
        lifetime = 24 * 3600  # the tokens outlive any run
        roles = [("login", logins), ("wrong", WRONG_USERS), ("setup", setups)]
        made: dict[str, list[Account]] = {}
        for role, count in roles:
            passwords = [secrets.token_urlsafe(12) for _ in range(count)]
            users = [
                User(username=f"{role}-{n}", password_hash=generate_password_hash(p, FAST_HASH))
                for n, p in enumerate(passwords)
            ]
            db.session.add_all(users)
            db.session.flush()
            methods = ["pwd"] if role == "setup" else ["pwd", "otp"]
            tokens = [Token.for_login(user.id, methods, now, lifetime) for user in users]
            db.session.add_all([new.row for new in tokens])
            made[role] = [
                Account(user.id, user.username, password, new.access_token)
                for user, password, new in zip(users, passwords, tokens, strict=True)
            ]
        db.session.commit()
        # Each commit expires every object the session holds: start the facade's thousands of
        # commits with an empty session.
        db.session.remove()
        for account in made["login"] + made["wrong"]:
            created = two_factor.start_setup(account.user_id, account.username)
            step = int(time.time() // PERIOD) - 1
            code = pyotp.TOTP(created.secret).generate_otp(step)
            two_factor.confirm_setup(
                created.challenge_id, Proof(code=code), user_id=account.user_id
            )
            account.secret = created.secret
        # The step the server spent for each (normally the one sent): the database says.
        steps = used_steps()
        for account in made["login"] + made["wrong"]:
            account.last_step = steps[account.user_id]
        db.engine.dispose()  # nothing of this process stays connected while the workers run
    return made["login"], made["wrong"], made["setup"]


def used_steps() -> dict[int, int]:
    """The ``last_used_step`` of each user with 2FA connected; in an app context."""
    credential = two_factor.models.Credential
    rows = db.session.execute(
        select(credential.user_id, credential.last_used_step).where(credential.connected)
    )
    return {int(user): int(step) for user, step in rows if step is not None}


# -- the server ------------------------------------------------------------------------------


def serve(database_uri: str, directory: Path) -> AbstractContextManager[Server]:
    """gunicorn with :data:`WORKERS` workers serving :func:`build_app`, stopped on the way out:
    ``bench/load.py``'s server (its flags, its control-socket rule, its start and stop)."""
    app = f"mixed:build_app({database_uri!r}, {str(directory / 'instance')!r})"
    return gunicorn(database_uri, directory, app, WORKERS)


def workers(server: Server) -> dict[int, int]:
    """Each gunicorn worker's pid and resident memory in KiB (``VmRSS``)."""
    found = server_cpu(server.pid)
    if found is None:
        return {}
    memory = {}
    for pid in sorted(found[0] - {server.pid}):
        try:
            lines = Path(f"/proc/{pid}/status").read_text().splitlines()
        except OSError:  # a worker that ended meanwhile
            continue
        rss = [line.split()[1] for line in lines if line.startswith("VmRSS:")]
        if rss:
            memory[pid] = int(rss[0])
    return memory


# -- the clients -----------------------------------------------------------------------------


def current_step() -> int:
    return int(time.time() // PERIOD)


def right_code(secret: str, step: int) -> str | None:
    """The code of ``step``, or ``None`` when a neighbouring step the server may still be in
    has the same code (one in a few hundred thousand): the step it spends would be unknown."""
    totp = pyotp.TOTP(secret)
    code = totp.generate_otp(step)
    neighbours = {totp.generate_otp(other) for other in (step - 1, step + 1, step + 2)}
    return None if code in neighbours else code


def wrong_code(secret: str, step: int, rng: random.Random) -> str:
    """Six digits that are no code of the steps around ``step``."""
    totp = pyotp.TOTP(secret)
    valid = {totp.generate_otp(other) for other in range(step - 2, step + 3)}
    for _ in range(100):
        code = f"{rng.randrange(10**6):06d}"
        if code not in valid:
            return code
    raise RuntimeError("no wrong code in 100 draws")  # five codes out of a million


class Client:
    """One client process's threads, the users they share and what they saw."""

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.lock = threading.Lock()
        self.login_users = collections.deque(plan.login)
        self.wrong_users = collections.deque(plan.wrong)
        self.setup_users = collections.deque(plan.setup)
        #: Codes accepted a moment ago, for replays: (user, step, code).
        self.recent: collections.deque[tuple[Account, int, str]] = collections.deque(maxlen=64)
        self.outcome = Outcome()

    # -- requests ---------------------------------------------------------------------------

    def request(
        self,
        route: str,
        method: str,
        path: str,
        expected: tuple[int, ...],
        body: dict[str, Any] | None = None,
        token: str | None = None,
    ) -> tuple[int, dict[str, Any]]:
        """Send one request and record it; its status (0: no answer) and JSON object."""
        headers = {"Accept": "application/json"}
        data = None
        if body is not None:
            headers["Content-Type"] = "application/json"
            data = json.dumps(body).encode()
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        started, clock = time.time(), time.perf_counter()
        connection = http.client.HTTPConnection(HOST, self.plan.port, timeout=TIMEOUT)
        try:
            connection.request(method, path, body=data, headers=headers)
            response = connection.getresponse()
            status, raw = response.status, response.read()
        except (OSError, http.client.HTTPException) as error:
            status, raw = 0, b""
            self.error("no answer", f"{route}: {error!r}")
        finally:
            connection.close()
        elapsed = time.perf_counter() - clock
        try:
            answer = json.loads(raw) if raw else {}
        except ValueError:
            answer = {}
        answer = answer if isinstance(answer, dict) else {}
        with self.lock:
            self.outcome.requests.append((route, started, elapsed, status))
        if status >= 500:
            self.error("5xx", f"{route}: {status} {raw[:200]!r}")
        elif status and status not in expected:
            self.error("unexpected answer", f"{route}: {status} {raw[:200]!r}")
        return status, answer

    def error(self, kind: str, message: str) -> None:
        with self.lock:
            self.outcome.errors[kind] += 1
            if len(self.outcome.samples) < 20:
                self.outcome.samples.append(message)

    def accepted(self, account: Account, step: int, how: str) -> None:
        with self.lock:
            self.outcome.accepted.append((account.user_id, step, how))

    # -- operations -------------------------------------------------------------------------

    def status(self, rng: random.Random) -> None:
        token = rng.choice(self.plan.tokens)
        status, answer = self.request(STATUS, "GET", "/auth/2fa/status", (200,), token=token)
        if status == 200 and not isinstance(answer.get("connected"), bool):
            self.error("unexpected answer", f"{STATUS}: {answer!r}")

    def begin_login(self, account: Account) -> str | None:
        """A login challenge of ``account``, through its password; ``None`` on a failure."""
        credentials = {"username": account.username, "password": account.password}
        status, answer = self.request(LOGIN, "POST", "/auth/login", (200,), body=credentials)
        if status != 200:
            return None
        challenge = answer.get("2fa")
        if not isinstance(challenge, str):
            self.error("unexpected answer", f"{LOGIN}: no challenge for a user with 2FA")
            return None
        return challenge

    def take(
        self, users: collections.deque[Account], why: str, fresh: bool = False
    ) -> Account | None:
        """The user at the head of ``users`` (the one used longest ago), or ``None``, counted
        as skipped for ``why``. ``fresh``: only if its last accepted time step is over."""
        with self.lock:
            if users and not (fresh and users[0].last_step >= current_step()):
                return users.popleft()
            self.outcome.skipped[why] += 1
        return None

    def skip(self, why: str) -> None:
        with self.lock:
            self.outcome.skipped[why] += 1

    def login(self, rng: random.Random) -> None:
        account = self.take(self.login_users, "login: no user with an unused time step", True)
        if account is None:
            return
        try:
            challenge = self.begin_login(account)
            step = current_step()
            code = right_code(account.secret or "", step)
            if code is None:
                self.skip("login: a code shared with a neighbouring step")
            if challenge is None or code is None:
                return
            body = {"challengeId": challenge, "verificationCode": code}
            status, answer = self.request(ANSWER, "POST", CHALLENGE_PATH, (200,), body=body)
            if status == 0:
                self.outcome.unanswered.add(account.user_id)
            if status != 200:
                return
            if "accessToken" not in answer:
                self.error("unexpected answer", f"{ANSWER}: no accessToken")
            self.accepted(account, step, "login")
            with self.lock:
                self.outcome.spent.append(challenge)
                self.recent.append((account, step, code))
        finally:
            account.last_step = max(account.last_step, current_step())
            with self.lock:
                self.login_users.append(account)

    def setup(self, rng: random.Random) -> None:
        account = self.take(self.setup_users, "setup: no user without 2FA left")
        if account is None:
            return
        status, created = self.request(SETUP, "POST", "/auth/2fa", (200,), token=account.token)
        if status != 200:
            return
        if set(created) != {"otpAuthUri", "qrCodeB64Data", "secret", "challengeId"}:
            self.error("unexpected answer", f"{SETUP}: keys {sorted(created)}")
            return
        step = current_step()
        code = right_code(created["secret"], step)
        if code is None:
            self.skip("setup: a code shared with a neighbouring step")
            return
        body = {"challengeId": created["challengeId"], "verificationCode": code}
        status, _ = self.request(CONFIRM, "POST", CHALLENGE_PATH, (200,), body, account.token)
        if status == 0:
            self.outcome.unanswered.add(account.user_id)
        if status != 200:
            return
        account.secret, account.last_step = created["secret"], step
        self.accepted(account, step, "setup")
        with self.lock:
            self.outcome.spent.append(created["challengeId"])
            self.login_users.append(account)  # connected now: it logs in from now on

    def wrong(self, rng: random.Random) -> None:
        account = self.take(self.wrong_users, "wrong: every wrong-code user busy")
        if account is None:
            return
        try:
            # A challenge lives 10 minutes: a new one well before.
            old = time.time() - account.challenge_made > self.plan.challenge_lifetime - 60
            if account.challenge is None or old:
                account.challenge, account.challenge_made = self.begin_login(account), time.time()
            if account.challenge is None:
                return
            code = wrong_code(account.secret or "", current_step(), rng)
            body = {"challengeId": account.challenge, "verificationCode": code}
            status, answer = self.request(WRONG, "POST", CHALLENGE_PATH, (403, 429), body=body)
            if status == 200:
                self.lost(f"a wrong code was accepted for user {account.user_id}")
            elif status == 403 and answer.get("remainingAttempts") == 0:
                with self.lock:
                    self.outcome.burned.append(account.challenge)
                account.challenge = None
            self.check_refusal(WRONG, status, answer)
        finally:
            with self.lock:
                self.wrong_users.append(account)

    def replay(self, rng: random.Random) -> None:
        with self.lock:
            recent = self.recent.pop() if self.recent else None
        if recent is None:
            self.skip("replay: no code accepted lately")
            return
        account, step, code = recent
        challenge = self.begin_login(account)
        if challenge is None:
            return
        body = {"challengeId": challenge, "verificationCode": code}
        status, answer = self.request(REPLAY, "POST", CHALLENGE_PATH, (403, 429), body=body)
        if status == 200:
            self.accepted(account, step, "replay")
            self.lost(f"a code of user {account.user_id} was accepted twice (step {step})")
        self.check_refusal(REPLAY, status, answer)

    def check_refusal(self, route: str, status: int, answer: dict[str, Any]) -> None:
        codes = {403: ("INVALID_CODE",), 429: ("TOO_MANY_ATTEMPTS", "LOCKED_OUT")}
        if status in codes and answer.get("errorCode") not in codes[status]:
            self.error("unexpected answer", f"{route}: {status} {answer!r}")

    def lost(self, message: str) -> None:
        with self.lock:
            self.outcome.lost.append(message)

    # -- the threads ------------------------------------------------------------------------

    def thread(self, number: int) -> None:
        rng = random.Random(self.plan.seed * 100 + number)
        operations = {name: getattr(self, name) for name in MIX}
        names, weights = list(MIX), list(MIX.values())
        for _ in range(MAX_OPERATIONS):
            started = time.time()
            if started >= self.plan.deadline:
                break
            name = rng.choices(names, weights)[0]
            with self.lock:
                self.outcome.operations.append((name, started))
            try:
                operations[name](rng)
            except Exception as error:  # a bug of the client: reported, and this thread ends
                self.error("client failure", f"{name}: {error!r}")
                return

    def run(self) -> Outcome:
        time.sleep(max(0.0, self.plan.start - time.time()))
        threads = [
            threading.Thread(target=self.thread, args=(number,), daemon=True)
            for number in range(THREADS_PER_PROCESS)
        ]
        for thread in threads:
            thread.start()
        time.sleep(max(0.0, self.plan.warm_end - time.time()))
        cpu = time.process_time()  # of every thread of the process
        for thread in threads:
            # Each thread's last request starts before the deadline and ends within TIMEOUT.
            thread.join(timeout=max(0.0, self.plan.deadline - time.time()) + 2 * TIMEOUT)
        if any(thread.is_alive() for thread in threads):
            self.error("no answer", "a client thread did not finish")
        with self.lock:
            self.outcome.cpu_seconds = time.process_time() - cpu
            return self.outcome


def client_process(plan: Plan) -> Outcome:
    """One client process's run (in a process of its own, spawned)."""
    return Client(plan).run()


# -- the run ---------------------------------------------------------------------------------


def plans(
    port: int,
    users: tuple[list[Account], list[Account], list[Account]],
    window: tuple[float, float, float],
    challenge_lifetime: int,
) -> list[Plan]:
    """Each client process's slice of the users; every process may check any user's status."""
    tokens = [account.token for role in users for account in role]
    n = CLIENT_PROCESSES
    login, wrong, setup = users
    return [
        Plan(
            port=port,
            seed=number,
            login=login[number::n],
            wrong=wrong[number::n],
            setup=setup[number::n],
            tokens=tokens,
            start=window[0],
            warm_end=window[1],
            deadline=window[2],
            challenge_lifetime=challenge_lifetime,
        )
        for number in range(n)
    ]


def backends_cpu(database: str) -> dict[int, float]:
    """The CPU seconds used so far by each PostgreSQL backend connected to ``database`` (a
    libpq URL), where the server runs on this machine and ``/proc`` shows it; else empty."""
    if make_url(database).host not in LOCAL_HOSTS:
        return {}  # its pids are another machine's
    with psycopg.connect(database, autocommit=True) as connection:
        pids = connection.execute(
            "SELECT pid FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    used = {}
    for (pid,) in pids:
        try:
            # After the command name in parentheses: utime and stime at 11-12.
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:  # no /proc, another machine's server, or a backend that ended
            continue
        used[pid] = (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    return used


def drive(
    server: Server,
    database: str,
    users: tuple[list[Account], list[Account], list[Account]],
    warm_up: float,
    duration: float,
    challenge_lifetime: int,
) -> tuple[list[Outcome], dict[str, Any]]:
    """The load from the client processes; their outcomes, and what the server and the
    database used in the measured window (CPU time; the workers' memory after the warm-up and
    after the run)."""
    port = int(server.url.rsplit(":", 1)[1])
    start = time.time() + 3  # the spawned clients import the app's packages meanwhile
    window = (start, start + warm_up, start + warm_up + duration)
    spawn = multiprocessing.get_context("spawn")  # the clients inherit nothing of this process
    # A pool, not an executor: leaving it terminates the clients, also on Ctrl-C or an error.
    with spawn.Pool(CLIENT_PROCESSES) as pool:
        pending = [
            pool.apply_async(client_process, (plan,))
            for plan in plans(port, users, window, challenge_lifetime)
        ]
        time.sleep(max(0.0, window[1] - time.time()))
        cpu_before, memory_before = server_cpu(server.pid), workers(server)
        database_before = backends_cpu(database)
        time.sleep(max(0.0, window[2] - time.time()))
        cpu_after, database_after = server_cpu(server.pid), backends_cpu(database)
        # Each client's last request ends within TIMEOUT of the deadline, and so the client.
        finished = window[2] + 2 * TIMEOUT + 10
        try:
            outcomes = [result.get(max(0.1, finished - time.time())) for result in pending]
        except multiprocessing.TimeoutError as error:
            raise BenchmarkError("A client process did not finish: did it die?") from error
    memory_after = workers(server)
    server_use: dict[str, Any] = {
        "window": window[1:],
        "memory_before": memory_before,
        "memory_after": memory_after,
    }
    if cpu_before is not None and cpu_after is not None and cpu_before[0] == cpu_after[0]:
        server_use["cpu_seconds"] = cpu_after[1] - cpu_before[1]
    if database_before:
        server_use["database_cpu_seconds"] = sum(
            database_after[pid] - used
            for pid, used in database_before.items()
            if pid in database_after
        )
    return outcomes, server_use


def check_database(app: Flask, outcomes: list[Outcome], seeded: dict[int, int]) -> dict[str, Any]:
    """The guarantees, from the clients' records and the database after the run."""
    accepted = [record for outcome in outcomes for record in outcome.accepted]
    unanswered = set().union(*(outcome.unanswered for outcome in outcomes))
    lost = [message for outcome in outcomes for message in outcome.lost]
    counts = collections.Counter((user, step) for user, step, _how in accepted)
    duplicates = sorted(key for key, count in counts.items() if count > 1)
    lost += [f"user {user}: the code of step {step} accepted twice" for user, step in duplicates]
    expected = dict(seeded)
    for user, step, _how in accepted:
        expected[user] = max(expected.get(user, -1), step)
    spent = [c for outcome in outcomes for c in outcome.spent]
    burned = [c for outcome in outcomes for c in outcome.burned]
    with app.app_context():
        models = two_factor.models
        credential, challenge = models.Credential, models.Challenge
        steps = used_steps()
        left = set(db.session.execute(select(challenge.id_hash)).scalars())
        limit = app.config["UCLOUD_2FA_MAX_ATTEMPTS"]
        over_limit = db.session.execute(
            select(func.count()).where(challenge.attempts >= limit)
        ).scalar_one()
        setup_left = db.session.execute(
            select(func.count())
            .select_from(challenge)
            .join(credential, credential.id == challenge.credential_id)
            .where(challenge.kind == "setup", credential.connected.is_(True))
        ).scalar_one()
        tokens = db.session.execute(
            select(func.count()).select_from(Token).where(Token.amr == "pwd otp")
        ).scalar_one()
        db.session.remove()
        db.engine.dispose()
    for user, step in sorted(expected.items()):
        stored = steps.get(user)
        if stored is None:
            lost.append(f"user {user}: a code was accepted but 2FA is not connected")
        elif stored < step:
            lost.append(f"user {user}: last_used_step {stored}, but step {step} was accepted")
        elif stored > step and user not in unanswered:
            lost.append(f"user {user}: last_used_step {stored}, later than any accepted step")
    hashed = {hashlib.sha256(c.encode()).hexdigest(): c for c in spent + burned}
    still = [c for h, c in hashed.items() if h in left]
    lost += [f"challenge {c[:8]}... was spent or burned but still exists" for c in still]
    if over_limit:
        lost.append(f"{over_limit} challenges have {limit} or more attempts but still exist")
    if setup_left:
        lost.append(f"{setup_left} setup challenges of connected users still exist")
    logins = sum(1 for _user, _step, how in accepted if how == "login")
    issued = tokens - len(seeded)  # the seeded login and wrong-code users have one each
    if issued != logins and not (logins < issued <= logins + len(unanswered)):
        lost.append(f"{logins} login answers accepted, {issued} tokens issued by them")
    return {
        "accepted_codes": len(accepted),
        "codes_accepted_twice": len(duplicates),
        "credentials_checked": len(expected),
        "spent_challenges_checked": len(spent),
        "burned_challenges_checked": len(burned),
        "challenges_left": len(left),
        "challenges_over_attempt_limit": over_limit,
        "login_tokens_issued": issued,
        "right_answers_without_answer": len(unanswered),
        "lost": lost,
    }


def run(url: str, duration: float, quick: bool) -> dict[str, Any]:
    warm_up = min(10.0, max(3.0, duration / 6))
    logins = round(LOGINS_PER_SECOND * min(PERIOD, warm_up + duration))
    setups = round(SETUPS_PER_SECOND * (warm_up + duration))
    load_before = [round(load, 2) for load in os.getloadavg()]
    configure_environment()
    with databases(url, 1) as (name,), tempfile.TemporaryDirectory() as directory:
        database_uri = make_url(url).set(database=name).render_as_string(False)
        app = build_app(database_uri, str(Path(directory, "instance")))
        started = time.perf_counter()
        users = seed(app, logins, setups)
        seeding = time.perf_counter() - started
        login, wrong, setup = users
        seeded = {account.user_id: account.last_step for account in login + wrong}
        total = sum(len(role) for role in users)
        print(
            f"Seeded {total:,} users in {seeding:.1f} s: {logins:,} log in, {WRONG_USERS} answer"
            f" wrong codes (2FA connected), {setups:,} set 2FA up.",
            flush=True,
        )
        lifetime = int(app.config["UCLOUD_2FA_CHALLENGE_LIFETIME"])
        with serve(database_uri, Path(directory)) as server:
            print(
                f"Mixed load ({'quick' if quick else 'full'}): gunicorn, {WORKERS} sync workers;"
                f" {CLIENT_PROCESSES} client processes x {THREADS_PER_PROCESS} threads;"
                f" {warm_up:.0f} s warm-up, then {duration:.0f} s measured",
                flush=True,
            )
            database = libpq_url(url, name)
            outcomes, server_use = drive(server, database, users, warm_up, duration, lifetime)
        guarantees = check_database(app, outcomes, seeded)
    timing = {
        "seeding_seconds": round(seeding, 1),
        "warm_up_seconds": warm_up,
        "duration_seconds": duration,
    }
    counts = {"login": len(login), "wrong_code": len(wrong), "setup": len(setup)}
    section = report(outcomes, server_use, guarantees, quick, timing, load_before, counts)
    show(section)
    return section


# -- the report ------------------------------------------------------------------------------


def percentiles(values: list[float]) -> dict[str, float | None]:
    """p50, p95, p99 and the maximum, in milliseconds."""
    if len(values) < 2:
        only = round(values[0] * 1e3, 2) if values else None
        return {"p50_ms": only, "p95_ms": only, "p99_ms": only, "max_ms": only}
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return {
        "p50_ms": round(cuts[49] * 1e3, 2),
        "p95_ms": round(cuts[94] * 1e3, 2),
        "p99_ms": round(cuts[98] * 1e3, 2),
        "max_ms": round(max(values) * 1e3, 2),
    }


def route_figures(
    outcomes: list[Outcome], window: tuple[float, float], duration: float
) -> dict[str, Any]:
    measured = [
        record
        for outcome in outcomes
        for record in outcome.requests
        if window[0] <= record[1] < window[1]
    ]
    figures: dict[str, Any] = {}
    for route in ROUTES:
        mine = [record for record in measured if record[0] == route]
        statuses = collections.Counter(str(record[3]) for record in mine)
        figures[route] = {
            "requests": len(mine),
            "per_second": round(len(mine) / duration, 1),
            **percentiles([record[2] for record in mine if record[3]]),
            "statuses": dict(sorted(statuses.items())),
        }
    return figures


def cpu_figures(
    server_use: dict[str, Any], outcomes: list[Outcome], duration: float, requests: int
) -> dict[str, Any]:
    """The cores each party kept busy in the measured window, and its CPU time per request."""
    used = {
        "gunicorn": server_use.get("cpu_seconds"),
        "postgresql": server_use.get("database_cpu_seconds"),
        "clients": sum(outcome.cpu_seconds for outcome in outcomes),
    }
    return {
        name: {
            "cores_busy": round(seconds / duration, 2),
            "us_per_request": round(seconds / max(requests, 1) * 1e6),
        }
        for name, seconds in used.items()
        if seconds is not None
    }


def memory_figures(server_use: dict[str, Any]) -> dict[str, Any]:
    before, after = server_use["memory_before"], server_use["memory_after"]
    rows = [
        {
            "pid": pid,
            "after_warm_up_kib": before[pid],
            "after_run_kib": after[pid],
            "growth": round(after[pid] / before[pid] - 1, 4),
        }
        for pid in sorted(set(before) & set(after))
    ]
    replaced = sorted(set(before) ^ set(after))
    growths = [abs(row["growth"]) for row in rows]
    met = bool(rows) and not replaced and max(growths) <= MEMORY_TARGET
    return {
        "workers": rows,
        "replaced_workers": replaced,
        "max_growth": max(growths) if growths else None,
        "target": f"within {MEMORY_TARGET:.0%}",
        "met": met if before else None,
    }


def report(
    outcomes: list[Outcome],
    server_use: dict[str, Any],
    guarantees: dict[str, Any],
    quick: bool,
    timing: dict[str, float],
    load_before: list[float],
    users: dict[str, int],
) -> dict[str, Any]:
    """The ``mixed`` section: what the clients saw in the measured window, what the server
    used, and the checks."""
    window, duration = server_use["window"], timing["duration_seconds"]
    routes = route_figures(outcomes, window, duration)
    requests = sum(figure["requests"] for figure in routes.values())
    operations = collections.Counter(
        name
        for outcome in outcomes
        for name, at in outcome.operations
        if window[0] <= at < window[1]
    )
    errors: collections.Counter[str] = collections.Counter()
    skipped: collections.Counter[str] = collections.Counter()
    for outcome in outcomes:
        errors.update(outcome.errors)
        skipped.update(outcome.skipped)
    samples = [sample for outcome in outcomes for sample in outcome.samples][:20]
    return {
        "mode": "quick" if quick else "full",
        "database": "postgresql (temporary database)",
        "server": (
            f"gunicorn {importlib.metadata.version('gunicorn')}, {WORKERS} sync workers on {HOST}"
        ),
        "clients": (
            f"{CLIENT_PROCESSES} processes x {THREADS_PER_PROCESS} threads, http.client,"
            " one connection per request"
        ),
        "settings": {key: value for key, value in SETTINGS.items() if "BUDGET" in key},
        "users": users,
        **timing,
        "requests": requests,
        "requests_per_second": round(requests / duration, 1),
        "operations": dict(operations),
        "routes": routes,
        "cpu": cpu_figures(server_use, outcomes, duration, requests),
        "errors": {"total": sum(errors.values()), **dict(errors), "samples": samples},
        "server_errors_5xx": errors["5xx"],
        "skipped": dict(skipped),
        "memory": memory_figures(server_use),
        "guarantees": guarantees,
        "load_average_before": load_before,
        "load_average_after": [round(load, 2) for load in os.getloadavg()],
    }


def show(section: dict[str, Any]) -> None:
    """Print the section's figures and checks."""
    print(
        f"\n{'route':<40} {'requests':>9} {'req/s':>7} {'p50':>8} {'p95':>8} {'p99':>8}  answers"
    )
    for route, figure in section["routes"].items():
        answers = ", ".join(f"{count} x {status}" for status, count in figure["statuses"].items())
        times = "".join(
            f" {figure[key]:6.1f}ms" if figure[key] is not None else f" {'-':>8}"
            for key in ("p50_ms", "p95_ms", "p99_ms")
        )
        print(f"{route:<40} {figure['requests']:9d} {figure['per_second']:7.1f}{times}  {answers}")
    operations = section["operations"]
    done = max(sum(operations.values()), 1)
    shares = ", ".join(f"{name} {operations.get(name, 0) / done:.1%}" for name in MIX)
    print(
        f"\n{section['requests']:,} requests in {section['duration_seconds']:.0f} s:"
        f" {section['requests_per_second']} req/s; {done:,} operations: {shares}"
    )
    cpu = "; ".join(
        f"{name} {figure['cores_busy']:.2f} cores ({figure['us_per_request']} µs per request)"
        for name, figure in section["cpu"].items()
    )
    print(f"CPU in the measured window, of {os.cpu_count()} cores: {cpu}")
    errors = {k: v for k, v in section["errors"].items() if k not in ("total", "samples")}
    print(
        f"Errors: {section['errors']['total']} ({errors or 'none'}); 5xx: {errors.get('5xx', 0)}."
    )
    for sample in section["errors"]["samples"]:
        print(f"  {sample}")
    if section["skipped"]:
        print(f"Skipped operations: {section['skipped']}")
    memory = section["memory"]
    for row in memory["workers"]:
        print(
            f"Worker {row['pid']}: {row['after_warm_up_kib'] / 1024:.1f} MiB after the warm-up,"
            f" {row['after_run_kib'] / 1024:.1f} MiB after the run ({row['growth']:+.1%})"
        )
    if memory["replaced_workers"]:
        print(f"!!! gunicorn replaced workers during the run: {memory['replaced_workers']}")
    print(f"Memory {memory['target']} of the warm-up's: {'met' if memory['met'] else 'NOT met'}.")
    checks = section["guarantees"]
    print(
        f"Guarantees: {checks['accepted_codes']:,} codes accepted,"
        f" {checks['codes_accepted_twice']} twice; {checks['credentials_checked']:,}"
        f" credentials' last_used_step, {checks['spent_challenges_checked']:,} spent and"
        f" {checks['burned_challenges_checked']:,} burned challenges checked;"
        f" {checks['challenges_left']:,} challenges left (open, or answered with a replay)."
    )
    for message in checks["lost"][:20]:
        print(f"!!! lost guarantee: {message}")
    if not checks["lost"]:
        print("No guarantee lost.")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="15 s of load, fewer users")
    parser.add_argument("--duration", type=float, help="seconds of measured load (60; 15 quick)")
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    duration = args.duration or (15.0 if args.quick else 60.0)
    if duration < 5:
        parser.error("--duration must be 5 seconds or more")
    url = os.environ.get(DATABASE_URL_VARIABLE, DEFAULT_DATABASE_URL)
    try:
        psycopg.connect(libpq_url(url), connect_timeout=5).close()
    except psycopg.OperationalError as error:
        shown = make_url(url).render_as_string(hide_password=True)
        print(
            f"Mixed-load benchmark skipped: PostgreSQL is not reachable at {shown}"
            f" ({' '.join(str(error).split())}). Start it, or set {DATABASE_URL_VARIABLE}."
        )
        return 0
    # A SIGTERM (make interrupted, a CI timeout) unwinds like Ctrl-C: gunicorn is stopped and
    # the database dropped.
    signal.signal(signal.SIGTERM, lambda _signal, _frame: sys.exit(128 + signal.SIGTERM))
    started = time.perf_counter()
    try:
        results = run(url, duration, args.quick)
    except BenchmarkError as error:
        print(f"\nbench/mixed.py: {error}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("\nbench/mixed.py: interrupted; gunicorn is stopped.", file=sys.stderr)
        return 130
    results["seconds"] = round(time.perf_counter() - started, 1)
    write_section(args.output, "mixed", results)
    print(f"\nWrote the mixed-load figures to {args.output} in {results['seconds']} s.")
    broken = results["errors"]["total"] or results["guarantees"]["lost"]
    if broken:
        print("bench/mixed.py: functional failures above (errors or lost guarantees).")
    return 1 if broken else 0  # timings never fail it; a wrong answer or a lost guarantee does


if __name__ == "__main__":
    sys.exit(main())
