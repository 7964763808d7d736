"""A gunicorn worker killed (SIGKILL) in the middle of login answers leaves nothing half done:
each code is accepted at most once, each challenge is spent or still answerable, the counters
count exactly the answers that were answered, and the master's new worker serves at once.

The answers are held inside their transactions by a lock on the users' credentials, taken from
outside, so the worker dies with its answer's transaction open, as a crash mid-request does.
"""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from contextlib import suppress
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from pathlib import Path
from typing import Any

import pyotp
import pytest
import requests
from flask import Flask

from helpers import Served
from helpers import TestUser
from helpers import add_user
from helpers import answer
from helpers import challenge_attempts
from helpers import connect_over_http
from helpers import count
from helpers import credential_value
from helpers import credentials_locked
from helpers import failures_of
from helpers import integrator_process
from helpers import lock_waits
from helpers import login_challenge
from integrator import integrator_of

MakeApp = Callable[..., Flask]
#: Sync workers: each has one answer in flight, the others wait in the listening socket.
WORKERS = 4
KILLED = "killed"


def next_step(totp: pyotp.TOTP) -> tuple[int, str]:
    """The next time step and its code: unused, since the setup spent this one."""
    later = datetime.now(timezone.utc) + timedelta(seconds=30)
    return totp.timecode(later), totp.at(later)


def wrong(totp: pyotp.TOTP) -> str:
    window = {totp.at(time.time() + offset) for offset in range(-60, 120, 30)}
    return next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in window)


def wait_for(condition: Callable[[], bool], seconds: float, what: str) -> float:
    """Seconds until ``condition()`` holds (fails after ``seconds``)."""
    started = time.monotonic()
    while not condition():
        assert time.monotonic() - started < seconds, f"{what} did not happen in {seconds} s"
        time.sleep(0.02)
    return time.monotonic() - started


def answer_all(
    base: str, answers: list[tuple[int, str, str]]
) -> tuple[list[Any], Callable[[], None]]:
    """Send every ``(user_id, challenge, code)`` answer at once, each on a thread of its own;
    their outcomes as they arrive (a status, or :data:`KILLED` for a dropped connection), and
    a function that waits for all of them."""
    outcomes: list[Any] = [None] * len(answers)

    def send(index: int, challenge: str, code: str) -> None:
        try:
            response = requests.post(
                f"{base}/auth/2fa/challenge",
                json={"challengeId": challenge, "verificationCode": code},
                timeout=60,
            )
            outcomes[index] = response.status_code
        except requests.ConnectionError:
            outcomes[index] = KILLED

    threads = [
        threading.Thread(target=send, args=(index, challenge, code))
        for index, (_, challenge, code) in enumerate(answers)
    ]
    for thread in threads:
        thread.start()

    def join() -> None:
        for thread in threads:
            thread.join(timeout=90)
        assert not any(thread.is_alive() for thread in threads), "an answer hung"

    return outcomes, join


def serves_alone(served: Served, worker: int, user: TestUser) -> list[int]:
    """With every other worker stopped, the statuses of requests that only ``worker`` can
    take."""
    others = served.workers() - {worker}
    for pid in others:
        os.kill(pid, signal.SIGSTOP)
    try:
        return [
            requests.get(
                f"{served.url}/auth/2fa/status", headers=user.headers, timeout=10
            ).status_code
            for _ in range(3)
        ]
    finally:
        for pid in others:
            with suppress(ProcessLookupError):
                os.kill(pid, signal.SIGCONT)


@pytest.mark.race
def test_a_worker_killed_mid_answer_leaves_no_half_spent_state(
    make_pg_app: MakeApp, tmp_path: Path
) -> None:
    local = make_pg_app(clock=time.time)  # the servers' clock
    users = [add_user(local) for _ in range(WORKERS)]
    token = integrator_of(local).Token
    with integrator_process(local, str(tmp_path), f"--workers={WORKERS}") as served:
        totps = {user.id: connect_over_http(served.url, user.headers) for user in users}
        setup_steps = {
            user.id: credential_value(local, user.id, "last_used_step") for user in users
        }
        challenges = {user.id: login_challenge(local, user.id) for user in users}
        steps = {user.id: next_step(totps[user.id]) for user in users}
        workers = served.workers()
        victim = min(workers)

        with credentials_locked(local, *totps):
            # Each worker takes one right answer and waits inside its transaction for the
            # user's credential; the wrong answers wait in the listening socket.
            rights, join_rights = answer_all(
                served.url, [(user.id, challenges[user.id], steps[user.id][1]) for user in users]
            )
            wait_for(lambda: lock_waits(local) >= WORKERS, 30, "every worker waiting")
            wrongs, join_wrongs = answer_all(
                served.url,
                [(user.id, challenges[user.id], wrong(totps[user.id])) for user in users],
            )
            os.kill(victim, signal.SIGKILL)
            killed_at = time.monotonic()
        join_rights()
        join_wrongs()

        wait_for(lambda: len(served.workers() - workers) == 1, 10, "a new worker")
        [new_worker] = served.workers() - workers
        assert serves_alone(served, new_worker, users[0]) == [200] * 3
        served_in = time.monotonic() - killed_at

    assert served_in < 10
    # The killed worker's answer got no answer; every other right answer was accepted.
    [killed] = [user for user, outcome in zip(users, rights, strict=True) if outcome == KILLED]
    assert sorted(rights, key=str) == sorted([200] * (WORKERS - 1) + [KILLED], key=str)
    for user, wrong_outcome in zip(users, wrongs, strict=True):
        step = credential_value(local, user.id, "last_used_step")
        if user is killed:
            # Nothing of the killed answer was kept: its code is unused, its challenge alive,
            # and the wrong answer after it counted once.
            assert wrong_outcome == 403
            assert step == setup_steps[user.id]
            assert count(local, token, user_id=user.id) == 1  # the password login's
            assert failures_of(local, user.id) == 1
            assert challenge_attempts(local, challenges[user.id]) == 1
            finished = answer(local.test_client(), challenges[user.id], steps[user.id][1])
            assert finished.status_code == 200, finished.json
        else:
            # Spent once: one token, the step used, the challenge gone (the wrong answer,
            # before or after it, found it or not).
            assert wrong_outcome in (403, 404)
            assert step == steps[user.id][0]
            assert count(local, token, user_id=user.id) == 2
            assert failures_of(local, user.id) == 0
            assert challenge_attempts(local, challenges[user.id]) is None
        # Each code is accepted once: again, on a new challenge, it is refused.
        replayed = answer(local.test_client(), login_challenge(local, user.id), steps[user.id][1])
        assert replayed.status_code == 403, replayed.json
