"""The login step: tokens at once without 2FA, a login challenge first with it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from collections.abc import Iterator
from typing import TYPE_CHECKING
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import func
from sqlalchemy import select

import example_app
from example_app import db
from example_app.models import Token
from flask_ucloud_2fa import CompletedLogin

from conftest import FakeClock
from conftest import answer
from conftest import code_for
from conftest import wrong_code

if TYPE_CHECKING:
    # Imported for annotations only: a module-level Test* class would be collected by pytest.
    from conftest import TestUser

URL_SAFE = re.compile(r"[A-Za-z0-9_-]{43,}")
TOKEN_KEYS = {"accessToken", "refreshToken", "expiresAt"}
NOT_FOUND = {
    "statusCode": 404,
    "why": "Unknown or expired challenge. Start again.",
    "errorCode": "CHALLENGE_NOT_FOUND",
}


def invalid_code(remaining: int) -> dict[str, Any]:
    return {
        "statusCode": 403,
        "why": "Invalid 2FA code. Try again.",
        "errorCode": "INVALID_CODE",
        "remainingAttempts": remaining,
    }


def count(app: Flask, model: Any) -> int:
    with app.app_context():
        total: int = db.session.execute(select(func.count()).select_from(model)).scalar_one()
        return total


def login(client: FlaskClient, user: TestUser, headers: dict[str, str] | None = None) -> Any:
    return client.post(
        "/auth/login",
        headers=headers or {},
        json={"username": user.username, "password": user.password},
    )


def me(client: FlaskClient, access_token: str) -> Any:
    return client.get("/api/me", headers={"Authorization": f"Bearer {access_token}"})


def assert_tokens(response: Any, issued_after: float) -> None:
    """A login-completion response of the example app: its tokens and their expiry."""
    assert response.status_code == 200, response.json
    body = response.json
    assert set(body) == TOKEN_KEYS
    assert isinstance(body["accessToken"], str) and body["accessToken"]
    assert isinstance(body["refreshToken"], str) and body["refreshToken"]
    assert body["accessToken"] != body["refreshToken"]
    assert isinstance(body["expiresAt"], int)
    assert (int(issued_after) + 3600) * 1000 <= body["expiresAt"]
    assert body["expiresAt"] <= (int(time.time()) + 3600) * 1000


@pytest.fixture
def hook_calls(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[CompletedLogin]]:
    """Every call of the example app's completion hook from now on, which still runs."""
    calls: list[CompletedLogin] = []
    original = example_app.two_factor._login_completed
    assert original is not None

    def counting(completed: CompletedLogin) -> Any:
        calls.append(completed)
        return original(completed)

    monkeypatch.setattr(example_app.two_factor, "_login_completed", counting)
    yield calls


# -- without 2FA -------------------------------------------------------------------------------


def test_login_without_2fa_gives_tokens_at_once(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    tokens_before = count(app, Token)
    started = time.time()

    response = login(client, user)

    assert_tokens(response, started)
    assert count(app, Token) == tokens_before + 1
    resource = me(client, response.json["accessToken"])
    assert resource.status_code == 200
    assert resource.json == {"username": "alice", "amr": ["pwd"], "authTime": int(clock.now)}


def test_login_without_2fa_calls_the_hook_once(
    client: FlaskClient, user: TestUser, clock: FakeClock, hook_calls: list[CompletedLogin]
) -> None:
    response = login(client, user)

    assert response.status_code == 200
    assert hook_calls == [
        CompletedLogin(user_id=str(user.id), methods=["pwd"], auth_time=int(clock.now), state={})
    ]


def test_pending_setup_does_not_ask_for_a_code_at_login(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    setup = client.post("/auth/2fa", headers=user.headers)
    assert setup.status_code == 200
    challenges_before = count(app, example_app.two_factor.models.Challenge)

    response = login(client, user)

    assert_tokens(response, 0)
    resource = me(client, response.json["accessToken"])
    assert resource.json == {"username": "alice", "amr": ["pwd"], "authTime": int(clock.now)}
    # No login challenge was made; the setup challenge is still the only one.
    assert count(app, example_app.two_factor.models.Challenge) == challenges_before == 1


# -- with 2FA: the challenge -------------------------------------------------------------------


def test_login_with_2fa_gives_only_a_challenge(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str]
) -> None:
    user, _ = connected_user
    tokens_before = count(app, Token)

    response = login(client, user)

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert set(response.json) == {"2fa"}
    assert URL_SAFE.fullmatch(response.json["2fa"]), response.json
    assert count(app, Token) == tokens_before


def test_each_login_gives_a_new_challenge(
    client: FlaskClient, connected_user: tuple[TestUser, str]
) -> None:
    user, _ = connected_user

    first = login(client, user).json["2fa"]
    second = login(client, user).json["2fa"]

    assert first != second


def test_login_with_2fa_does_not_call_the_hook(
    client: FlaskClient, connected_user: tuple[TestUser, str], hook_calls: list[CompletedLogin]
) -> None:
    user, _ = connected_user

    assert login(client, user).status_code == 200

    assert hook_calls == []


def test_wrong_password_of_a_2fa_user_gives_no_challenge(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str]
) -> None:
    user, _ = connected_user
    challenges_before = count(app, example_app.two_factor.models.Challenge)

    response = client.post(
        "/auth/login", json={"username": user.username, "password": user.password + "x"}
    )

    assert response.status_code == 401
    assert response.json["errorCode"] == "INVALID_CREDENTIALS"
    assert count(app, example_app.two_factor.models.Challenge) == challenges_before


# -- with 2FA: answering -----------------------------------------------------------------------


@pytest.mark.parametrize("as_int", [False, True], ids=["string-code", "integer-code"])
def test_right_code_completes_the_login_with_tokens(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    as_int: bool,
) -> None:
    user, secret = connected_user
    challenge_id = login(client, user).json["2fa"]
    tokens_before = count(app, Token)
    started = time.time()
    code = code_for(secret, clock)

    response = answer(client, challenge_id, int(code) if as_int else code)

    assert_tokens(response, started)
    assert count(app, Token) == tokens_before + 1
    resource = me(client, response.json["accessToken"])
    assert resource.status_code == 200
    assert resource.json == {
        "username": "alice",
        "amr": ["pwd", "otp"],
        "authTime": int(clock.now),
    }


def test_auth_time_is_when_the_code_was_answered(
    client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    challenge_id = login(client, user).json["2fa"]
    clock.advance(100)

    response = answer(client, challenge_id, code_for(secret, clock))

    assert response.status_code == 200
    resource = me(client, response.json["accessToken"])
    assert resource.json["authTime"] == int(clock.now)


def test_wrong_code_gives_403_and_no_token(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    challenge_id = login(client, user).json["2fa"]
    tokens_before = count(app, Token)

    response = answer(client, challenge_id, wrong_code(secret, clock))

    assert response.status_code == 403
    assert response.json == invalid_code(4)
    assert count(app, Token) == tokens_before


def test_wrong_code_does_not_call_the_hook(
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    hook_calls: list[CompletedLogin],
) -> None:
    user, secret = connected_user
    challenge_id = login(client, user).json["2fa"]

    assert answer(client, challenge_id, wrong_code(secret, clock)).status_code == 403

    assert hook_calls == []


def test_challenge_survives_a_wrong_code(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    challenge_id = login(client, user).json["2fa"]
    tokens_before = count(app, Token)
    assert answer(client, challenge_id, wrong_code(secret, clock)).status_code == 403

    response = answer(client, challenge_id, code_for(secret, clock))

    assert_tokens(response, 0)
    assert count(app, Token) == tokens_before + 1


def test_hook_runs_exactly_once_per_login_challenge(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    hook_calls: list[CompletedLogin],
) -> None:
    user, secret = connected_user
    challenge_id = login(client, user).json["2fa"]
    tokens_before = count(app, Token)

    first = answer(client, challenge_id, code_for(secret, clock))
    assert first.status_code == 200
    assert hook_calls == [
        CompletedLogin(
            user_id=str(user.id), methods=["pwd", "otp"], auth_time=int(clock.now), state={}
        )
    ]

    clock.advance(30)
    again = answer(client, challenge_id, code_for(secret, clock))
    assert again.status_code == 404
    assert again.json == NOT_FOUND
    assert len(hook_calls) == 1
    assert count(app, Token) == tokens_before + 1


def test_same_code_on_a_second_login_challenge_is_refused(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    first = login(client, user).json["2fa"]
    second = login(client, user).json["2fa"]
    code = code_for(secret, clock)
    assert answer(client, first, code).status_code == 200
    tokens_before = count(app, Token)

    response = answer(client, second, code)

    assert response.status_code == 403
    assert response.json == invalid_code(4)
    assert count(app, Token) == tokens_before
    # The second challenge lives on: the next code finishes it.
    clock.advance(30)
    assert_tokens(answer(client, second, code_for(secret, clock)), 0)


def test_login_challenge_ignores_another_users_token(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    make_user: Callable[[str], TestUser],
    clock: FakeClock,
) -> None:
    user, secret = connected_user
    bob = make_user("bob")
    challenge_id = login(client, user).json["2fa"]
    tokens_before = count(app, Token)

    response = answer(client, challenge_id, code_for(secret, clock), headers=bob.headers)

    assert_tokens(response, 0)
    assert count(app, Token) == tokens_before + 1
    resource = me(client, response.json["accessToken"])
    assert resource.json == {
        "username": "alice",
        "amr": ["pwd", "otp"],
        "authTime": int(clock.now),
    }


def test_login_challenge_ignores_the_users_own_token(
    client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    user, secret = connected_user
    challenge_id = login(client, user).json["2fa"]

    response = answer(client, challenge_id, code_for(secret, clock), headers=user.headers)

    assert_tokens(response, 0)
    assert me(client, response.json["accessToken"]).json["amr"] == ["pwd", "otp"]


@pytest.mark.parametrize(("elapsed", "status"), [(599, 200), (601, 404)])
def test_login_challenge_lives_ten_minutes(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    elapsed: int,
    status: int,
) -> None:
    user, secret = connected_user
    challenge_id = login(client, user).json["2fa"]
    tokens_before = count(app, Token)
    clock.advance(elapsed)

    response = answer(client, challenge_id, code_for(secret, clock))

    assert response.status_code == status
    assert count(app, Token) == tokens_before + (status == 200)
    if status == 404:
        assert response.json == NOT_FOUND


def test_unknown_login_challenge_is_404(
    app: Flask, client: FlaskClient, connected_user: tuple[TestUser, str], clock: FakeClock
) -> None:
    _, secret = connected_user
    tokens_before = count(app, Token)

    response = answer(client, "x" * 43, code_for(secret, clock))

    assert response.status_code == 404
    assert response.json == NOT_FOUND
    assert count(app, Token) == tokens_before


# -- a failing completion hook -----------------------------------------------------------------


class HookFailed(Exception):
    pass


@pytest.mark.parametrize("retry_offset", [0, 1], ids=["same-step", "next-step"])
def test_failing_hook_does_not_spend_the_challenge(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
    retry_offset: int,
) -> None:
    user, secret = connected_user
    original = example_app.two_factor._login_completed
    assert original is not None
    calls: list[CompletedLogin] = []

    def fails_once(completed: CompletedLogin) -> Any:
        calls.append(completed)
        if len(calls) == 1:
            raise HookFailed("the token store is down")
        return original(completed)

    monkeypatch.setattr(example_app.two_factor, "_login_completed", fails_once)
    challenge_id = login(client, user).json["2fa"]
    tokens_before = count(app, Token)
    challenges_before = count(app, example_app.two_factor.models.Challenge)

    with pytest.raises(HookFailed, match="^the token store is down$"):
        answer(client, challenge_id, code_for(secret, clock))

    assert count(app, Token) == tokens_before
    assert count(app, example_app.two_factor.models.Challenge) == challenges_before

    response = answer(client, challenge_id, code_for(secret, clock, retry_offset))

    assert_tokens(response, 0)
    assert len(calls) == 2
    assert count(app, Token) == tokens_before + 1
    assert count(app, example_app.two_factor.models.Challenge) == challenges_before - 1
    resource = me(client, response.json["accessToken"])
    assert resource.json == {
        "username": "alice",
        "amr": ["pwd", "otp"],
        "authTime": int(clock.now),
    }
