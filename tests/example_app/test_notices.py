"""The example app's security notices (``example_app/notices.py``): one mail per event of the
user's second factor, to the user's address, through the backend its config names.

Most tests keep the mail in memory (``MAIL_BACKEND="memory"``); the SMTP backend is tested
against a small SMTP server the test runs on 127.0.0.1.
"""

from __future__ import annotations

import base64
import logging
import socketserver
import threading
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from email import message_from_bytes
from email.message import EmailMessage
from email.message import Message
from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from example_app import db
from example_app.models import User
from example_app.notices import backend_from_config
from example_app.notices import init_notices
from example_app.notices import outbox

from helpers import FakeClock
from helpers import TestUser
from helpers import answer
from helpers import answer_with_recovery_code
from helpers import begin_login
from helpers import cli
from helpers import code_for
from helpers import connect
from helpers import connect_and_step_up
from helpers import create_setup
from helpers import new_codes
from helpers import wrong_code

pytestmark = pytest.mark.app_config(MAIL_BACKEND="memory")

ADDRESS = "alice@example.org"
SITE = "Example Auth Server"


def set_email(app: Flask, user: TestUser, email: str | None) -> None:
    with app.app_context():
        db.session.get(User, user.id).email = email
        db.session.commit()


def only_notice(app: Flask) -> EmailMessage:
    """The one message sent, and empty the outbox."""
    sent = outbox(app)
    assert len(sent) == 1, [message["Subject"] for message in sent]
    return sent.pop()


# -- one notice per event ----------------------------------------------------------------------


@dataclass
class Event:
    """What leads up to an event (returns what the event needs), and the event itself."""

    prepare: Callable[[Flask, FlaskClient, TestUser, FakeClock], Any]
    happen: Callable[[Flask, FlaskClient, TestUser, FakeClock, Any], None]
    subject: str
    #: Said in the body; the secrets the body must not hold come from ``prepare``.
    says: str


def _nothing(app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock) -> None:
    return None


def _connected(app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock) -> str:
    return connect(client, user.headers, clock)


def _stepped_up(app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock) -> str:
    return connect_and_step_up(client, user, clock)


def _with_codes(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> tuple[str, list[str]]:
    secret = connect_and_step_up(client, user, clock)
    return secret, new_codes(client, user.headers, secret, clock)


def _connect(app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock, _: Any) -> None:
    connect(client, user.headers, clock)


def _disable(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock, secret: str
) -> None:
    response = client.post(
        "/auth/2fa/disable",
        headers=user.headers,
        json={"verificationCode": code_for(secret, clock)},
    )
    assert response.status_code == 200, response.json


def _reset(app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock, _: Any) -> None:
    result = cli(app, "reset", str(user.id), "--yes")
    assert result.exit_code == 0, result.output


def _regenerate(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock, secret: str
) -> None:
    new_codes(client, user.headers, secret, clock)


def _use_recovery_code(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock, armed: Any
) -> None:
    _, codes = armed
    response = answer_with_recovery_code(client, begin_login(client, user), codes[0])
    assert response.status_code == 200, response.json


def _wrong_codes(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock, secret: str
) -> None:
    challenge_id = begin_login(client, user)
    for _ in range(app.config["UCLOUD_2FA_BACKOFF_AFTER"] - 1):
        assert answer(client, challenge_id, wrong_code(secret, clock)).status_code == 403
        clock.advance(1)
    assert outbox(app) == [], "a notice before the back-off started"
    assert answer(client, challenge_id, wrong_code(secret, clock)).status_code == 403


def _lock_out(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock, secret: str
) -> None:
    for _ in range(app.config["UCLOUD_2FA_LOCKOUT_AFTER"]):
        assert (
            answer(client, begin_login(client, user), wrong_code(secret, clock)).status_code == 403
        )
        clock.advance(1)


EVENTS = {
    "enabled": Event(_nothing, _connect, "Two-factor authentication is on", "turned on"),
    "disabled": Event(_stepped_up, _disable, "Two-factor authentication is off", "turned off"),
    "reset": Event(
        _connected, _reset, "Two-factor authentication was removed", "An administrator"
    ),
    "recovery codes regenerated": Event(
        _stepped_up, _regenerate, "New recovery codes", "earlier ones no longer work"
    ),
    "recovery code used": Event(
        _with_codes, _use_recovery_code, "A recovery code was used", "recovery codes was used"
    ),
    "repeated wrong codes": Event(
        _connected, _wrong_codes, "Wrong codes for your account", "Several wrong codes"
    ),
}


def secrets_of(prepared: Any) -> list[str]:
    """The TOTP secret and recovery codes that ``prepare`` returned."""
    if isinstance(prepared, str):
        return [prepared]
    if isinstance(prepared, tuple):
        secret, codes = prepared
        return [secret, *codes]
    return []


@pytest.mark.parametrize("name", EVENTS)
def test_each_event_sends_one_notice_to_the_user(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock, name: str
) -> None:
    event = EVENTS[name]
    set_email(app, user, ADDRESS)
    prepared = event.prepare(app, client, user, clock)
    outbox(app).clear()

    event.happen(app, client, user, clock, prepared)

    notice = only_notice(app)
    assert notice["To"] == ADDRESS
    assert notice["From"] == "Example Auth Server <no-reply@localhost>"
    assert notice["Subject"] == f"{SITE}: {event.subject}"
    body = notice.get_content()
    assert f"Hello {user.username}," in body and event.says in body
    assert "If " in body  # what to do if it was not them
    for secret in secrets_of(prepared):
        assert secret not in body


@pytest.mark.app_config(MAIL_BACKEND="memory", UCLOUD_2FA_RECOVERY_CODES_AT_SETUP=True)
def test_turning_2fa_on_with_its_first_recovery_codes_sends_one_notice(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    set_email(app, user, ADDRESS)
    setup = create_setup(client, user.headers)

    confirmed = answer(
        client, setup["challengeId"], code_for(setup["secret"], clock), headers=user.headers
    )

    assert confirmed.status_code == 200 and confirmed.json["recoveryCodes"]
    assert only_notice(app)["Subject"] == f"{SITE}: Two-factor authentication is on"


@pytest.mark.app_config(
    MAIL_BACKEND="memory", UCLOUD_2FA_LOCKOUT_AFTER=3, UCLOUD_2FA_BACKOFF_AFTER=10
)
def test_a_lock_out_sends_one_notice(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    set_email(app, user, ADDRESS)
    secret = connect(client, user.headers, clock)
    outbox(app).clear()

    _lock_out(app, client, user, clock, secret)

    notice = only_notice(app)
    assert notice["To"] == ADDRESS
    assert notice["Subject"] == f"{SITE}: Your account is locked for a while"
    # Refused answers while locked out send nothing more.
    blocked = answer(client, begin_login(client, user), code_for(secret, clock))
    assert blocked.status_code == 429
    assert outbox(app) == []


def test_wrong_codes_send_one_notice_per_run(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    """Once the back-off started, more wrong codes send nothing more; after a right code, a
    new run of wrong codes sends a new notice."""
    set_email(app, user, ADDRESS)
    secret = connect(client, user.headers, clock)
    outbox(app).clear()
    _wrong_codes(app, client, user, clock, secret)
    only_notice(app)

    clock.advance(60)  # past the back-off
    assert answer(client, begin_login(client, user), wrong_code(secret, clock)).status_code == 403
    assert outbox(app) == []

    clock.advance(60)
    assert answer(client, begin_login(client, user), code_for(secret, clock)).status_code == 200
    clock.advance(30)
    _wrong_codes(app, client, user, clock, secret)
    assert only_notice(app)["Subject"] == f"{SITE}: Wrong codes for your account"


def test_the_notice_says_where_from(
    app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    set_email(app, user, ADDRESS)
    connect(client, user.headers, clock)  # from the test client's address, 127.0.0.1
    assert "from the address 127.0.0.1" in only_notice(app).get_content()


@pytest.mark.parametrize("name", EVENTS)
def test_a_user_without_an_address_gets_no_notice(
    app: Flask,
    client: FlaskClient,
    user: TestUser,
    clock: FakeClock,
    name: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    event = EVENTS[name]
    prepared = event.prepare(app, client, user, clock)
    caplog.set_level(logging.INFO, logger="example_app.notices")

    event.happen(app, client, user, clock, prepared)

    assert outbox(app) == []
    assert any("no email address" in record.getMessage() for record in caplog.records)


# -- users' addresses ---------------------------------------------------------------------------


def test_create_user_takes_an_email_address(app: Flask) -> None:
    result = app.test_cli_runner().invoke(
        args=["create-user", "carol", "--password", "pw", "--email", " carol@example.org "]
    )
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert User.by_username("carol").email == "carol@example.org"
        assert User.by_username("carol").check_password("pw")


def test_create_user_without_an_email_address_makes_a_user_without_one(app: Flask) -> None:
    result = app.test_cli_runner().invoke(args=["create-user", "carol", "--password", "pw"])
    assert result.exit_code == 0, result.output
    with app.app_context():
        assert User.by_username("carol").email is None


@pytest.mark.parametrize("email", ["carol", "carol@", "carol example.org", "a@b.c\nBcc: x@y.z"])
def test_create_user_refuses_what_is_not_an_email_address(app: Flask, email: str) -> None:
    result = app.test_cli_runner().invoke(
        args=["create-user", "carol", "--password", "pw", "--email", email]
    )
    assert result.exit_code == 2
    assert "is not an email address" in result.output
    with app.app_context():
        assert User.by_username("carol") is None


# -- the backends ------------------------------------------------------------------------------


@pytest.mark.app_config()
def test_the_default_backend_writes_the_notice_to_the_log(
    app: Flask,
    client: FlaskClient,
    user: TestUser,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    assert app.config["MAIL_BACKEND"] == "console"
    set_email(app, user, ADDRESS)
    caplog.set_level(logging.INFO, logger="example_app.notices")

    connect(client, user.headers, clock)

    logged = [r.getMessage() for r in caplog.records if r.name == "example_app.notices"]
    assert len(logged) == 1
    assert f"To: {ADDRESS}" in logged[0]
    assert f"Subject: {SITE}: Two-factor authentication is on" in logged[0]
    with pytest.raises(RuntimeError, match="Only MAIL_BACKEND='memory' keeps an outbox"):
        outbox(app)


def test_the_smtp_password_stays_out_of_the_backends_repr() -> None:
    backend = backend_from_config(
        {
            "MAIL_BACKEND": "smtp",
            "MAIL_SERVER": "smtp.example.org",
            "MAIL_PORT": 587,
            "MAIL_USE_TLS": True,
            "MAIL_USERNAME": "notices",
            "MAIL_PASSWORD": "mail-password",
            "MAIL_TIMEOUT": 10,
        }
    )
    assert "smtp.example.org" in repr(backend) and "mail-password" not in repr(backend)


def test_an_unknown_backend_is_refused() -> None:
    with pytest.raises(ValueError, match="MAIL_BACKEND must be 'console', 'smtp' or 'memory'"):
        backend_from_config({"MAIL_BACKEND": "pigeon"})


@dataclass
class Received:
    """What the SMTP server was told, per connection."""

    commands: list[str] = field(default_factory=list)
    messages: list[Message] = field(default_factory=list)


class SmtpServer(socketserver.ThreadingTCPServer):
    """Just enough SMTP for smtplib, on 127.0.0.1: EHLO, AUTH PLAIN, MAIL, RCPT, DATA, QUIT.
    It offers no STARTTLS."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), SmtpSession)
        self.received = Received()


class SmtpSession(socketserver.StreamRequestHandler):
    server: SmtpServer

    def reply(self, line: str) -> None:
        self.wfile.write(f"{line}\r\n".encode())

    def handle(self) -> None:
        received = self.server.received
        self.reply("220 127.0.0.1 test SMTP server")
        while line := self.rfile.readline():
            command = line.decode().rstrip("\r\n")
            received.commands.append(command)
            verb = command.split(" ", 1)[0].upper()
            if verb == "EHLO":
                self.reply("250-127.0.0.1")
                self.reply("250 AUTH PLAIN")
            elif verb == "AUTH":
                self.reply("235 2.7.0 Authentication successful")
            elif verb in ("MAIL", "RCPT", "RSET", "NOOP"):
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 End data with <CR><LF>.<CR><LF>")
                received.messages.append(message_from_bytes(self.read_data()))
                self.reply("250 OK: queued")
            elif verb == "QUIT":
                self.reply("221 Bye")
                return
            else:
                self.reply("502 Command not implemented")

    def read_data(self) -> bytes:
        lines = []
        while (line := self.rfile.readline()) not in (b".\r\n", b""):
            lines.append(line[1:] if line.startswith(b"..") else line)
        return b"".join(lines)


@pytest.fixture
def smtp_server() -> Iterator[SmtpServer]:
    """An SMTP server on 127.0.0.1."""
    server = SmtpServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)


def send_with_smtp(app: Flask, server: SmtpServer, **config: Any) -> None:
    """Point the app's notices at ``server``, with a login, as a deployment's settings would
    (``FLASK_MAIL_BACKEND=smtp``, ``FLASK_MAIL_SERVER=...``)."""
    app.config.update(
        MAIL_BACKEND="smtp",
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=server.server_address[1],
        MAIL_USERNAME="notices",
        MAIL_PASSWORD="mail-password",
        MAIL_DEFAULT_SENDER="Security <security@example.org>",
        **config,
    )
    init_notices(app)  # where the settings are read


def test_the_smtp_backend_sends_the_notice(
    smtp_server: SmtpServer, app: Flask, client: FlaskClient, user: TestUser, clock: FakeClock
) -> None:
    send_with_smtp(app, smtp_server, MAIL_USE_TLS=False)  # a relay on the same machine
    set_email(app, user, ADDRESS)

    connect(client, user.headers, clock)

    received = smtp_server.received
    assert len(received.messages) == 1
    message = received.messages[0]
    assert message["To"] == ADDRESS
    assert message["From"] == "Security <security@example.org>"
    assert message["Subject"] == f"{SITE}: Two-factor authentication is on"
    assert "turned on" in message.get_payload()
    commands = [command.lower() for command in received.commands]  # smtplib's are lower case
    assert "mail from:<security@example.org>" in commands
    assert f"rcpt to:<{ADDRESS}>" in commands
    (auth,) = [command for command in received.commands if command.startswith("AUTH PLAIN")]
    assert base64.b64decode(auth.split()[2]) == b"\0notices\0mail-password"


def test_smtp_sends_nothing_in_clear_to_a_server_without_starttls(
    smtp_server: SmtpServer,
    app: Flask,
    client: FlaskClient,
    user: TestUser,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """With ``MAIL_USE_TLS`` (the default) and a server that offers no STARTTLS, neither the
    password nor the message is sent; the user's request succeeds all the same."""
    send_with_smtp(app, smtp_server)
    assert app.config["MAIL_USE_TLS"] is True
    set_email(app, user, ADDRESS)
    caplog.set_level(logging.ERROR, logger="example_app.notices")

    connect(client, user.headers, clock)  # asserts the 200

    received = smtp_server.received
    assert received.messages == []
    assert [command.split(" ")[0].upper() for command in received.commands] == ["EHLO", "QUIT"]
    assert any(
        "was not sent: SMTPNotSupportedError" in record.getMessage() for record in caplog.records
    )
