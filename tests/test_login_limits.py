"""Password attempts, limited by ``two_factor.limit_password_attempt`` in the integrator's login
route: a back-off for the user at an address, budgets for the address and for the user, all in
the database, answered 429 with ``Retry-After``, and a victim never locked out cheaply."""

from __future__ import annotations

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy import select

from flask_ucloud_2fa import AttemptCounterMixin
from flask_ucloud_2fa import TooManyAttempts
from flask_ucloud_2fa import TwoFactorModels

from helpers import FakeClock
from helpers import TestUser
from helpers import add_user
from helpers import assert_blocked
from helpers import assert_error
from helpers import count
from helpers import db_of
from helpers import race
from helpers import two_factor_of

#: Two consecutive failures of a user at an address start a back-off of up to 8 s; the
#: budgets stay out of the way.
BACKOFF = {
    "UCLOUD_2FA_BACKOFF_AFTER": 2,
    "UCLOUD_2FA_BACKOFF_MAX": 8,
    "UCLOUD_2FA_LOGIN_ADDRESS_BUDGET": 10**6,
    "UCLOUD_2FA_LOGIN_USER_BUDGET": 10**6,
}
#: An address may fail three times, one failure forgiven a minute.
ADDRESS_BUDGET = {
    "UCLOUD_2FA_BACKOFF_AFTER": 10**6,
    "UCLOUD_2FA_LOGIN_ADDRESS_BUDGET": 3,
    "UCLOUD_2FA_LOGIN_ADDRESS_FORGIVE": 60,
    "UCLOUD_2FA_LOGIN_USER_BUDGET": 10**6,
}
#: A user may fail three times from anywhere, one failure forgiven every ten seconds.
USER_BUDGET = {
    "UCLOUD_2FA_BACKOFF_AFTER": 10**6,
    "UCLOUD_2FA_LOGIN_ADDRESS_BUDGET": 10**6,
    "UCLOUD_2FA_LOGIN_USER_BUDGET": 3,
    "UCLOUD_2FA_LOGIN_USER_FORGIVE": 10,
}


def _login(client: FlaskClient, username: str, password: str, address: str = "192.0.2.1") -> Any:
    return client.post(
        "/auth/login",
        json={"username": username, "password": password},
        environ_base={"REMOTE_ADDR": address},
    )


def _fail(client: FlaskClient, user: TestUser, address: str = "192.0.2.1") -> Any:
    return _login(client, user.username, user.password + "-wrong", address)


def _counters(app: Flask) -> list[Any]:
    model = two_factor_of(app).models.AttemptCounter
    with app.app_context():
        return list(db_of(app).session.execute(select(model)).scalars())


@pytest.mark.app_config(**BACKOFF)
def test_consecutive_failures_back_off_the_user_at_that_address(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    for _ in range(2):
        assert_error(_fail(client, user), 401, "INVALID_CREDENTIALS")
    # The second failure started a back-off of one second: even the right password waits.
    refused = _login(client, user.username, user.password)
    assert_blocked(refused, "TOO_MANY_ATTEMPTS", 1, user.password)
    assert refused.json["why"] == "Too many login attempts. Wait before trying again."
    clock.advance(1)
    assert_error(_fail(client, user), 401, "INVALID_CREDENTIALS")
    assert_blocked(_fail(client, user), "TOO_MANY_ATTEMPTS", 2)  # doubled
    clock.advance(2)
    assert_error(_fail(client, user), 401, "INVALID_CREDENTIALS")
    clock.advance(4)
    assert_error(_fail(client, user), 401, "INVALID_CREDENTIALS")
    assert_blocked(_fail(client, user), "TOO_MANY_ATTEMPTS", 8)
    clock.advance(8)
    assert_error(_fail(client, user), 401, "INVALID_CREDENTIALS")
    assert_blocked(_fail(client, user), "TOO_MANY_ATTEMPTS", 8)  # capped at BACKOFF_MAX


@pytest.mark.app_config(**BACKOFF)
def test_an_attacker_elsewhere_does_not_lock_the_victim_out(
    client: FlaskClient, user: TestUser
) -> None:
    for _ in range(2):
        _fail(client, user, address="203.0.113.9")
    assert_blocked(_fail(client, user, "203.0.113.9"), "TOO_MANY_ATTEMPTS", 1)
    # The user, at their own address, logs in at once.
    response = _login(client, user.username, user.password, "192.0.2.1")
    assert response.status_code == 200, response.json
    assert "accessToken" in response.json


@pytest.mark.app_config(**BACKOFF)
def test_a_right_password_ends_the_back_off_and_refunds_its_attempt(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    _fail(client, user)
    assert _login(client, user.username, user.password).status_code == 200
    # The count starts again: two more failures before a back-off.
    for _ in range(2):
        assert_error(_fail(client, user), 401, "INVALID_CREDENTIALS")
    assert_blocked(_fail(client, user), "TOO_MANY_ATTEMPTS", 1)
    clock.advance(1)
    assert _login(client, user.username, user.password).status_code == 200
    assert_error(_fail(client, user), 401, "INVALID_CREDENTIALS")
    assert _login(client, user.username, user.password).status_code == 200


@pytest.mark.app_config(**ADDRESS_BUDGET)
def test_an_address_has_a_budget_across_usernames(
    app: Flask, client: FlaskClient, clock: FakeClock
) -> None:
    user = add_user(app)
    for name in ("alice", "bob", "carol"):  # spraying: a different name each time
        assert_error(_login(client, name, "guess"), 401, "INVALID_CREDENTIALS")
    assert_blocked(_login(client, "dave", "guess"), "TOO_MANY_ATTEMPTS", 60)
    # Another address is not affected.
    assert _login(client, user.username, user.password, "198.51.100.7").status_code == 200
    clock.advance(60)  # one failure forgiven: one attempt more
    assert_error(_login(client, "dave", "guess"), 401, "INVALID_CREDENTIALS")
    assert_blocked(_login(client, "erin", "guess"), "TOO_MANY_ATTEMPTS", 60)


@pytest.mark.app_config(**ADDRESS_BUDGET)
def test_an_ipv6_client_counts_by_its_network(client: FlaskClient) -> None:
    for host in ("1", "2", "3"):
        _login(client, "alice", "guess", f"2001:db8:0:1::{host}")
    assert_blocked(_login(client, "bob", "guess", "2001:db8:0:1::ffff"), "TOO_MANY_ATTEMPTS", 60)
    assert_error(_login(client, "bob", "guess", "2001:db8:0:2::1"), 401, "INVALID_CREDENTIALS")


@pytest.mark.app_config(**USER_BUDGET)
def test_a_user_has_a_budget_across_addresses_that_throttles(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    for host in range(3):
        assert_error(_fail(client, user, f"192.0.2.{host + 10}"), 401, "INVALID_CREDENTIALS")
    assert_blocked(_fail(client, user, "192.0.2.99"), "TOO_MANY_ATTEMPTS", 10)
    other = add_user(app)  # other users are not affected
    assert _login(client, other.username, other.password, "192.0.2.99").status_code == 200
    clock.advance(10)  # a throttle, not a lock-out: one attempt per forgiven failure
    response = _login(client, user.username, user.password, "192.0.2.99")
    assert response.status_code == 200, response.json


@pytest.mark.app_config(**ADDRESS_BUDGET)
def test_a_refused_attempt_counts_nothing(app: Flask, client: FlaskClient) -> None:
    for name in ("alice", "bob", "carol"):
        _login(client, name, "guess")
    before = {(row.key_hash, row.failures, row.forgiven_at) for row in _counters(app)}
    for _ in range(5):
        assert _login(client, "dave", "guess").status_code == 429
    after = {(row.key_hash, row.failures, row.forgiven_at) for row in _counters(app)}
    assert after == before


def test_the_counters_name_no_user_and_no_address(app: Flask, client: FlaskClient) -> None:
    _login(client, "someone-special", "guess", "192.0.2.77")
    rows = _counters(app)
    assert len(rows) == 3  # the user at the address, the address, the user
    for row in rows:
        assert len(row.key_hash) == 64
        assert "someone-special" not in row.key_hash and "192.0.2.77" not in row.key_hash


@pytest.mark.app_config(UCLOUD_2FA_LOGIN_ADDRESS_FORGIVE=60, UCLOUD_2FA_BACKOFF_MAX=60)
def test_forgiven_counters_are_removed(app: Flask, client: FlaskClient, clock: FakeClock) -> None:
    _login(client, "alice", "guess", "192.0.2.1")
    assert len(_counters(app)) == 3
    clock.advance(3600)
    _login(client, "bob", "guess", "192.0.2.2")
    assert len(_counters(app)) == 3  # alice's three went; bob's three came


@pytest.mark.race
@pytest.mark.app_config(**BACKOFF)
def test_a_parallel_burst_gets_no_more_guesses_than_a_sequence(app: Flask, user: TestUser) -> None:
    """Twelve wrong passwords at once: two are checked, as one after the other; every other one
    is refused unchecked, on SQLite and on PostgreSQL."""
    wrong = {"username": user.username, "password": user.password + "-wrong"}
    calls = [
        lambda client: client.post(
            "/auth/login", json=wrong, environ_base={"REMOTE_ADDR": "192.0.2.1"}
        )
        for _ in range(12)
    ]
    statuses = sorted(outcome.status for outcome in race(app, calls))
    assert statuses == [401] * 2 + [429] * 10
    model = two_factor_of(app).models.AttemptCounter
    assert count(app, model, model.failures == 2) == 3


def test_own_models_without_a_counter_are_told_what_to_add(app: Flask) -> None:
    two_factor = two_factor_of(app)
    models = two_factor.models
    two_factor.models = TwoFactorModels(models.Credential, models.Challenge, models.RecoveryCode)
    try:
        with app.test_request_context(), pytest.raises(RuntimeError, match="AttemptCounter"):
            two_factor.limit_password_attempt("alice", "192.0.2.1")
    finally:
        two_factor.models = models
    assert issubclass(models.AttemptCounter, AttemptCounterMixin)


def test_an_attempt_refunds_once(app: Flask, clock: FakeClock) -> None:
    two_factor = two_factor_of(app)
    with app.test_request_context():
        attempt = two_factor.limit_password_attempt("alice", "192.0.2.1")
        attempt.succeeded()
        attempt.succeeded()
    forgiven = {row.forgiven_at for row in _counters(app)}
    # Charged once and refunded once: each row's failures are forgiven now, not earlier.
    assert forgiven == {int(clock.now)}


@pytest.mark.parametrize("value", ["abc", 0, -1, None])
def test_a_budget_that_cannot_work_is_named(make_app: Any, value: Any) -> None:
    with pytest.raises(ValueError, match="UCLOUD_2FA_LOGIN_USER_BUDGET"):
        make_app({"UCLOUD_2FA_LOGIN_USER_BUDGET": value})


def test_too_many_attempts_is_the_public_error(app: Flask) -> None:
    two_factor = two_factor_of(app)
    with app.test_request_context():
        for _ in range(5):
            two_factor.limit_password_attempt("alice", None)
        with pytest.raises(TooManyAttempts) as refused:
            two_factor.limit_password_attempt("alice", None)
    assert refused.value.retry_after == 1


@pytest.mark.race
@pytest.mark.app_config(UCLOUD_2FA_BACKOFF_MAX=1, UCLOUD_2FA_LOGIN_ADDRESS_FORGIVE=1)
def test_parallel_attempts_of_many_users_and_addresses_never_fail(
    app: Flask, clock: FakeClock
) -> None:
    """Attempts whose keys overlap, while earlier rows empty out and are removed: each is
    admitted or refused, none waits in a cycle (a deadlock would answer 500)."""
    users = [add_user(app) for _ in range(3)]
    for round_ in range(8):
        calls = [
            lambda client, n=n, round_=round_: client.post(
                "/auth/login",
                json={
                    "username": users[n % 3].username,
                    "password": users[n % 3].password + ("" if n % 2 else "-wrong"),
                },
                environ_base={"REMOTE_ADDR": f"192.0.2.{(n + round_) % 4}"},
            )
            for n in range(16)
        ]
        statuses = {outcome.status for outcome in race(app, calls)}
        assert statuses <= {200, 401, 429}, statuses
        clock.advance(30)  # every counter so far is forgiven: the next round removes them
