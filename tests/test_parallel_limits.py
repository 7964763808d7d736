"""Per-user limits under parallel attack: any number of threads, processes and hosts check no
more codes than one client answering one at a time would.

Whether an answer is looked at is decided by the statement that records it, under the
credential's lock, so these bursts of wrong answers, released together by a barrier, get
exactly the sequential schedule: with the lock-out budget at three, three codes are checked
and every other answer is refused unchecked.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import requests
from flask import Flask
from flask.testing import FlaskClient

from helpers import FakeClock
from helpers import add_user
from helpers import answer
from helpers import code_for
from helpers import connect
from helpers import connect_over_http
from helpers import failures_of
from helpers import integrator_server
from helpers import login_challenge
from helpers import race
from helpers import wrong_code

BURST = 24

#: Three unforgiven failures lock out for an hour; no back-off, no challenge limit in the way.
#: (Nor the password limits: the users are made on the fake clock, weeks ahead of the server's
#: real one, so the server would see their logins' counters as not yet forgiven.)
BUDGET_OF_THREE = {
    "UCLOUD_2FA_LOCKOUT_AFTER": 3,
    "UCLOUD_2FA_LOCKOUT_DURATION": 3600,
    "UCLOUD_2FA_BACKOFF_AFTER": 10**6,
    "UCLOUD_2FA_MAX_ATTEMPTS": 10**6,
    "UCLOUD_2FA_LOGIN_ADDRESS_BUDGET": 10**6,
    "UCLOUD_2FA_LOGIN_USER_BUDGET": 10**6,
}
#: Two consecutive failures start a back-off; no lock-out in the way.
BACKOFF_AFTER_TWO = {
    "UCLOUD_2FA_BACKOFF_AFTER": 2,
    "UCLOUD_2FA_LOCKOUT_AFTER": 10**6,
    "UCLOUD_2FA_MAX_ATTEMPTS": 10**6,
}


def _burst(app: Flask, clock: FakeClock) -> tuple[list[Any], int]:
    """``BURST`` wrong answers to one login challenge of a connected user, at once; their
    outcomes and the user's id."""
    user = add_user(app)
    secret = connect(app.test_client(), user.headers, clock)
    challenge_id = login_challenge(app, user.id)
    wrong = wrong_code(secret, clock)
    calls: list[Callable[[FlaskClient], Any]] = [
        partial(answer, challenge_id=challenge_id, code=wrong)
    ] * BURST
    return race(app, calls), user.id


def _tally(outcomes: list[Any]) -> dict[tuple[int, str], int]:
    tally: dict[tuple[int, str], int] = {}
    for outcome in outcomes:
        key = (outcome.status, outcome.body["errorCode"])
        tally[key] = tally.get(key, 0) + 1
    return tally


@pytest.mark.race
@pytest.mark.parametrize(
    ("config", "checked", "refusal"),
    [
        pytest.param(BUDGET_OF_THREE, 3, "LOCKED_OUT", id="lockout-budget"),
        pytest.param(BACKOFF_AFTER_TWO, 2, "TOO_MANY_ATTEMPTS", id="back-off"),
    ],
)
def test_parallel_wrong_answers_check_no_more_codes_than_one_client_would(
    make_app: Callable[..., Flask],
    clock: FakeClock,
    config: dict[str, int],
    checked: int,
    refusal: str,
) -> None:
    app = make_app(config)

    outcomes, user_id = _burst(app, clock)

    assert _tally(outcomes) == {(403, "INVALID_CODE"): checked, (429, refusal): BURST - checked}
    assert failures_of(app, user_id) == checked


# -- several server processes ---------------------------------------------------------------


@pytest.fixture
def server(make_app: Callable[..., Flask], tmp_path: Path) -> Iterator[tuple[str, Flask]]:
    """Gunicorn with two worker processes of four threads each, on the test's database (SQLite
    or PostgreSQL), with a lock-out budget of three; its URL and an app on the same database in
    this process, to seed and read it."""
    local = make_app(BUDGET_OF_THREE)  # creates the tables before the workers start
    options = ("--workers=2", "--threads=4", "--worker-class=gthread")
    with integrator_server(local, str(tmp_path), *options, **BUDGET_OF_THREE) as url:
        yield url, local


@pytest.mark.race
def test_parallel_wrong_answers_on_several_processes_check_no_more_codes_than_the_budget(
    server: tuple[str, Flask],
) -> None:
    url, local = server
    user = add_user(local)
    # The server runs on the real clock: set up through it, with its codes.
    totp = connect_over_http(url, user.headers)
    credentials = {"username": user.username, "password": user.password}
    challenge_id = requests.post(f"{url}/auth/login", json=credentials, timeout=10).json()["2fa"]
    window = {totp.at(time.time() + offset) for offset in range(-60, 120, 30)}
    wrong = next(f"{n:06d}" for n in range(1_000_000) if f"{n:06d}" not in window)
    barrier = threading.Barrier(BURST)
    answers: list[tuple[int, str]] = []

    def answer_once() -> None:
        barrier.wait(timeout=10)
        response = requests.post(
            f"{url}/auth/2fa/challenge",
            json={"challengeId": challenge_id, "verificationCode": wrong},
            timeout=30,
        )
        answers.append((response.status_code, response.json()["errorCode"]))

    threads = [threading.Thread(target=answer_once) for _ in range(BURST)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)

    assert len(answers) == BURST, "a racing request did not finish"
    assert answers.count((403, "INVALID_CODE")) == 3, answers
    assert answers.count((429, "LOCKED_OUT")) == BURST - 3, answers
    assert failures_of(local, user.id) == 3


def test_a_year_of_guessing_is_bounded_however_the_victims_logins_interleave(
    make_app: Callable[..., Flask], clock: FakeClock
) -> None:
    """An attacker who knows the password guesses whenever an answer is admitted; the victim
    logs in with the right code now and then. The victim's logins forgive nothing, so over any
    span of ``T`` seconds at most ``LOCKOUT_AFTER + T / LOCKOUT_DURATION`` codes are checked:
    with the defaults, 100 plus 8,760 a year."""
    app = make_app(
        {
            "UCLOUD_2FA_LOCKOUT_AFTER": 3,
            "UCLOUD_2FA_LOCKOUT_DURATION": 100,
            "UCLOUD_2FA_BACKOFF_AFTER": 10**6,
        }
    )
    user = add_user(app)
    client = app.test_client()
    secret = connect(client, user.headers, clock)
    start = clock.now
    checked = victims = 0
    for step in range(60):
        clock.advance(20)
        if step % 4 == 3:  # the victim, with the code of their app
            victim = answer(client, login_challenge(app, user.id), code_for(secret, clock))
            victims += victim.status_code == 200
        guess = answer(client, login_challenge(app, user.id), wrong_code(secret, clock))
        checked += guess.status_code == 403
        assert guess.status_code in (403, 429), guess.json

    elapsed = clock.now - start
    assert checked <= 3 + elapsed / 100
    assert checked >= elapsed / 100 - 1  # the budget does refill, one failure per 100 s
    assert victims > 0  # the victim still logs in between the attacker's guesses
