"""The login step: tokens at once without 2FA, a login challenge first with it."""

from __future__ import annotations

import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from flask_ucloud_2fa import LoginCompleted

from helpers import TOKEN_KEYS
from helpers import FakeClock
from helpers import answer
from helpers import code_for
from helpers import count
from helpers import login
from helpers import me
from helpers import wrong_code
from integrator import Integrator

if TYPE_CHECKING:
    # Imported for annotations only: a module-level Test* class would be collected by pytest.
    from helpers import TestUser

URL_SAFE = re.compile(r"[A-Za-z0-9_-]{43,}")
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


def assert_tokens(response: Any, issued_after: float) -> None:
    """A login-completion response of the integrator app: its tokens and their expiry."""
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
def hook_calls(integrator: Integrator) -> list[LoginCompleted]:
    """Every call of the app's completion hook from now on, which still runs."""
    calls: list[LoginCompleted] = []

    @integrator.two_factor.login_completed
    def counting(completed: LoginCompleted) -> Any:
        calls.append(completed)
        return integrator.finish_login(completed)

    return calls


# -- without 2FA -------------------------------------------------------------------------------


def test_login_without_2fa_gives_tokens_at_once_through_the_hook(
    app: Flask,
    integrator: Integrator,
    client: FlaskClient,
    user: TestUser,
    clock: FakeClock,
    hook_calls: list[LoginCompleted],
) -> None:
    tokens_before = count(app, integrator.Token)
    started = time.time()

    response = login(client, user)

    assert_tokens(response, started)
    assert count(app, integrator.Token) == tokens_before + 1
    resource = me(client, response.json["accessToken"])
    assert resource.status_code == 200
    assert resource.json == {"username": "alice", "amr": ["pwd"], "authTime": int(clock.now)}
    assert hook_calls == [
        LoginCompleted(user_id=user.id, methods=["pwd"], auth_time=int(clock.now), state={})
    ]


def test_pending_setup_does_not_ask_for_a_code_at_login(
    app: Flask, integrator: Integrator, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    setup = client.post("/auth/2fa", headers=user.headers)
    assert setup.status_code == 200
    challenges_before = count(app, integrator.two_factor.models.Challenge)

    response = login(client, user)

    assert_tokens(response, 0)
    resource = me(client, response.json["accessToken"])
    assert resource.json == {"username": "alice", "amr": ["pwd"], "authTime": int(clock.now)}
    # No login challenge was made; the setup challenge is still the only one.
    assert count(app, integrator.two_factor.models.Challenge) == challenges_before == 1


# -- with 2FA: the challenge -------------------------------------------------------------------


def test_login_with_2fa_gives_only_a_challenge_and_no_hook_call(
    app: Flask,
    integrator: Integrator,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    hook_calls: list[LoginCompleted],
) -> None:
    user, _ = connected_user
    tokens_before = count(app, integrator.Token)

    response = login(client, user)

    assert response.status_code == 200
    assert response.mimetype == "application/json"
    assert set(response.json) == {"2fa"}
    assert URL_SAFE.fullmatch(response.json["2fa"]), response.json
    assert count(app, integrator.Token) == tokens_before
    assert hook_calls == []


def test_each_login_gives_a_new_challenge(
    client: FlaskClient, connected_user: tuple[TestUser, str]
) -> None:
    user, _ = connected_user

    first = login(client, user).json["2fa"]
    second = login(client, user).json["2fa"]

    assert first != second


def test_wrong_password_of_a_2fa_user_gives_no_challenge(
    app: Flask, integrator: Integrator, client: FlaskClient, connected_user: tuple[TestUser, str]
) -> None:
    user, _ = connected_user
    challenges_before = count(app, integrator.two_factor.models.Challenge)

    response = client.post(
        "/auth/login", json={"username": user.username, "password": user.password + "x"}
    )

    assert response.status_code == 401
    assert response.json["errorCode"] == "INVALID_CREDENTIALS"
    assert count(app, integrator.two_factor.models.Challenge) == challenges_before


# -- with 2FA: answering -----------------------------------------------------------------------


@pytest.mark.parametrize("as_int", [False, True], ids=["string-code", "integer-code"])
def test_right_code_completes_the_login_with_tokens(
    app: Flask,
    integrator: Integrator,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    as_int: bool,
) -> None:
    user, secret = connected_user
    challenge_id = login(client, user).json["2fa"]
    tokens_before = count(app, integrator.Token)
    started = time.time()
    code = code_for(secret, clock)

    response = answer(client, challenge_id, int(code) if as_int else code)

    assert_tokens(response, started)
    assert count(app, integrator.Token) == tokens_before + 1
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


def test_wrong_code_gives_403_and_leaves_the_challenge_answerable(
    app: Flask,
    integrator: Integrator,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    hook_calls: list[LoginCompleted],
) -> None:
    user, secret = connected_user
    challenge_id = login(client, user).json["2fa"]
    tokens_before = count(app, integrator.Token)

    response = answer(client, challenge_id, wrong_code(secret, clock))

    assert response.status_code == 403
    assert response.json == invalid_code(4)
    assert count(app, integrator.Token) == tokens_before
    assert hook_calls == []
    # The challenge survives: the right code finishes it.
    assert_tokens(answer(client, challenge_id, code_for(secret, clock)), 0)
    assert count(app, integrator.Token) == tokens_before + 1
    assert len(hook_calls) == 1


def test_hook_runs_exactly_once_per_login_challenge(
    app: Flask,
    integrator: Integrator,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    hook_calls: list[LoginCompleted],
) -> None:
    user, secret = connected_user
    challenge_id = login(client, user).json["2fa"]
    tokens_before = count(app, integrator.Token)

    first = answer(client, challenge_id, code_for(secret, clock))
    assert first.status_code == 200
    assert hook_calls == [
        LoginCompleted(user_id=user.id, methods=["pwd", "otp"], auth_time=int(clock.now), state={})
    ]

    clock.advance(30)
    again = answer(client, challenge_id, code_for(secret, clock))
    assert again.status_code == 404
    assert again.json == NOT_FOUND
    assert len(hook_calls) == 1
    assert count(app, integrator.Token) == tokens_before + 1


def test_same_code_on_a_second_login_challenge_is_refused(
    app: Flask,
    integrator: Integrator,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
) -> None:
    user, secret = connected_user
    first = login(client, user).json["2fa"]
    second = login(client, user).json["2fa"]
    code = code_for(secret, clock)
    assert answer(client, first, code).status_code == 200
    tokens_before = count(app, integrator.Token)

    response = answer(client, second, code)

    assert response.status_code == 403
    assert response.json == invalid_code(4)
    assert count(app, integrator.Token) == tokens_before
    # The second challenge lives on: the next code finishes it.
    clock.advance(30)
    assert_tokens(answer(client, second, code_for(secret, clock)), 0)


@pytest.mark.parametrize("whose", ["another-users", "own"])
def test_login_challenge_ignores_a_bearer_token(
    app: Flask,
    integrator: Integrator,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    make_user: Callable[[str], TestUser],
    clock: FakeClock,
    whose: str,
) -> None:
    user, secret = connected_user
    headers = make_user("bob").headers if whose == "another-users" else user.headers
    challenge_id = login(client, user).json["2fa"]
    tokens_before = count(app, integrator.Token)

    response = answer(client, challenge_id, code_for(secret, clock), headers=headers)

    assert_tokens(response, 0)
    assert count(app, integrator.Token) == tokens_before + 1
    resource = me(client, response.json["accessToken"])
    assert resource.json == {
        "username": "alice",
        "amr": ["pwd", "otp"],
        "authTime": int(clock.now),
    }


@pytest.mark.parametrize(("elapsed", "status"), [(599, 200), (601, 404)])
def test_login_challenge_lives_ten_minutes(
    app: Flask,
    integrator: Integrator,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    elapsed: int,
    status: int,
) -> None:
    user, secret = connected_user
    challenge_id = login(client, user).json["2fa"]
    tokens_before = count(app, integrator.Token)
    clock.advance(elapsed)

    response = answer(client, challenge_id, code_for(secret, clock))

    assert response.status_code == status
    assert count(app, integrator.Token) == tokens_before + (status == 200)
    if status == 404:
        assert response.json == NOT_FOUND


def test_unknown_login_challenge_is_404(
    app: Flask,
    integrator: Integrator,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
) -> None:
    _, secret = connected_user
    tokens_before = count(app, integrator.Token)

    response = answer(client, "x" * 43, code_for(secret, clock))

    assert response.status_code == 404
    assert response.json == NOT_FOUND
    assert count(app, integrator.Token) == tokens_before


# -- a failing completion hook -----------------------------------------------------------------


class HookFailed(Exception):
    pass


@pytest.mark.parametrize("retry_offset", [0, 1], ids=["same-step", "next-step"])
def test_failing_hook_does_not_spend_the_challenge(
    app: Flask,
    integrator: Integrator,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    retry_offset: int,
) -> None:
    user, secret = connected_user
    calls: list[LoginCompleted] = []

    @integrator.two_factor.login_completed
    def fails_once(completed: LoginCompleted) -> Any:
        calls.append(completed)
        if len(calls) == 1:
            raise HookFailed("the token store is down")
        return integrator.finish_login(completed)

    challenge_id = login(client, user).json["2fa"]
    tokens_before = count(app, integrator.Token)
    challenges_before = count(app, integrator.two_factor.models.Challenge)

    with pytest.raises(HookFailed, match="^the token store is down$"):
        answer(client, challenge_id, code_for(secret, clock))

    assert count(app, integrator.Token) == tokens_before
    assert count(app, integrator.two_factor.models.Challenge) == challenges_before

    response = answer(client, challenge_id, code_for(secret, clock, retry_offset))

    assert_tokens(response, 0)
    assert len(calls) == 2
    assert count(app, integrator.Token) == tokens_before + 1
    assert count(app, integrator.two_factor.models.Challenge) == challenges_before - 1
    resource = me(client, response.json["accessToken"])
    assert resource.json == {
        "username": "alice",
        "amr": ["pwd", "otp"],
        "authTime": int(clock.now),
    }
