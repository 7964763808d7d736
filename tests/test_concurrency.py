"""Races on PostgreSQL: parallel answers and setups of one user, each thread its own client.

Every race starts its threads on a barrier so the requests hit the database together, and runs
for several rounds. The database, not process memory, must pick exactly one winner.
"""

from __future__ import annotations

from functools import partial
from typing import Any

import pytest
from flask import Flask
from sqlalchemy import select

from flask_ucloud_2fa.config import DEFAULTS

from helpers import TOKEN_KEYS
from helpers import FakeClock
from helpers import add_user
from helpers import answer
from helpers import assert_one_winner
from helpers import code_for
from helpers import connect
from helpers import count
from helpers import db_of
from helpers import decrypt_secret
from helpers import hash_challenge_id
from helpers import login_challenge
from helpers import race
from helpers import two_factor_of
from integrator import integrator_of

ROUNDS = 5
THREADS = 8


def post_setup(client: Any, headers: dict[str, str]) -> Any:
    return client.post("/auth/2fa", headers=headers)


def stored_challenges(app: Flask, challenge_ids: list[str]) -> set[str]:
    """Which of ``challenge_ids`` still have a row."""
    challenge = two_factor_of(app).models.Challenge
    by_hash = {hash_challenge_id(challenge_id): challenge_id for challenge_id in challenge_ids}
    with app.app_context():
        stored = (
            db_of(app)
            .session.execute(select(challenge.id_hash).where(challenge.id_hash.in_(by_hash)))
            .scalars()
        )
        return {by_hash[id_hash] for id_hash in stored}


def credentials_of(app: Flask, user_id: int) -> list[tuple[str, bool, int | None]]:
    """``(secret, connected, last_used_step)`` of every credential row of the user."""
    credential = two_factor_of(app).models.Credential
    with app.app_context():
        rows = (
            db_of(app)
            .session.execute(
                select(
                    credential.encrypted_secret, credential.connected, credential.last_used_step
                ).where(credential.user_id == user_id)
            )
            .all()
        )
    return [
        (decrypt_secret(app, row.encrypted_secret), row.connected, row.last_used_step)
        for row in rows
    ]


def challenges_of(app: Flask, user_id: int) -> list[str]:
    """The kind of every challenge row of the user."""
    challenge = two_factor_of(app).models.Challenge
    with app.app_context():
        return list(
            db_of(app)
            .session.execute(select(challenge.kind).where(challenge.user_id == user_id))
            .scalars()
            .all()
        )


def token_count(app: Flask) -> int:
    return count(app, integrator_of(app).Token)


# -- the races ---------------------------------------------------------------------------------


def test_parallel_answers_to_one_setup_challenge_connect_once(
    pg_app: Flask, clock: FakeClock
) -> None:
    for _ in range(ROUNDS):
        user = add_user(pg_app)
        setup = pg_app.test_client().post("/auth/2fa", headers=user.headers).json
        code = code_for(setup["secret"], clock)

        outcomes = race(
            pg_app,
            [partial(answer, challenge_id=setup["challengeId"], code=code, headers=user.headers)]
            * THREADS,
        )

        winner = assert_one_winner(outcomes, losers={403, 404})
        assert winner.body == {}
        assert credentials_of(pg_app, user.id) == [(setup["secret"], True, int(clock.now) // 30)]
        assert challenges_of(pg_app, user.id) == []
        status = pg_app.test_client().get("/auth/2fa/status", headers=user.headers)
        assert status.json == {"connected": True}


def test_parallel_answers_to_one_login_challenge_issue_one_token(
    pg_app: Flask, clock: FakeClock
) -> None:
    user = add_user(pg_app)
    secret = connect(pg_app.test_client(), user.headers, clock)
    for _ in range(ROUNDS):
        challenge_id = login_challenge(pg_app, user.id)
        code = code_for(secret, clock)
        tokens_before = token_count(pg_app)

        outcomes = race(
            pg_app,
            [partial(answer, challenge_id=challenge_id, code=code)] * THREADS,
        )

        winner = assert_one_winner(outcomes, losers={403, 404})
        assert set(winner.body) == TOKEN_KEYS
        assert token_count(pg_app) == tokens_before + 1
        me = pg_app.test_client().get(
            "/api/me", headers={"Authorization": f"Bearer {winner.body['accessToken']}"}
        )
        assert me.json["amr"] == ["pwd", "otp"]
        assert challenges_of(pg_app, user.id) == []
        clock.advance(30)


@pytest.mark.parametrize("challenges", [2, THREADS])
def test_one_code_on_parallel_login_challenges_logs_in_once(
    pg_app: Flask, clock: FakeClock, challenges: int
) -> None:
    user = add_user(pg_app)
    secret = connect(pg_app.test_client(), user.headers, clock)
    for _ in range(ROUNDS):
        challenge_ids = [login_challenge(pg_app, user.id) for _ in range(challenges)]
        code = code_for(secret, clock)
        tokens_before = token_count(pg_app)

        outcomes = race(
            pg_app,
            [
                partial(answer, challenge_id=challenge_id, code=code)
                for challenge_id in challenge_ids
            ],
        )

        # The losers replayed a spent code: wrong answers, counted one at a time, so after
        # BACKOFF_AFTER of them in a row the rest wait (429) unchecked, as one client's would.
        winner = assert_one_winner(outcomes, losers={403, 429})
        assert set(winner.body) == TOKEN_KEYS
        assert token_count(pg_app) == tokens_before + 1
        codes = {o.status: o.body["errorCode"] for o in outcomes if o.status != 200}
        assert codes.get(403, "INVALID_CODE") == "INVALID_CODE"
        assert codes.get(429, "TOO_MANY_ATTEMPTS") == "TOO_MANY_ATTEMPTS"
        wrong = [outcome.status for outcome in outcomes].count(403)
        assert min(challenges - 1, DEFAULTS["UCLOUD_2FA_BACKOFF_AFTER"]) <= wrong
        # Every losing challenge survives; one loser now finishes with the next code.
        losers = [
            challenge_id
            for challenge_id, outcome in zip(challenge_ids, outcomes, strict=True)
            if outcome.status != 200
        ]
        assert stored_challenges(pg_app, challenge_ids) == set(losers)
        clock.advance(30)
        loser = losers[0]
        later = answer(pg_app.test_client(), loser, code_for(secret, clock))
        assert later.status_code == 200
        assert token_count(pg_app) == tokens_before + 2
        clock.advance(30)


def test_parallel_setups_leave_one_credential_and_one_challenge(
    pg_app: Flask, clock: FakeClock
) -> None:
    for _ in range(ROUNDS):
        user = add_user(pg_app)

        outcomes = race(pg_app, [partial(post_setup, headers=user.headers)] * THREADS)

        assert [outcome.status for outcome in outcomes] == [200] * THREADS, outcomes
        assert len({outcome.body["secret"] for outcome in outcomes}) == THREADS
        assert len({outcome.body["challengeId"] for outcome in outcomes}) == THREADS
        rows = credentials_of(pg_app, user.id)
        assert len(rows) == 1
        stored_secret, connected, _ = rows[0]
        assert not connected
        assert challenges_of(pg_app, user.id) == ["setup"]
        live = [outcome.body for outcome in outcomes if outcome.body["secret"] == stored_secret]
        assert len(live) == 1
        client = pg_app.test_client()
        for outcome in outcomes:
            if outcome.body is live[0]:
                continue
            dead = answer(
                client,
                outcome.body["challengeId"],
                code_for(outcome.body["secret"], clock),
                user.headers,
            )
            assert dead.status_code == 404, dead.json
        answered = answer(
            client, live[0]["challengeId"], code_for(stored_secret, clock), user.headers
        )
        assert answered.status_code == 200, answered.json
        assert credentials_of(pg_app, user.id) == [(stored_secret, True, int(clock.now) // 30)]
