"""Two app servers whose clocks differ by up to 20 s, on one database: no code is accepted
twice, whichever server answers, and a challenge's lifetime, the back-off and the lock-out
budget hold within the skew (the bounds of ``docs/operations.rst``).

Each server is an app with its own injected clock: ``first`` on the test's clock, ``second``
``skew`` seconds off it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from flask import Flask

from helpers import FakeClock
from helpers import add_user
from helpers import answer
from helpers import code_for
from helpers import connect
from helpers import failures_of
from helpers import login_challenge
from helpers import race
from helpers import wrong_code

MakeApp = Callable[..., Flask]
SKEWS = [-20, 20]


@dataclass
class SkewedClock:
    """Another server's clock: ``skew`` seconds off ``clock``."""

    clock: FakeClock
    skew: float

    @property
    def now(self) -> float:
        return self.clock.now + self.skew

    def __call__(self) -> float:
        return self.now


def servers(make_app: MakeApp, clock: FakeClock, skew: int, **config: Any) -> list[Flask]:
    """Two servers on one database; the second's clock is ``skew`` seconds off the first's."""
    return [make_app(config), make_app(config, clock=SkewedClock(clock, skew))]


@pytest.mark.race
@pytest.mark.parametrize("skew", SKEWS)
def test_a_code_is_accepted_once_whichever_server_answers(
    make_app: MakeApp, clock: FakeClock, skew: int
) -> None:
    first, second = servers(make_app, clock, skew)
    user = add_user(first)
    secret = connect(first.test_client(), user.headers, clock)
    # Rounds 37 s apart: the servers' time steps line up differently in each.
    for _ in range(6):
        code = code_for(secret, clock)  # the first server's step: in the second's window too
        challenges = [login_challenge(first, user.id), login_challenge(second, user.id)]

        outcomes = race(
            first,
            [
                lambda _client, app=app, challenge=challenge, code=code: answer(
                    app.test_client(), challenge, code
                )
                for app, challenge in zip((first, second), challenges, strict=True)
            ],
        )

        assert sorted(outcome.status for outcome in outcomes) == [200, 403], outcomes
        clock.advance(37)
    # Neither server accepts a code the other accepted, in either order.
    for winner, loser in ((first, second), (second, first)):
        code = code_for(secret, clock)
        accepted = answer(winner.test_client(), login_challenge(winner, user.id), code)
        assert accepted.status_code == 200, accepted.json
        replayed = answer(loser.test_client(), login_challenge(loser, user.id), code)
        assert replayed.status_code == 403, replayed.json
        clock.advance(37)


@pytest.mark.parametrize("skew", SKEWS)
def test_a_challenge_lives_its_lifetime_give_or_take_the_skew(
    make_app: MakeApp, clock: FakeClock, skew: int
) -> None:
    """Made on the first server, answered on the second: answerable for at least
    ``lifetime - |skew|`` and at most ``lifetime + |skew|`` seconds."""
    first, second = servers(make_app, clock, skew, UCLOUD_2FA_CHALLENGE_LIFETIME=600)
    user = add_user(first)
    secret = connect(first.test_client(), user.headers, clock)
    second_clock = SkewedClock(clock, skew)
    start = clock.now
    early, late = login_challenge(first, user.id), login_challenge(first, user.id)

    clock.now = start + 600 - abs(skew) - 1
    answered = answer(second.test_client(), early, code_for(secret, second_clock))
    assert answered.status_code == 200, answered.json

    clock.now = start + 600 + abs(skew)
    expired = answer(second.test_client(), late, code_for(secret, second_clock))
    assert expired.status_code == 404, expired.json


@pytest.mark.parametrize("skew", SKEWS)
def test_a_back_off_holds_give_or_take_the_skew(
    make_app: MakeApp, clock: FakeClock, skew: int
) -> None:
    """A back-off of 60 s that the first server started refuses the second server's answers
    for at least ``60 - |skew|`` and at most ``60 + |skew|`` seconds."""
    config = {
        "UCLOUD_2FA_BACKOFF_AFTER": 1,
        "UCLOUD_2FA_BACKOFF_MAX": 60,
        "UCLOUD_2FA_MAX_ATTEMPTS": 10**6,
        "UCLOUD_2FA_LOCKOUT_AFTER": 10**6,
    }
    first, second = servers(make_app, clock, skew, **config)
    user = add_user(first)
    secret = connect(first.test_client(), user.headers, clock)
    challenge = login_challenge(first, user.id)
    for delay in (1, 2, 4, 8, 16, 32, 60):  # each failure doubles the wait, up to 60 s
        failed = answer(first.test_client(), challenge, wrong_code(secret, clock))
        assert failed.status_code == 403 and failed.json["retryAfter"] == delay, failed.json
        clock.advance(delay)
    clock.advance(-60)  # back to the last failure, which started 60 s

    clock.advance(60 - abs(skew) - 1)
    blocked = answer(second.test_client(), challenge, wrong_code(secret, clock))
    assert blocked.status_code == 429, blocked.json
    # The second server's own view: 60 s from the failure on the first's clock, less its now.
    assert blocked.json["retryAfter"] == abs(skew) + 1 - skew
    clock.advance(2 * abs(skew) + 1)
    admitted = answer(second.test_client(), challenge, wrong_code(secret, clock))
    assert admitted.status_code == 403, admitted.json
    assert failures_of(first, user.id) == 8


@pytest.mark.parametrize("skew", SKEWS)
def test_the_lockout_budget_holds_give_or_take_twice_the_skew(
    make_app: MakeApp, clock: FakeClock, skew: int
) -> None:
    """Guesses on both servers in turn, one every 10 s for 600 s: at most
    ``LOCKOUT_AFTER + (T + 2 |skew|) / LOCKOUT_DURATION`` codes are checked."""
    config = {
        "UCLOUD_2FA_LOCKOUT_AFTER": 3,
        "UCLOUD_2FA_LOCKOUT_DURATION": 100,
        "UCLOUD_2FA_BACKOFF_AFTER": 10**6,
        "UCLOUD_2FA_MAX_ATTEMPTS": 10**6,
    }
    apps = servers(make_app, clock, skew, **config)
    user = add_user(apps[0])
    secret = connect(apps[0].test_client(), user.headers, clock)
    start, checked = clock.now, 0
    for turn in range(60):
        clock.advance(10)
        app = apps[turn % 2]
        guess = answer(app.test_client(), login_challenge(app, user.id), wrong_code(secret, clock))
        assert guess.status_code in (403, 429), guess.json
        checked += guess.status_code == 403

    elapsed = clock.now - start
    assert checked <= 3 + (elapsed + 2 * abs(skew)) / 100
    assert checked >= 3 + (elapsed - 2 * abs(skew)) / 100 - 1
