"""Two real server processes (gunicorn) on one PostgreSQL: they race and share every limit.

Nothing lives in process memory, so answering on one process and then on the other, or on both
at once, must behave exactly as one process would.
"""

from __future__ import annotations

import secrets
import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import pyotp
import pytest
import requests
from flask import Flask
from werkzeug.security import generate_password_hash

from helpers import FAST_HASH
from helpers import connect_over_http
from helpers import failures_of
from helpers import integrator_server
from integrator import integrator_of

MakeApp = Callable[..., Flask]


@pytest.fixture
def local_app(make_pg_app: MakeApp) -> Flask:
    """The integrator app in this process, on the servers' database, to read and seed it.

    It creates the tables before the servers start, so neither races to create them.
    """
    return make_pg_app()


@pytest.fixture
def servers(local_app: Flask, tmp_path: Path) -> Iterator[list[str]]:
    """Two gunicorn processes of the integrator app on one database; their base URLs."""
    with ExitStack() as stack:
        yield [
            stack.enter_context(integrator_server(local_app, str(tmp_path), "--workers=1"))
            for _ in range(2)
        ]


@dataclass
class ServerUser:
    id: int
    username: str
    password: str
    headers: dict[str, str]


@pytest.fixture
def server_user(local_app: Flask) -> Callable[[str], ServerUser]:
    """A user created in the database and logged in with the password on ``base``."""

    def make(base: str) -> ServerUser:
        username, password = f"user-{secrets.token_hex(4)}", secrets.token_urlsafe(12)
        parts = integrator_of(local_app)
        with local_app.app_context():
            hashed = generate_password_hash(password, FAST_HASH)
            user = parts.User(username=username, password_hash=hashed)
            parts.db.session.add(user)
            parts.db.session.commit()
            user_id = user.id
        login = requests.post(
            f"{base}/auth/login", json={"username": username, "password": password}, timeout=10
        )
        assert login.status_code == 200, login.text
        headers = {"Authorization": f"Bearer {login.json()['accessToken']}"}
        return ServerUser(user_id, username, password, headers)

    return make


def login_challenge(base: str, user: ServerUser) -> str:
    credentials = {"username": user.username, "password": user.password}
    response = requests.post(f"{base}/auth/login", json=credentials, timeout=10)
    challenge: str = response.json()["2fa"]
    return challenge


def race_answers(bases: list[str], challenge: str, code: str) -> list[int]:
    """Answer ``challenge`` on every base at once; the statuses."""
    barrier = threading.Barrier(len(bases))
    statuses: list[int] = []

    def answer(base: str) -> None:
        barrier.wait(timeout=10)
        response = requests.post(
            f"{base}/auth/2fa/challenge",
            json={"challengeId": challenge, "verificationCode": code},
            timeout=30,
        )
        statuses.append(response.status_code)

    threads = [threading.Thread(target=answer, args=(base,)) for base in bases]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert len(statuses) == len(bases), "a racing request did not finish"
    return statuses


def test_setup_on_one_process_is_answered_on_the_other(
    servers: list[str], server_user: Callable[[str], ServerUser]
) -> None:
    first, second = servers
    user = server_user(first)
    setup = requests.post(f"{first}/auth/2fa", headers=user.headers, timeout=10).json()
    answer = requests.post(
        f"{second}/auth/2fa/challenge",
        headers=user.headers,
        json={
            "challengeId": setup["challengeId"],
            "verificationCode": pyotp.TOTP(setup["secret"]).now(),
        },
        timeout=10,
    )
    assert answer.status_code == 200 and answer.json() == {}
    status = requests.get(f"{first}/auth/2fa/status", headers=user.headers, timeout=10)
    assert status.json() == {"connected": True}


def test_both_processes_answering_one_login_challenge_make_one_login(
    servers: list[str], server_user: Callable[[str], ServerUser]
) -> None:
    for _ in range(3):
        user = server_user(servers[0])
        totp = connect_over_http(servers[0], user.headers)
        challenge = login_challenge(servers[1], user)
        # The next step's code: the setup spent this one.
        statuses = race_answers(servers * 2, challenge, totp.at(time.time() + 30))
        assert statuses.count(200) == 1, statuses
        assert set(statuses) <= {200, 403, 404}, statuses


def test_the_processes_share_attempt_counters(
    servers: list[str], server_user: Callable[[str], ServerUser], local_app: Flask
) -> None:
    user = server_user(servers[0])
    totp = connect_over_http(servers[0], user.headers)
    challenge = login_challenge(servers[0], user)
    window = {totp.at(time.time() + 30 * offset) for offset in (-1, 0, 1, 2)}
    wrong = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in window)
    remaining = []
    for attempt in range(5):
        response = requests.post(
            f"{servers[attempt % 2]}/auth/2fa/challenge",
            json={"challengeId": challenge, "verificationCode": wrong},
            timeout=10,
        )
        assert response.status_code == 403, response.text
        remaining.append(response.json()["remainingAttempts"])
    assert remaining == [4, 3, 2, 1, 0]
    gone = requests.post(
        f"{servers[1]}/auth/2fa/challenge",
        json={"challengeId": challenge, "verificationCode": totp.at(time.time() + 30)},
        timeout=10,
    )
    assert gone.status_code == 404
    # The fifth failure started the per-user back-off, which the other process enforces too.
    fresh = login_challenge(servers[1], user)
    blocked = requests.post(
        f"{servers[1]}/auth/2fa/challenge",
        json={"challengeId": fresh, "verificationCode": totp.at(time.time() + 30)},
        timeout=10,
    )
    assert blocked.status_code == 429 and blocked.headers["Retry-After"] == "1"
    assert failures_of(local_app, user.id) == 5
