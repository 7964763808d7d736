"""Races on PostgreSQL: parallel answers and setups of one user, each thread its own client.

Every race starts its threads on a barrier so the requests hit the database together, and runs
for several rounds. The database, not process memory, must pick exactly one winner.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from functools import partial
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func
from sqlalchemy import select
from werkzeug.security import generate_password_hash

from example_app import db
from example_app import two_factor
from example_app.models import Token
from example_app.models import User
from flask_ucloud_2fa import totp
from flask_ucloud_2fa.challenges import hash_challenge_id

from conftest import FAST_HASH
from conftest import FakeClock
from conftest import Outcome
from conftest import code_for
from conftest import decrypt_secret
from conftest import race

ROUNDS = 5
THREADS = 8
TOKEN_KEYS = {"accessToken", "refreshToken", "expiresAt"}


@dataclass
class RaceUser:
    id: str
    username: str
    password: str
    headers: dict[str, str]


def new_user(app: Flask) -> RaceUser:
    """A new user, logged in with the password, so with a bearer token."""
    username = f"user-{secrets.token_hex(4)}"
    password = secrets.token_urlsafe(12)
    with app.app_context():
        user = User(username=username, password_hash=generate_password_hash(password, FAST_HASH))
        db.session.add(user)
        db.session.commit()
        user_id = str(user.id)
    response = app.test_client().post(
        "/auth/login", json={"username": username, "password": password}
    )
    assert response.status_code == 200, response.json
    headers = {"Authorization": f"Bearer {response.json['accessToken']}"}
    return RaceUser(user_id, username, password, headers)


def connect(app: Flask, headers: dict[str, str], clock: FakeClock) -> str:
    """Connect 2FA for the token's user; the secret. Moves the clock a step on."""
    client = app.test_client()
    setup = client.post("/auth/2fa", headers=headers).json
    answer = post_answer(client, setup["challengeId"], code_for(setup["secret"], clock), headers)
    assert answer.status_code == 200, answer.json
    clock.advance(30)
    secret: str = setup["secret"]
    return secret


def post_answer(
    client: FlaskClient, challenge_id: str, code: str, headers: dict[str, str] | None = None
) -> Any:
    return client.post(
        "/auth/2fa/challenge",
        headers=headers or {},
        json={"challengeId": challenge_id, "verificationCode": code},
    )


def post_setup(client: FlaskClient, headers: dict[str, str]) -> Any:
    return client.post("/auth/2fa", headers=headers)


def stored_challenges(app: Flask, challenge_ids: list[str]) -> set[str]:
    """Which of ``challenge_ids`` still have a row."""
    challenge = two_factor.models.Challenge
    by_hash = {hash_challenge_id(challenge_id): challenge_id for challenge_id in challenge_ids}
    with app.app_context():
        stored = db.session.execute(
            select(challenge.id_hash).where(challenge.id_hash.in_(by_hash))
        ).scalars()
        return {by_hash[id_hash] for id_hash in stored}


def login_challenge(app: Flask, user: RaceUser) -> str:
    """A login challenge from the login step itself, skipping the slow password hash."""
    with app.test_request_context("/auth/login", method="POST"):
        response = app.make_response(two_factor.login(user.id))
    assert response.status_code == 200
    assert set(response.json) == {"2fa"}
    challenge_id: str = response.json["2fa"]
    return challenge_id


def credentials_of(app: Flask, user_id: str) -> list[tuple[str, bool, int | None]]:
    """``(secret, connected, last_used_step)`` of every credential row of the user."""
    credential = two_factor.models.Credential
    with app.app_context():
        rows = db.session.execute(
            select(
                credential.encrypted_secret, credential.connected, credential.last_used_step
            ).where(credential.user_id == user_id)
        ).all()
        return [
            (decrypt_secret(row.encrypted_secret), row.connected, row.last_used_step)
            for row in rows
        ]


def challenges_of(app: Flask, user_id: str) -> list[str]:
    """The kind of every challenge row of the user."""
    challenge = two_factor.models.Challenge
    with app.app_context():
        return list(
            db.session.execute(select(challenge.kind).where(challenge.user_id == user_id))
            .scalars()
            .all()
        )


def token_count(app: Flask) -> int:
    with app.app_context():
        total: int = db.session.execute(select(func.count()).select_from(Token)).scalar_one()
        return total


def assert_one_winner(outcomes: list[Outcome], losers: set[int]) -> Outcome:
    statuses = sorted(outcome.status for outcome in outcomes)
    assert statuses.count(200) == 1, statuses
    assert set(statuses) - {200} <= losers, statuses
    return next(outcome for outcome in outcomes if outcome.status == 200)


# -- the races ---------------------------------------------------------------------------------


def test_parallel_answers_to_one_setup_challenge_connect_once(
    pg_app: Flask, clock: FakeClock
) -> None:
    for _ in range(ROUNDS):
        user = new_user(pg_app)
        setup = pg_app.test_client().post("/auth/2fa", headers=user.headers).json
        code = code_for(setup["secret"], clock)

        outcomes = race(
            pg_app,
            [
                partial(
                    post_answer, challenge_id=setup["challengeId"], code=code, headers=user.headers
                )
            ]
            * THREADS,
        )

        winner = assert_one_winner(outcomes, losers={403, 404})
        assert winner.body == {}
        assert credentials_of(pg_app, user.id) == [
            (setup["secret"], True, totp.time_step(clock.now))
        ]
        assert challenges_of(pg_app, user.id) == []
        status = pg_app.test_client().get("/auth/2fa/status", headers=user.headers)
        assert status.json == {"connected": True}


def test_parallel_answers_to_one_login_challenge_issue_one_token(
    pg_app: Flask, clock: FakeClock
) -> None:
    user = new_user(pg_app)
    secret = connect(pg_app, user.headers, clock)
    for _ in range(ROUNDS):
        challenge_id = login_challenge(pg_app, user)
        code = code_for(secret, clock)
        tokens_before = token_count(pg_app)

        outcomes = race(
            pg_app,
            [partial(post_answer, challenge_id=challenge_id, code=code)] * THREADS,
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
    user = new_user(pg_app)
    secret = connect(pg_app, user.headers, clock)
    for _ in range(ROUNDS):
        challenge_ids = [login_challenge(pg_app, user) for _ in range(challenges)]
        code = code_for(secret, clock)
        tokens_before = token_count(pg_app)

        outcomes = race(
            pg_app,
            [
                partial(post_answer, challenge_id=challenge_id, code=code)
                for challenge_id in challenge_ids
            ],
        )

        winner = assert_one_winner(outcomes, losers={403})
        assert set(winner.body) == TOKEN_KEYS
        assert token_count(pg_app) == tokens_before + 1
        for outcome in outcomes:
            if outcome.status == 403:
                assert outcome.body["errorCode"] == "INVALID_CODE"
        # Every losing challenge survives; one loser now finishes with the next code.
        losers = [
            challenge_id
            for challenge_id, outcome in zip(challenge_ids, outcomes, strict=True)
            if outcome.status == 403
        ]
        assert stored_challenges(pg_app, challenge_ids) == set(losers)
        clock.advance(30)
        loser = losers[0]
        later = post_answer(pg_app.test_client(), loser, code_for(secret, clock))
        assert later.status_code == 200
        assert token_count(pg_app) == tokens_before + 2
        clock.advance(30)


def test_parallel_setups_leave_one_credential_and_one_challenge(
    pg_app: Flask, clock: FakeClock
) -> None:
    for _ in range(ROUNDS):
        user = new_user(pg_app)

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
            dead = post_answer(
                client,
                outcome.body["challengeId"],
                code_for(outcome.body["secret"], clock),
                user.headers,
            )
            assert dead.status_code == 404, dead.json
        answered = post_answer(
            client, live[0]["challengeId"], code_for(stored_secret, clock), user.headers
        )
        assert answered.status_code == 200, answered.json
        assert credentials_of(pg_app, user.id) == [
            (stored_secret, True, totp.time_step(clock.now))
        ]
