"""How many SQL statements the hot paths run, counted on the engine.

Counted with ``before_cursor_execute``, so each statement sent to the database counts once,
including the ones SQLAlchemy sends for the ORM; ``BEGIN`` and ``COMMIT`` are not statements
there and are not counted. Runs on SQLite and on PostgreSQL through the ``app`` fixture.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pytest
from flask import Flask
from flask.testing import FlaskClient

from helpers import TOKEN_KEYS
from helpers import FakeClock
from helpers import answer
from helpers import code_for
from helpers import counting
from helpers import engine_of
from helpers import login
from helpers import login_challenge
from helpers import me
from helpers import wrong_code

if TYPE_CHECKING:
    from helpers import TestUser


def test_protected_route_is_one_token_lookup(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    # The baseline the others are counted against: Authlib's SELECT of the token.
    with counting(engine_of(app)) as statements:
        assert client.get("/api/me", headers=user.headers).status_code == 200
    token_lookups = [s for s in statements if s.startswith("SELECT") and " token" in s]
    assert len(token_lookups) == 1, statements


@pytest.mark.parametrize("connected", [False, True])
def test_status_is_the_token_lookup_alone(
    app: Flask, client: FlaskClient, request: pytest.FixtureRequest, connected: bool
) -> None:
    user: TestUser = (
        request.getfixturevalue("connected_user")[0]
        if connected
        else request.getfixturevalue("user")
    )
    with counting(engine_of(app)) as statements:
        response = client.get("/auth/2fa/status", headers=user.headers)
    assert response.json == {"connected": connected}
    # The integrator app calls two_factor.load_with_token(Token): Authlib's SELECT of the token
    # carries the 2FA state as a subquery, and status runs nothing of its own.
    assert len(statements) == 1, statements
    assert "FROM token" in statements[0]
    assert "FROM ucloud_2fa_credential" in statements[0]


def test_step_up_check_is_the_token_lookup_alone(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    with counting(engine_of(app)) as statements:
        response = client.get("/api/me/security", headers=user.headers)
    assert response.status_code == 200, response.json
    assert len([s for s in statements if "ucloud_2fa_credential" in s]) == 1, statements
    assert all("FROM token" in s for s in statements if "ucloud_2fa_credential" in s)


# A login challenge is answered by someone who has no token yet: a stray Authorization header
# (here one that names no token) is neither looked up nor refused.
@pytest.mark.parametrize(
    "headers", [{}, {"Authorization": "Bearer not-a-token"}], ids=["no-token", "stray-token"]
)
def test_correct_answer_runs_a_fixed_number_of_statements(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    headers: dict[str, str],
) -> None:
    user, secret = connected_user
    challenge_id = login_challenge(app, user.id)
    with counting(engine_of(app)) as statements:
        response = answer(client, challenge_id, code_for(secret, clock), headers)
    assert response.status_code == 200, response.json
    assert set(response.json) == TOKEN_KEYS
    # The extension: SELECT challenge JOIN credential; UPDATE credential (spend the time step);
    # DELETE challenge (spend it). Then the integrator's login_completed hook: INSERT token.
    # (No token lookup: a login challenge is answered without a bearer token.)
    assert [s.split()[0] for s in statements] == ["SELECT", "UPDATE", "DELETE", "INSERT"]
    assert "FROM ucloud_2fa_challenge JOIN ucloud_2fa_credential" in statements[0]
    assert "INTO token" in statements[3]
    # One commit stores the spent challenge and the hook's token together.
    assert statements.commits == 1


def test_login_without_2fa_commits_the_hook_once(
    app: Flask, client: FlaskClient, user: TestUser
) -> None:
    with counting(engine_of(app)) as statements:
        response = login(client, user)
    assert response.status_code == 200, response.json
    # The password attempt is reserved, and refunded, in short transactions of their own; the
    # login step then commits the hook's token once.
    assert statements.commits == 3
    assert statements[-1].startswith("INSERT INTO token")
    assert me(client, response.json["accessToken"]).status_code == 200


def test_wrong_answer_runs_a_fixed_number_of_statements(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
) -> None:
    user, secret = connected_user
    challenge_id = login_challenge(app, user.id)
    with counting(engine_of(app)) as statements:
        response = answer(client, challenge_id, wrong_code(secret, clock))
    assert response.status_code == 403, response.json
    # SELECT challenge JOIN credential; UPDATE credential, admitted? (the round trip a right
    # code's time step takes, so a refused answer's timing tells nothing); UPDATE credential
    # failures + 1 RETURNING; UPDATE challenge attempts + 1 RETURNING.
    assert len(statements) == 4, statements
    assert [s.split()[0] for s in statements] == ["SELECT", "UPDATE", "UPDATE", "UPDATE"]
    assert "ucloud_2fa_credential" in statements[1]
    assert "ucloud_2fa_credential" in statements[2]
    assert "ucloud_2fa_challenge" in statements[3]


@pytest.mark.app_config(UCLOUD_2FA_LOCKOUT_AFTER=1, UCLOUD_2FA_BACKOFF_AFTER=10**6)
def test_a_refused_answer_runs_the_same_statements_for_a_right_code_as_for_a_wrong_one(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
) -> None:
    """While the user is locked out, a right code and a wrong one are refused alike, down to
    the statements they run: their timing does not tell a guess that was right."""
    user, secret = connected_user
    locking = answer(client, login_challenge(app, user.id), wrong_code(secret, clock))
    assert locking.status_code == 403 and locking.json["retryAfter"] > 0
    shapes = []
    for code in (code_for(secret, clock), wrong_code(secret, clock)):
        challenge_id = login_challenge(app, user.id)
        with counting(engine_of(app)) as statements:
            refused = answer(client, challenge_id, code)
        assert refused.status_code == 429 and refused.json["errorCode"] == "LOCKED_OUT"
        shapes.append([" ".join(s.split()[:3]) for s in statements])
    assert shapes[0] == shapes[1], shapes
