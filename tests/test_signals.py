"""Signals and audit records: one of each per decision, from the app, without any secret."""

from __future__ import annotations

import contextvars
import logging
from collections.abc import Callable
from collections.abc import Iterable
from collections.abc import Iterator
from contextlib import AbstractContextManager
from contextlib import ExitStack
from contextlib import contextmanager
from dataclasses import dataclass
from dataclasses import field
from typing import TYPE_CHECKING
from typing import Any

import pytest
from blinker import Signal
from flask import Flask
from flask.testing import FlaskClient

from flask_ucloud_2fa import signals

from helpers import FakeClock
from helpers import answer
from helpers import answer_with_recovery_code
from helpers import begin_login
from helpers import cli
from helpers import code_for
from helpers import create_setup
from helpers import new_codes
from helpers import wrong_code

if TYPE_CHECKING:
    # Imported for annotations only: a module-level Test* class would be collected by pytest.
    from helpers import TestUser

AUDIT_LOGGER = "flask_ucloud_2fa.audit"
#: The Flask test client's default ``REMOTE_ADDR``.
CLIENT_ADDRESS = "127.0.0.1"
#: Attributes of every log record; whatever else a record has came from the extension.
STANDARD_RECORD_ATTRIBUTES = set(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
}

Event = tuple[str, dict[str, Any]]


# -- recording ---------------------------------------------------------------------------------


@dataclass
class Recording:
    """What every signal of :data:`signals.EVENTS` sent, and the audit records, while recording."""

    caplog: pytest.LogCaptureFixture
    start: int
    sent: list[tuple[str, Any, dict[str, Any]]] = field(default_factory=list)

    def receiver(self, name: str) -> Callable[..., None]:
        def receive(sender: Any, **kwargs: Any) -> None:
            self.sent.append((name, sender, kwargs))

        return receive

    @property
    def events(self) -> list[Event]:
        return [(name, kwargs) for name, _, kwargs in self.sent]

    @property
    def audit(self) -> list[logging.LogRecord]:
        return [r for r in self.caplog.records[self.start :] if r.name == AUDIT_LOGGER]


RecordSignals = Callable[[], AbstractContextManager[Recording]]


@pytest.fixture
def record_signals(caplog: pytest.LogCaptureFixture) -> RecordSignals:
    """``with record_signals() as recording:`` records every signal sent inside the block."""
    caplog.set_level(logging.INFO, logger=AUDIT_LOGGER)

    @contextmanager
    def record() -> Iterator[Recording]:
        recording = Recording(caplog, len(caplog.records))
        with ExitStack() as stack:
            for name, signal in signals.EVENTS.items():
                stack.enter_context(signal.connected_to(recording.receiver(name)))
            yield recording

    return record


def event(
    name: str,
    user: TestUser,
    outcome: str = "success",
    client_address: str | None = CLIENT_ADDRESS,
    **data: Any,
) -> Event:
    """The signal ``name`` as the extension should send it about ``user``."""
    return name, {
        "user_id": str(user.id),
        "outcome": outcome,
        "client_address": client_address,
        **data,
    }


def assert_reported(
    recording: Recording, app: Flask, expected: list[Event], sensitive: Iterable[str]
) -> None:
    """Exactly ``expected`` was sent, by ``app``, with one matching audit record each, and
    none of the ``sensitive`` values is in any signal or audit record."""
    assert recording.events == expected
    assert all(sender is app for _, sender, _ in recording.sent)

    audit = recording.audit
    assert [
        (r.event, r.user_id, r.outcome, r.client_address)  # type: ignore[attr-defined]
        for r in audit
    ] == [
        (name, kwargs["user_id"], kwargs["outcome"], kwargs["client_address"])
        for name, kwargs in expected
    ]
    assert all(r.levelno == logging.INFO for r in audit)
    assert all(
        r.getMessage().startswith(name) for r, (name, _) in zip(audit, expected, strict=True)
    )

    sensitive = [value for value in sensitive if value]
    assert sensitive
    assert all(len(value) >= 6 for value in sensitive)  # no accidental match of short text
    texts = [repr(kwargs) for _, kwargs in recording.events]
    for record in audit:
        extra = {k: v for k, v in vars(record).items() if k not in STANDARD_RECORD_ATTRIBUTES}
        texts += [record.getMessage(), repr(extra)]
    for text in texts:
        for value in sensitive:
            assert value not in text


# -- the catalogue -----------------------------------------------------------------------------


def test_events_name_every_signal_once() -> None:
    assert set(signals.EVENTS) == {
        "setup_started",
        "connected",
        "challenge_passed",
        "challenge_failed",
        "locked_out",
        "recovery_code_used",
        "recovery_codes_generated",
        "disabled",
        "reset",
        "browser_remembered",
        "remembered_login",
        "browsers_forgotten",
    }
    assert all(isinstance(signal, Signal) for signal in signals.EVENTS.values())
    assert len({id(signal) for signal in signals.EVENTS.values()}) == len(signals.EVENTS)
    assert all(signals.EVENTS[name] is getattr(signals, name) for name in signals.EVENTS)


# -- setup -------------------------------------------------------------------------------------


def test_setup_sends_setup_started(
    app: Flask, client: FlaskClient, user: TestUser, record_signals: RecordSignals
) -> None:
    with record_signals() as recording:
        created = create_setup(client, user.headers)

    assert_reported(
        recording,
        app,
        [event("setup_started", user)],
        [created["secret"], created["challengeId"], user.token],
    )


def test_right_setup_answer_sends_challenge_passed_and_connected(
    app: Flask,
    client: FlaskClient,
    user: TestUser,
    clock: FakeClock,
    record_signals: RecordSignals,
) -> None:
    created = create_setup(client, user.headers)
    code = code_for(created["secret"], clock)

    with record_signals() as recording:
        response = answer(client, created["challengeId"], code, user.headers)

    assert response.status_code == 200, response.json
    assert_reported(
        recording,
        app,
        [
            event("challenge_passed", user, kind="setup", method="otp"),
            event("connected", user),
        ],
        [created["secret"], created["challengeId"], code, user.token],
    )


def test_wrong_setup_answers_send_challenge_failed_with_the_failure_count(
    app: Flask,
    client: FlaskClient,
    user: TestUser,
    clock: FakeClock,
    record_signals: RecordSignals,
) -> None:
    created = create_setup(client, user.headers)
    wrong = wrong_code(created["secret"], clock)

    with record_signals() as recording:
        first = answer(client, created["challengeId"], wrong, user.headers)
        second = answer(client, created["challengeId"], wrong, user.headers)

    assert (first.status_code, second.status_code) == (403, 403)
    assert_reported(
        recording,
        app,
        [
            event("challenge_failed", user, "failure", failures=1),
            event("challenge_failed", user, "failure", failures=2),
        ],
        [created["secret"], created["challengeId"], wrong, code_for(created["secret"], clock)],
    )


# -- login -------------------------------------------------------------------------------------


@pytest.mark.parametrize("right", [True, False], ids=["right-code", "wrong-code"])
def test_login_answer_sends_challenge_passed_or_failed(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    record_signals: RecordSignals,
    right: bool,
) -> None:
    user, secret = connected_user
    code = code_for(secret, clock) if right else wrong_code(secret, clock)

    with record_signals() as recording:
        challenge_id = begin_login(client, user)  # a challenge alone is no decision yet
        response = answer(client, challenge_id, code)

    sensitive = [secret, challenge_id, code, code_for(secret, clock)]
    if right:
        assert response.status_code == 200, response.json
        expected = [event("challenge_passed", user, kind="login", method="otp")]
        sensitive.append(response.json["accessToken"])
    else:
        assert response.status_code == 403
        expected = [event("challenge_failed", user, "failure", failures=1)]
    assert_reported(recording, app, expected, sensitive)


def test_recovery_code_login_sends_challenge_passed_and_recovery_code_used(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    record_signals: RecordSignals,
) -> None:
    user, secret = connected_user
    codes = new_codes(client, user.headers, secret, clock)
    challenge_id = begin_login(client, user)

    with record_signals() as recording:
        response = answer_with_recovery_code(client, challenge_id, codes[0])

    assert response.status_code == 200, response.json
    assert_reported(
        recording,
        app,
        [
            event("challenge_passed", user, kind="login", method="recovery_code"),
            event("recovery_code_used", user, kind="login"),
        ],
        [
            secret,
            challenge_id,
            response.json["accessToken"],
            *codes,
            *(code.replace("-", "") for code in codes),
        ],
    )


# -- limits ------------------------------------------------------------------------------------


@pytest.mark.app_config(
    UCLOUD_2FA_LOCKOUT_AFTER=3, UCLOUD_2FA_BACKOFF_AFTER=1, UCLOUD_2FA_BACKOFF_MAX=1
)
def test_reaching_the_lockout_limit_sends_locked_out(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    record_signals: RecordSignals,
) -> None:
    user, secret = connected_user
    challenge_id = begin_login(client, user)
    sent_codes = []

    with record_signals() as recording:
        for attempt in range(3):
            if attempt:
                clock.advance(1)  # past the one-second back-off of the previous failure
            sent_codes.append(wrong_code(secret, clock))
            response = answer(client, challenge_id, sent_codes[-1])
            assert response.status_code == 403, response.json
        sent_codes.append(code_for(secret, clock))
        locked = answer(client, challenge_id, sent_codes[-1])

    assert locked.status_code == 429
    assert locked.json["errorCode"] == "LOCKED_OUT"
    # Three failures in two seconds: the first is forgiven an hour after it was made.
    assert locked.headers["Retry-After"] == str(3600 - 2)
    assert_reported(
        recording,
        app,
        [
            event("challenge_failed", user, "failure", failures=1),
            event("challenge_failed", user, "failure", failures=2),
            event("challenge_failed", user, "failure", failures=3),
            event("locked_out", user, "failure", failures=3),
            event("challenge_failed", user, "blocked", retry_after=3600 - 2),
        ],
        [secret, challenge_id, *sent_codes],
    )


@pytest.mark.app_config(UCLOUD_2FA_BACKOFF_AFTER=1)
def test_answer_while_backing_off_sends_a_blocked_challenge_failed(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    record_signals: RecordSignals,
) -> None:
    user, secret = connected_user
    challenge_id = begin_login(client, user)
    wrong, right = wrong_code(secret, clock), code_for(secret, clock)

    with record_signals() as recording:
        failed = answer(client, challenge_id, wrong)
        blocked = answer(client, challenge_id, right)
        clock.advance(1)
        passed = answer(client, challenge_id, code_for(secret, clock))

    assert failed.status_code == 403
    assert blocked.status_code == 429
    assert blocked.json["errorCode"] == "TOO_MANY_ATTEMPTS"
    assert blocked.headers["Retry-After"] == "1"
    assert passed.status_code == 200, passed.json
    assert_reported(
        recording,
        app,
        [
            event("challenge_failed", user, "failure", failures=1),
            event("challenge_failed", user, "blocked", retry_after=1),
            event("challenge_passed", user, kind="login", method="otp"),
        ],
        [secret, challenge_id, wrong, right, passed.json["accessToken"]],
    )


# -- recovery codes, disable, reset ------------------------------------------------------------


def test_new_recovery_codes_send_recovery_codes_generated(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    record_signals: RecordSignals,
) -> None:
    user, secret = connected_user
    code = code_for(secret, clock)

    with record_signals() as recording:
        codes = new_codes(client, user.headers, secret, clock)

    assert len(codes) == 10
    assert_reported(
        recording,
        app,
        [event("recovery_codes_generated", user, count=10)],
        [secret, code, user.token, *codes, *(c.replace("-", "") for c in codes)],
    )


@pytest.mark.parametrize("right", [True, False], ids=["right-code", "wrong-code"])
def test_disable_sends_disabled_or_challenge_failed(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    clock: FakeClock,
    record_signals: RecordSignals,
    right: bool,
) -> None:
    user, secret = connected_user
    code = code_for(secret, clock) if right else wrong_code(secret, clock)

    with record_signals() as recording:
        response = client.post(
            "/auth/2fa/disable", headers=user.headers, json={"verificationCode": code}
        )

    assert response.status_code == (200 if right else 403), response.json
    assert client.get("/auth/2fa/status", headers=user.headers).json == {"connected": not right}
    expected = (
        [event("disabled", user)]
        if right
        else [event("challenge_failed", user, "failure", failures=1)]
    )
    assert_reported(recording, app, expected, [secret, code, code_for(secret, clock), user.token])


def reset_from_the_command_line(app: Flask, user: TestUser) -> Any:
    # pytest-flask pushes a request context around every test using ``app``; an administrator's
    # command runs outside of any request, so it runs in a fresh context here.
    return contextvars.Context().run(cli, app, "reset", str(user.id), "--yes")


def test_cli_reset_sends_reset_without_a_client_address(
    app: Flask,
    client: FlaskClient,
    connected_user: tuple[TestUser, str],
    record_signals: RecordSignals,
) -> None:
    user, secret = connected_user

    with record_signals() as recording:
        result = reset_from_the_command_line(app, user)

    assert result.exit_code == 0, result.output
    assert client.get("/auth/2fa/status", headers=user.headers).json == {"connected": False}
    assert_reported(
        recording, app, [event("reset", user, client_address=None)], [secret, user.token]
    )


def test_cli_reset_of_a_user_without_2fa_sends_nothing(
    app: Flask, user: TestUser, record_signals: RecordSignals
) -> None:
    with record_signals() as recording:
        result = reset_from_the_command_line(app, user)

    assert result.exit_code == 1
    assert recording.events == []
    assert recording.audit == []


# -- the client address ------------------------------------------------------------------------


def test_client_address_is_the_requests_remote_address(
    app: Flask, client: FlaskClient, user: TestUser, record_signals: RecordSignals
) -> None:
    with record_signals() as recording:
        response = client.post(
            "/auth/2fa", headers=user.headers, environ_base={"REMOTE_ADDR": "203.0.113.7"}
        )

    assert response.status_code == 200
    assert_reported(
        recording,
        app,
        [event("setup_started", user, client_address="203.0.113.7")],
        [response.json["secret"], response.json["challengeId"]],
    )
