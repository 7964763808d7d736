"""The scale benchmark: status and answer at a million users in PostgreSQL.

Run it with ``.venv/bin/python bench/scale.py [--quick] [--users N] [--output PATH]`` (about
3 minutes, half a minute of it the fill; ``--quick``, with 100,000 users and fewer calls, about
20 s). It needs a PostgreSQL server: ``UCLOUD_2FA_BENCH_DATABASE_URL`` (default
``postgresql+psycopg://postgres@127.0.0.1:5432/test``) names one, and a database to connect to
while creating the benchmark's own. When the server cannot be reached, it says so and exits 0.

Two fresh databases with random names are created for the run and dropped at its end: one with
1,000 users, one with a million (``--users``). Both are filled the same way, by ``COPY``: each
user has a password hash, a bearer token and a TOTP credential (95 % connected, all sharing one
valid encrypted secret, made once with the app's own key), every tenth user ten recovery codes,
and there are pending login challenges (3 % of the users) and a backlog of expired ones (1 %).
Then ``VACUUM (ANALYZE)`` and, for a superuser (who also skips the foreign-key checks of the
fill), a ``CHECKPOINT``, so that the timing starts on a settled database.

In each database, one user is made through the API (login, setup, confirmation) with a secret
of its own. Its status check, two login steps (the first cleans the backlog of expired
challenges, the second finds none) and an answer are run once, and every SQL statement they
send is explained as it is sent (SQLAlchemy's ``before_cursor_execute``): ``EXPLAIN (ANALYZE,
BUFFERS)`` with its parameters, on the app's connection and in its transaction, inside a
savepoint rolled back before the statement really runs; and its generic plan, which the server
may use once psycopg has prepared the statement. A ``Seq Scan`` on a table of 10,000 rows or
more in either is reported.

Then the example app of ``bench/run.py`` on each database is timed with Flask's test client,
both side by side in the same interleaved rounds (``run.measure``), so that load from elsewhere
on the machine hits both alike: the protected route (the token lookup alone), ``GET
/auth/2fa/status``, and ``POST /auth/2fa/challenge`` answering a fresh login challenge (made
untimed) with a correct code, the 2FA clock moving 30 s per answer, as ``run.py`` times it:
with a ``login_completed`` hook that issues nothing (the extension's share, the target) and with
the example app's hook, which inserts a token. Each call is for a random user of the whole
database, so the lookups range over the whole indexes rather than one cached leaf. The login
step's ``begin_login`` (a challenge inserted, expired ones cleaned) is timed too.

The target: at a million users, status and answer within 1.1x of the 1,000-user figures, and no
table scan on the hot paths. The figures and plans go to the ``scale`` section of
``bench/results.json``. It exits 0 whatever the timings and plans, and 1 when a route does not
answer as it should.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import os
import random
import re
import secrets
import sys
import time
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timezone
from pathlib import Path
from typing import Any

import psycopg
import pyotp
from flask import Flask
from flask.testing import FlaskClient
from run import RESULTS
from run import Case
from run import FakeClock
from run import Figure
from run import build_app
from run import connect
from run import finished
from run import make_user
from run import measure
from run import user_id_of
from run import write_section
from sqlalchemy import event
from sqlalchemy import select
from sqlalchemy.engine import make_url
from werkzeug.security import generate_password_hash
from werkzeug.test import TestResponse

import example_app
from example_app import db
from example_app.models import hash_token
from example_app.ucloud_2fa import finish_login

DATABASE_URL_VARIABLE = "UCLOUD_2FA_BENCH_DATABASE_URL"
DEFAULT_DATABASE_URL = "postgresql+psycopg://postgres@127.0.0.1:5432/test"
SMALL_USERS = 1_000
FULL_USERS = 1_000_000
QUICK_USERS = 100_000
TARGET = 1.10
#: Shares of the users with a pending login challenge, and with an expired one not cleaned yet.
PENDING_SHARE = 0.03
EXPIRED_SHARE = 0.01
#: Every ``PENDING_CREDENTIAL_EVERY``-th user's credential is pending (unconfirmed).
PENDING_CREDENTIAL_EVERY = 20
#: Every ``RECOVERY_EVERY``-th user holds ``RECOVERY_CODES`` recovery codes.
RECOVERY_EVERY = 10
RECOVERY_CODES = 10
#: A sequential scan of a table this big on a hot path is a finding.
BIG_TABLE_ROWS = 10_000
COPY_BATCH = 20_000
TOKEN_LIFETIME = 30 * 86400
LOGIN_CONTEXT = '{"methods": ["pwd"], "state": {}}'


class BenchFailure(RuntimeError):
    """A route or the database did not answer as it should: the benchmark is wrong, not slow."""


def expect(response: TestResponse, status: int) -> None:
    if response.status_code != status:
        raise BenchFailure(
            f"{response.request.method} {response.request.path} answered"
            f" {response.status_code}, not {status}: {response.get_data(as_text=True)[:300]}"
        )


@dataclass
class Scale:
    """One database of the run with its app, its filler users and its API-made user."""

    label: str
    users: int
    #: The database, as psycopg takes it.
    url: str
    app: Flask
    client: FlaskClient
    #: Derives the filler users' access tokens, so any of them can be recomputed.
    token_key: bytes = field(default_factory=lambda: secrets.token_bytes(32))
    first_filler: int = 0
    last_filler: int = 0
    #: The TOTP secret every filler credential holds.
    filler_secret: str = ""
    #: The API-made user: its token's header, its own secret and its id.
    headers: dict[str, str] = field(default_factory=dict)
    secret: str = ""
    user_id: int = 0
    info: dict[str, Any] = field(default_factory=dict)

    def access_token(self, user_id: int) -> str:
        digest = hashlib.blake2b(user_id.to_bytes(8, "big"), key=self.token_key, digest_size=33)
        return base64.urlsafe_b64encode(digest.digest()).decode()

    def random_user(self, rng: random.Random, connected: bool = False) -> int:
        while True:
            user_id = rng.randint(self.first_filler, self.last_filler)
            if not connected or user_id % PENDING_CREDENTIAL_EVERY:
                return user_id


# -- databases ---------------------------------------------------------------------------------


def libpq_url(url: str, database: str | None = None) -> str:
    """``url`` (an SQLAlchemy URL) as psycopg takes it, on ``database`` if given."""
    parsed = make_url(url).set(drivername="postgresql")
    if database is not None:
        parsed = parsed.set(database=database)
    return parsed.render_as_string(hide_password=False)


@contextmanager
def databases(url: str, count: int) -> Iterator[list[str]]:
    """``count`` new, empty databases with random names, dropped on the way out."""
    names = [f"ucloud_2fa_scale_{secrets.token_hex(4)}" for _ in range(count)]
    with psycopg.connect(libpq_url(url), autocommit=True) as admin:
        try:
            for name in names:
                admin.execute(f'CREATE DATABASE "{name}"')
            yield names
        finally:
            for name in names:
                admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def copy_lines(cursor: psycopg.Cursor[Any], target: str, lines: Iterable[str]) -> int:
    """``COPY`` tab-separated ``lines`` into ``target`` (``table (columns)``); how many."""
    count = 0
    batch: list[str] = []
    with cursor.copy(f"COPY {target} FROM STDIN") as copy:
        for line in lines:
            batch.append(line)
            if len(batch) == COPY_BATCH:
                copy.write("".join(batch))
                count += len(batch)
                batch.clear()
        copy.write("".join(batch))
    return count + len(batch)


@dataclass
class Filler:
    """The rows of ``count`` more users, as ``COPY`` text lines, with ids after those taken.

    Every user has a bearer token and a credential: connected, but for every
    ``PENDING_CREDENTIAL_EVERY``-th user, and holding ``encrypted_secret``.
    """

    scale: Scale
    count: int
    #: The first free id of each table with a serial id.
    ids: dict[str, int]
    encrypted_secret: str
    now: float
    rng: random.Random

    @property
    def users(self) -> range:
        first = self.ids['"user"']
        return range(first, first + self.count)

    def credential_of(self, user_id: int) -> int:
        return self.ids["ucloud_2fa_credential"] + user_id - self.ids['"user"']

    def user_lines(self) -> Iterator[str]:
        password_hash = generate_password_hash(secrets.token_urlsafe(), "pbkdf2:sha256:1")
        for user in self.users:
            yield f"{user}\tscale-{user}\t{password_hash}\n"

    def token_lines(self) -> Iterator[str]:
        issued, offset = int(time.time()), self.ids["token"] - self.ids['"user"']
        # As the app stores them: hashed, each a login of its own (a token family of its own).
        for user in self.users:
            yield (
                f"{user + offset}\t{user}\tpwd\t{issued}\texample-app\tBearer\t"
                f"{hash_token(self.scale.access_token(user))}\t{hash_token(secrets.token_urlsafe(48))}\t\t{issued}\t0\t0"
                f"\t{TOKEN_LIFETIME}\t{secrets.token_hex(16)}\n"
            )

    def credential_lines(self) -> Iterator[str]:
        created = text_time(self.now - 86400)
        connected = f"t\t{created}\t{created}"
        pending = f"f\t{created}\t\\N"
        for user in self.users:
            state = pending if user % PENDING_CREDENTIAL_EVERY == 0 else connected
            yield (
                f"{self.credential_of(user)}\t{user}\t{self.encrypted_secret}\t{state}"
                "\t\\N\t0\t\\N\n"
            )

    def challenge_lines(self) -> Iterator[str]:
        """Expired challenges (up to a day old), then pending ones, in the order they were
        made. The pending ones expire a year on: the 2FA clock moves 30 s per answer, and they
        stay pending for the whole run."""
        rng, users = self.rng, self.users
        expired = [
            self.now - rng.uniform(1, 86400) for _ in range(round(self.count * EXPIRED_SHARE))
        ]
        pending = [
            self.now + 365 * 86400 + rng.uniform(0, 600)
            for _ in range(round(self.count * PENDING_SHARE))
        ]
        for expires in sorted(expired) + sorted(pending):
            user = rng.choice(users)
            yield (
                f"{secrets.token_hex(32)}\tlogin\t{user}\t{text_time(expires)}\t0"
                f"\t{LOGIN_CONTEXT}\t\\N\t{self.credential_of(user)}\n"
            )

    def recovery_code_lines(self) -> Iterator[str]:
        code_id = self.ids["ucloud_2fa_recovery_code"]
        for user in self.users[1::RECOVERY_EVERY]:
            for _ in range(RECOVERY_CODES):
                yield f"{code_id}\t{secrets.token_hex(32)}\t{self.credential_of(user)}\n"
                code_id += 1

    def copies(self) -> list[tuple[str, str, Iterator[str]]]:
        """What to ``COPY``: a name, the target, the lines."""
        return [
            ("users", '"user" (id, username, password_hash)', self.user_lines()),
            (
                "tokens",
                "token (id, user_id, amr, auth_time, client_id, token_type, access_token,"
                " refresh_token, scope, issued_at, access_token_revoked_at,"
                " refresh_token_revoked_at, expires_in, family_id)",
                self.token_lines(),
            ),
            (
                "credentials",
                "ucloud_2fa_credential (id, user_id, encrypted_secret, connected, created_at,"
                " connected_at, last_used_step, failures, blocked_until)",
                self.credential_lines(),
            ),
            (
                "challenges",
                "ucloud_2fa_challenge (id_hash, kind, user_id, expires_at, attempts,"
                " login_context, browser_binding, credential_id)",
                self.challenge_lines(),
            ),
            (
                "recovery_codes",
                "ucloud_2fa_recovery_code (id, code_hash, credential_id)",
                self.recovery_code_lines(),
            ),
        ]


SERIAL_TABLES = ('"user"', "token", "ucloud_2fa_credential", "ucloud_2fa_recovery_code")


def fill(scale: Scale, count: int, encrypted_secret: str, now: float, rng: random.Random) -> None:
    """Add ``count`` users with their rows by ``COPY`` in one transaction, then ``VACUUM
    (ANALYZE)``; the row counts and timings go to ``scale.info``.

    The rows are consistent by construction, so a superuser skips the foreign-key checks, as
    ``pg_restore --disable-triggers`` does (a quarter less time), and ends with a
    ``CHECKPOINT``.
    """
    started = time.perf_counter()
    with psycopg.connect(scale.url) as connection, connection.cursor() as cursor:
        row = cursor.execute("SELECT current_setting('is_superuser') = 'on'").fetchone()
        superuser = row is not None and row[0]
        if superuser:
            cursor.execute("SET LOCAL session_replication_role = replica")
        ids: dict[str, int] = {}
        for table in SERIAL_TABLES:
            cursor.execute(f"SELECT coalesce(max(id), 0) + 1 FROM {table}")
            ids[table] = cursor.fetchone()[0]  # type: ignore[index]
        filler = Filler(scale, count, ids, encrypted_secret, now, rng)
        rows = {name: copy_lines(cursor, target, lines) for name, target, lines in filler.copies()}
        for table in SERIAL_TABLES:  # the app's own inserts go on after the filler ids
            cursor.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), max(id)) FROM {table}"
            )
    scale.first_filler, scale.last_filler = filler.users[0], filler.users[-1]
    filled = time.perf_counter()
    with psycopg.connect(scale.url, autocommit=True) as connection:
        connection.execute("VACUUM (ANALYZE)")
        vacuumed = time.perf_counter()
        if superuser:  # the fill's pages are written now, not by a checkpoint while timing
            connection.execute("CHECKPOINT")
    scale.info.update(
        rows_added=rows,
        fill_seconds=round(filled - started, 1),
        vacuum_analyze_seconds=round(vacuumed - filled, 1),
        checkpoint_seconds=round(time.perf_counter() - vacuumed, 1),
    )


def utc(timestamp: float) -> datetime:
    """The naive UTC time the extension stores."""
    return datetime.fromtimestamp(timestamp, timezone.utc).replace(tzinfo=None)


def text_time(timestamp: float) -> str:
    return utc(timestamp).isoformat(sep=" ")


def describe(scale: Scale) -> None:
    """Row counts and sizes of the tables, and the server, in ``scale.info``."""
    with psycopg.connect(scale.url) as connection:
        tables = connection.execute(
            "SELECT relname, reltuples::bigint, pg_total_relation_size(oid) FROM pg_class"
            " WHERE relkind = 'r' AND relnamespace = 'public'::regnamespace ORDER BY relname"
        ).fetchall()
        scale.info["tables"] = {
            name: {"rows": rows, "mb_with_indexes": round(size / 2**20, 1)}
            for name, rows, size in tables
        }
        scale.info["server"] = {
            setting: connection.execute(f"SHOW {setting}").fetchone()[0]  # type: ignore[index]
            for setting in ("server_version", "shared_buffers", "work_mem", "random_page_cost")
        }


def blocks(scale: Scale) -> tuple[int, int]:
    """Blocks the database's sessions found in shared buffers, and read from outside them."""
    with psycopg.connect(scale.url) as connection:
        row = connection.execute(
            "SELECT blks_hit, blks_read FROM pg_stat_database WHERE datname = current_database()"
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


# -- plans -------------------------------------------------------------------------------------


@contextmanager
def explained(scale: Scale, path: str) -> Iterator[list[dict[str, Any]]]:
    """The plan of every statement the app sends inside the block, taken just before it runs,
    on its connection and in its transaction, so it sees what the statement will see.

    Each plan is an ``EXPLAIN (ANALYZE, BUFFERS)`` inside a savepoint that is then rolled back:
    the statement runs twice, and only its second, real run counts.
    """
    found: list[dict[str, Any]] = []

    def before(*args: Any) -> None:
        cursor, sql, parameters, many = args[1], args[2], args[3], args[5]
        found.append(
            explain(scale, cursor.connection, path, sql, parameters[0] if many else parameters)
        )

    with scale.app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    try:
        yield found
    finally:
        event.remove(engine, "before_cursor_execute", before)


def explain(
    scale: Scale, connection: psycopg.Connection[Any], path: str, sql: str, parameters: Any
) -> dict[str, Any]:
    """One statement's plan with its parameters, run on the app's connection, and its generic
    plan, which the server may switch to once psycopg has prepared the statement."""
    with connection.cursor() as cursor:
        cursor.execute("SAVEPOINT scale_explain")
        try:
            plan = [
                row[0] for row in cursor.execute(f"EXPLAIN (ANALYZE, BUFFERS) {sql}", parameters)
            ]
        except psycopg.Error as error:
            plan = [f"EXPLAIN failed: {error}"]
        finally:
            cursor.execute("ROLLBACK TO SAVEPOINT scale_explain")
            cursor.execute("RELEASE SAVEPOINT scale_explain")
    generic = generic_plan(scale, sql)
    return {
        "path": path,
        "sql": " ".join(sql.split()),
        "plan": plan,
        "generic_plan": generic,
        "seq_scans_on_big": big_seq_scans(scale, plan),
        "generic_seq_scans_on_big": big_seq_scans(scale, generic),
    }


def generic_plan(scale: Scale, sql: str) -> list[str]:
    """The plan the server makes for ``sql`` without its parameters' values.

    psycopg prepares a statement on its fifth run on a connection; from then on the server may
    plan it once for all values (``plan_cache_mode = auto``), and does when that plan's
    estimated cost is no higher than the plans made with the values. Taken on a connection of
    its own, with ``plan_cache_mode = force_generic_plan``.
    """
    names: list[str] = []

    def number(match: re.Match[str]) -> str:
        if match[1] not in names:
            names.append(match[1])
        return f"${names.index(match[1]) + 1}"

    prepared = re.sub(r"%\((\w+)\)s", number, sql).replace("%%", "%")
    arguments = f"({', '.join(['NULL'] * len(names))})" if names else ""
    with psycopg.connect(scale.url, autocommit=True) as connection:
        try:
            connection.execute(f"PREPARE scale_generic AS {prepared}")
            connection.execute("SET plan_cache_mode = force_generic_plan")
            rows = connection.execute(f"EXPLAIN EXECUTE scale_generic{arguments}").fetchall()
        except psycopg.Error as error:
            return [f"EXPLAIN failed: {error}"]
    return [row[0] for row in rows]


def big_seq_scans(scale: Scale, plan: list[str]) -> list[str]:
    """The tables of ``BIG_TABLE_ROWS`` rows or more that ``plan`` reads whole."""
    tables = scale.info["tables"]
    scans = sorted(set(re.findall(r'Seq Scan on "?(\w+)', "\n".join(plan))))
    return [table for table in scans if tables.get(table, {}).get("rows", 0) >= BIG_TABLE_ROWS]


def plans(scale: Scale, clock: FakeClock) -> list[dict[str, Any]]:
    """The plans of a status check, two login steps (the first after the fill cleans the
    backlog of expired challenges, the second finds none) and an answer of the API-made user."""

    def begin() -> str | None:
        return login_challenge(scale.app, scale.user_id)

    with explained(scale, "status") as status:
        expect(scale.client.get("/auth/2fa/status", headers=scale.headers), 200)
    with explained(scale, "first login step, backlog") as first:
        begin()
    with explained(scale, "login step") as login_step:
        challenge = begin()
    clock.now += 30
    body = {"challengeId": challenge, "verificationCode": pyotp.TOTP(scale.secret).at(clock.now)}
    with explained(scale, "answer") as answer:
        expect(scale.client.post("/auth/2fa/challenge", json=body), 200)
    return status + first + login_step + answer


def print_plans(scale: Scale, found: list[dict[str, Any]], full: bool) -> None:
    """Each statement with its plan (``full``) or only the plan's scans, and the scans of its
    generic plan."""
    print(f"\nQuery plans, {scale.label} users{'' if full else ' (scans only)'}:")
    for entry in found:
        sql = entry["sql"] if len(entry["sql"]) <= 150 else entry["sql"][:147] + "..."
        print(f"  [{entry['path']}] {sql}")
        for line in entry["plan"]:
            if full or "Scan" in line:
                print(f"      {line if full else line.strip()}")
        generic = "; ".join(scan_nodes(entry["generic_plan"])) or "no scan"
        print(f"    generic plan: {generic}")
        for kind in ("", "generic_"):
            for table in entry[f"{kind}seq_scans_on_big"]:
                rows = scale.info["tables"][table]["rows"]
                plan = "generic plan" if kind else "plan"
                print(f"  !!! SEQ SCAN on {table} ({rows:,} rows) in the {plan} of a hot path")


def scan_nodes(plan: list[str]) -> list[str]:
    """The scans of ``plan``, without costs: ``Index Scan using ... on ...``."""
    return [line.split("(cost=")[0].strip(" ->") for line in plan if "Scan" in line]


def login_challenge(app: Flask, user_id: int) -> str | None:
    """The login step of a JSON client for ``user_id`` (a password already checked): the
    challenge it makes, or ``None`` for a user without 2FA."""
    with app.test_request_context("/auth/login", method="POST"):
        response = app.make_response(example_app.two_factor.login(user_id))
    body = response.get_json()
    return body.get("2fa") if isinstance(body, dict) else None


# -- timing ------------------------------------------------------------------------------------


def cases(scale: Scale, clock: FakeClock, rng: random.Random, quick: bool) -> list[Case]:
    number = 200 if quick else 1000
    answers = 60 if quick else 250
    app, client = scale.app, scale.client
    pending: dict[str, Any] = {}

    def pick_token() -> None:
        user = scale.random_user(rng)
        pending["headers"] = {"Authorization": f"Bearer {scale.access_token(user)}"}

    def get(path: str) -> Callable[[], None]:
        def call() -> None:
            expect(client.get(path, headers=pending["headers"]), 200)

        return call

    def begin() -> str:
        challenge = login_challenge(app, scale.random_user(rng, True))
        if challenge is None:
            raise BenchFailure(f"{scale.label}: begin_login made no challenge")
        return challenge

    def prepare_answer() -> None:
        clock.now += 30  # a new time step: the code below is unused
        code = pyotp.TOTP(scale.filler_secret).at(clock.now)
        pending["body"] = {"challengeId": begin(), "verificationCode": code}

    def answer(hook: Callable[..., Any]) -> Callable[[], None]:
        def call() -> None:
            example_app.two_factor.login_completed(hook)
            try:
                expect(client.post("/auth/2fa/challenge", json=pending["body"]), 200)
            finally:
                example_app.two_factor.login_completed(finish_login)

        return call

    key = scale.label
    return [
        Case(f"protected {key}", f"protected, {key}", get("/bench/protected"), number, pick_token),
        Case(f"status {key}", f"status, {key}", get("/auth/2fa/status"), number, pick_token),
        Case(f"answer {key}", f"answer, {key}", answer(finished), answers, prepare_answer),
        Case(
            f"answer_tokens {key}",
            f"  + tokens, {key}",
            answer(finish_login),
            answers,
            prepare_answer,
        ),
        Case(f"login_step {key}", f"login step, {key}", begin, answers),
    ]


# -- the run -----------------------------------------------------------------------------------


def prepare(scale: Scale, clock: FakeClock, rng: random.Random) -> None:
    """The API-made user, then the filler users up to ``scale.users``, then the statistics."""
    scale.headers = make_user(scale.app, scale.client, "scale-measured")
    scale.secret = connect(scale.client, scale.headers, clock)
    scale.user_id = user_id_of(scale.app, "scale-measured")
    # The filler users share one secret, encrypted as the extension stores it: that of a user
    # connected through the API.
    scale.filler_secret = connect(
        scale.client, make_user(scale.app, scale.client, "scale-template"), clock
    )
    with scale.app.app_context():
        credential = example_app.two_factor.models.Credential
        encrypted = example_app.db.session.execute(
            select(credential.encrypted_secret).where(
                credential.user_id == user_id_of(scale.app, "scale-template")
            )
        ).scalar_one()
    fill(scale, scale.users - 1, encrypted, clock.now, rng)
    describe(scale)
    info = scale.info
    rows = ", ".join(f"{count:,} {name}" for name, count in info["rows_added"].items())
    print(
        f"{scale.label} users: COPY of {rows} in {info['fill_seconds']} s;"
        f" VACUUM (ANALYZE) in {info['vacuum_analyze_seconds']} s;"
        f" CHECKPOINT in {info['checkpoint_seconds']} s",
        flush=True,
    )


def run(url: str, users: int, quick: bool) -> dict[str, Any]:
    rng = random.Random(5)
    clock = FakeClock(now=1_800_000_000 - 1_800_000_000 % 30 + 5)
    example_app.two_factor.clock = clock
    scales: list[Scale] = []
    with databases(url, 2) as names:
        try:
            for count, name in zip((SMALL_USERS, users), names, strict=True):
                app = build_app(make_url(url).set(database=name).render_as_string(False))
                scales.append(
                    Scale(f"{count:,}", count, libpq_url(url, name), app, app.test_client())
                )
            for scale in scales:
                prepare(scale, clock, rng)
            found = {scale.label: plans(scale, clock) for scale in scales}
            for scale in scales:
                print_plans(scale, found[scale.label], full=scale is scales[-1])
            figures = timing(scales, clock, rng, quick)
        finally:
            for scale in scales:
                with scale.app.app_context():
                    db.engine.dispose()
    return report(scales, figures, found, quick)


def timing(
    scales: list[Scale], clock: FakeClock, rng: random.Random, quick: bool
) -> dict[str, Figure]:
    """Both databases' cases in the same rounds, and the blocks each database used meanwhile."""
    rounds = 5 if quick else 9
    print(f"\nScale benchmark ({'quick' if quick else 'full'}): median of {rounds} rounds")
    small, big = (cases(scale, clock, rng, quick) for scale in scales)
    before = [blocks(scale) for scale in scales]
    # Each figure's two sizes one after the other, in every round.
    figures = measure([case for pair in zip(small, big, strict=True) for case in pair], rounds)
    for scale, (hit_before, read_before) in zip(scales, before, strict=True):
        # Sessions report their counts about once a second: the last second's may be missing.
        hit, read = blocks(scale)
        hit, read = hit - hit_before, read - read_before
        scale.info["blocks_while_timing"] = {
            "hit": hit,
            "read": read,
            "read_share": round(read / max(hit + read, 1), 4),
        }
    return figures


def report(
    scales: list[Scale],
    figures: dict[str, Figure],
    found: dict[str, list[dict[str, Any]]],
    quick: bool,
) -> dict[str, Any]:
    small, big = scales
    columns = f"{small.label + ' users':>14} {big.label + ' users':>16}"
    print(f"\n{'figure':<14} {columns} {'ratio':>7}  target")
    results: dict[str, Any] = {}
    for key in ("protected", "status", "answer", "answer_tokens", "login_step"):
        before, after = figures[f"{key} {small.label}"], figures[f"{key} {big.label}"]
        ratio = after.median / before.median
        checked = key in ("status", "answer")
        met = ratio <= TARGET if checked else None
        target = f"<= {TARGET:.2f}x" if checked else "-"
        mark = "" if met is None else ("yes" if met else "NO")
        print(
            f"{key:<14} {before.median * 1e6:12.1f}µs {after.median * 1e6:14.1f}µs"
            f" {ratio:6.2f}x  {target} {mark}"
        )
        results[key] = {
            "small_median_us": round(before.median * 1e6, 1),
            "big_median_us": round(after.median * 1e6, 1),
            "small_rounds_us": [round(value * 1e6, 1) for value in before.rounds],
            "big_rounds_us": [round(value * 1e6, 1) for value in after.rounds],
            "ratio": round(ratio, 3),
            "target": target,
            "met": met,
        }
    scans = [
        f"{scale.label} users, {entry['path']}, {plan}: Seq Scan on {table}"
        for scale in scales
        for entry in found[scale.label]
        for plan, kind in (("plan", ""), ("generic plan", "generic_"))
        for table in entry[f"{kind}seq_scans_on_big"]
    ]
    print()
    for scale in scales:
        counts = scale.info["blocks_while_timing"]
        print(
            f"{scale.label} users: {counts['read_share']:.1%} of the"
            f" {counts['hit'] + counts['read']:,} blocks the timed calls used were read from"
            f" outside PostgreSQL's shared buffers ({scale.info['server']['shared_buffers']})."
        )
    for scan in scans:
        print(f"!!! {scan}")
    if not scans:
        print(f"No sequential scan of a table of {BIG_TABLE_ROWS:,} rows or more in any plan.")
    return {
        "mode": "quick" if quick else "full",
        "database": "postgresql",
        "scales": {scale.label: {"users": scale.users, **scale.info} for scale in scales},
        "figures": results,
        "seq_scans_on_big_tables": scans,
        "plans": found,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help=f"{QUICK_USERS:,} users, fewer calls")
    parser.add_argument(
        "--users",
        type=int,
        help=f"users in the big database ({FULL_USERS:,}; {QUICK_USERS:,} with --quick)",
    )
    parser.add_argument("--output", type=Path, default=RESULTS)
    args = parser.parse_args()
    users = args.users or (QUICK_USERS if args.quick else FULL_USERS)
    if users <= SMALL_USERS:
        parser.error(f"--users must be more than {SMALL_USERS:,}")
    url = os.environ.get(DATABASE_URL_VARIABLE, DEFAULT_DATABASE_URL)
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        psycopg.connect(libpq_url(url), connect_timeout=5).close()
    except psycopg.OperationalError as error:
        print(
            f"Scale benchmark skipped: PostgreSQL is not reachable at {shown}"
            f" ({' '.join(str(error).split())})."
            f" Start it, or set {DATABASE_URL_VARIABLE}."
        )
        return 0
    started = time.perf_counter()
    try:
        results = run(url, users, args.quick)
    except BenchFailure as failure:
        print(f"Scale benchmark failed: {failure}", file=sys.stderr)
        return 1
    results["seconds"] = round(time.perf_counter() - started, 1)
    write_section(args.output, "scale", results)
    print(f"\nWrote the scale figures to {args.output} in {results['seconds']} s.")
    return 0  # a benchmark reports; it never fails a build on a timing


if __name__ == "__main__":
    sys.exit(main())
