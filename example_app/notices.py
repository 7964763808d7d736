"""Security notices: an email to the user when their second factor changes or is attacked.

The extension sends a blinker signal for each decision (:mod:`flask_ucloud_2fa.signals`); this
module listens to some of them and tells the user, who can act if it was not them:

=============================  ========================================================
signal                         notice
=============================  ========================================================
``connected``                  two-factor authentication was turned on
``disabled``                   it was turned off
``reset``                      an administrator removed it
``recovery_codes_generated``   new recovery codes were made; the earlier ones stopped
                               working (not the first ones, made with the setup)
``recovery_code_used``         a recovery code was used to log in
``challenge_failed``           wrong codes in a row: once, when the extension starts to
                               slow the answers down (``UCLOUD_2FA_BACKOFF_AFTER``)
``locked_out``                 so many wrong codes that the account is locked out for a
                               while
=============================  ========================================================

The mail goes to the user's ``email``; a user without one gets no notice (a log line says
so). Where it goes is the ``MAIL_BACKEND`` setting; the settings have the names Flask-Mail and
Flask-Mailman use, so an app that moves to one of them keeps its configuration:

``MAIL_BACKEND``
    ``"console"`` (the default, for development): the message is written to the
    ``example_app.notices`` logger, nothing is sent. ``"smtp"``: sent with :mod:`smtplib`.
    ``"memory"``: kept in :func:`outbox`, for tests.
``MAIL_DEFAULT_SENDER``
    The ``From`` address.
``MAIL_SERVER``, ``MAIL_PORT``, ``MAIL_USE_TLS``, ``MAIL_USERNAME``, ``MAIL_PASSWORD``,
``MAIL_TIMEOUT``
    The SMTP server. ``MAIL_USE_TLS`` (on by default) upgrades the connection with STARTTLS and
    checks the server's certificate before anything, the password included, is sent; a server
    that does not offer STARTTLS gets nothing. Turn it off only for a relay on the same machine.

In production set them in the environment (``FLASK_MAIL_BACKEND=smtp``,
``FLASK_MAIL_SERVER=smtp.example.com``, ``FLASK_MAIL_PASSWORD=...``). A notice is sent while
the request that caused it runs, after the change was committed; a mail server that fails is
logged and never fails the request. A busy site would hand the message to a task queue instead.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from collections.abc import Callable
from collections.abc import Mapping
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timezone
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import formatdate
from email.utils import make_msgid
from typing import Any
from typing import Protocol

from flask import Flask

from flask_ucloud_2fa import signals

from .extensions import db
from .models import User

logger = logging.getLogger(__name__)

#: The example's defaults: in development every notice goes to the log.
DEFAULTS: dict[str, Any] = {
    "MAIL_BACKEND": "console",
    "MAIL_DEFAULT_SENDER": "Example Auth Server <no-reply@localhost>",
    "MAIL_SERVER": "localhost",
    "MAIL_PORT": 587,
    "MAIL_USE_TLS": True,
    "MAIL_USERNAME": None,
    "MAIL_PASSWORD": None,  # nosec B105 - none by default; production sets it
    "MAIL_TIMEOUT": 10,  # seconds
}

_IF_NOT_YOU = (
    "If this was not you, someone may know your password: change it and check your"
    " two-factor authentication settings."
)


@dataclass(frozen=True)
class Notice:
    """What a notice says: its subject, what happened, and what to do about it."""

    subject: str
    what: str
    advice: str = _IF_NOT_YOU


NOTICES = {
    "connected": Notice(
        "Two-factor authentication is on",
        "Two-factor authentication was turned on for your account: your logins now need a code"
        " from your authenticator app.",
    ),
    "disabled": Notice(
        "Two-factor authentication is off",
        "Two-factor authentication was turned off for your account: your logins now need only"
        " your password.",
    ),
    "reset": Notice(
        "Two-factor authentication was removed",
        "An administrator removed two-factor authentication from your account: your logins now"
        " need only your password, and your other logins have ended.",
        "If you did not ask for this, contact your administrator and change your password.",
    ),
    "recovery_codes_generated": Notice(
        "New recovery codes",
        "New recovery codes were made for your account; the earlier ones no longer work.",
    ),
    "recovery_code_used": Notice(
        "A recovery code was used",
        "One of your recovery codes was used to log in, in place of a code from your"
        " authenticator app. It cannot be used again.",
    ),
    "wrong_codes": Notice(
        "Wrong codes for your account",
        "Several wrong codes in a row were entered for your account: logins with a code are"
        " slowed down for a while.",
        "If this was not you, someone knows your password: change it now.",
    ),
    "locked_out": Notice(
        "Your account is locked for a while",
        "So many wrong codes were entered for your account that logins with a code are refused"
        " for a while.",
        "If this was not you, someone knows your password: change it now, and ask your"
        " administrator to unlock your account.",
    ),
}


# -- where the mail goes -----------------------------------------------------------------------


class MailBackend(Protocol):
    """Delivers a message, or raises :exc:`OSError` or :exc:`smtplib.SMTPException`."""

    def send(self, message: EmailMessage) -> None: ...


class ConsoleBackend:
    """Development: the message goes to the log, nowhere else."""

    def send(self, message: EmailMessage) -> None:
        logger.info("Security notice (MAIL_BACKEND=console, not sent):\n%s", message)


class MemoryBackend:
    """Tests: the messages are kept, in the order they were sent."""

    def __init__(self) -> None:
        self.outbox: list[EmailMessage] = []

    def send(self, message: EmailMessage) -> None:
        self.outbox.append(message)


@dataclass(frozen=True)
class SmtpBackend:
    """Production: one SMTP connection per message, with STARTTLS unless ``use_tls`` is off."""

    server: str
    port: int
    use_tls: bool
    username: str | None
    password: str | None = field(default=None, repr=False)  # never in a log line
    timeout: float = 10

    def send(self, message: EmailMessage) -> None:
        with smtplib.SMTP(self.server, self.port, timeout=self.timeout) as smtp:
            if self.use_tls:
                # Raises when the server does not offer it: nothing goes out in clear.
                smtp.starttls(context=ssl.create_default_context())
            if self.username:
                smtp.login(self.username, self.password or "")
            smtp.send_message(message)


def backend_from_config(config: Mapping[str, Any]) -> MailBackend:
    """The backend that ``MAIL_BACKEND`` names, set up from the other ``MAIL_`` settings.

    :raises ValueError: an unknown ``MAIL_BACKEND``.
    """
    name = config["MAIL_BACKEND"]
    if name == "console":
        return ConsoleBackend()
    if name == "memory":
        return MemoryBackend()
    if name == "smtp":
        return SmtpBackend(
            server=config["MAIL_SERVER"],
            port=int(config["MAIL_PORT"]),
            use_tls=bool(config["MAIL_USE_TLS"]),
            username=config["MAIL_USERNAME"],
            password=config["MAIL_PASSWORD"],
            timeout=float(config["MAIL_TIMEOUT"]),
        )
    raise ValueError(f"MAIL_BACKEND must be 'console', 'smtp' or 'memory', not {name!r}.")


def outbox(app: Flask) -> list[EmailMessage]:
    """The messages sent so far by ``app`` with ``MAIL_BACKEND="memory"``.

    :raises RuntimeError: the app has another backend.
    """
    backend = app.extensions["notices"]
    if not isinstance(backend, MemoryBackend):
        raise RuntimeError("Only MAIL_BACKEND='memory' keeps an outbox; set it in the test.")
    return backend.outbox


def email_address(text: str) -> str:
    """``text`` as an email address (``name@example.com``), checked.

    :raises ValueError: it is not one address.
    """
    try:
        address = Address(addr_spec=text.strip())
    except (ValueError, IndexError, TypeError) as error:  # the parser's errors for bad input
        raise ValueError(f"{text!r} is not an email address.") from error
    if not address.domain:
        raise ValueError(f"{text!r} is not an email address.")
    return address.addr_spec


# -- the signals -------------------------------------------------------------------------------


def init_notices(app: Flask) -> None:
    """Choose ``app``'s mail backend from its config and send notices on its extension's
    signals. The ``MAIL_`` settings are read here; calling it again applies changed ones."""
    for key, value in DEFAULTS.items():
        app.config.setdefault(key, value)
    app.extensions["notices"] = backend_from_config(app.config)
    for event, receiver in _RECEIVERS.items():
        signals.EVENTS[event].connect(receiver, sender=app)


def _receiver(notice: str) -> Callable[..., None]:
    def receive(
        sender: Flask, *, user_id: str, client_address: str | None = None, **_: Any
    ) -> None:
        send_notice(sender, notice, user_id, client_address)

    return receive


def _on_challenge_failed(
    sender: Flask,
    *,
    user_id: str,
    outcome: str,
    client_address: str | None = None,
    failures: int | None = None,
    **_: Any,
) -> None:
    # Once per run of wrong codes: the failure that starts the back-off. A right code starts
    # the count again; answers refused while backing off have the outcome "blocked".
    if outcome == "failure" and failures == sender.config["UCLOUD_2FA_BACKOFF_AFTER"]:
        send_notice(sender, "wrong_codes", user_id, client_address)


def _on_recovery_codes_generated(
    sender: Flask,
    *,
    user_id: str,
    client_address: str | None = None,
    kind: str | None = None,
    **_: Any,
) -> None:
    # The first codes, made as the setup is confirmed, are part of turning 2FA on: the
    # "connected" notice says it, one message for one thing the user did.
    if kind != "setup":
        send_notice(sender, "recovery_codes_generated", user_id, client_address)


# Module-level, so that the signals' weak references to them last.
_RECEIVERS: dict[str, Callable[..., None]] = {
    "connected": _receiver("connected"),
    "disabled": _receiver("disabled"),
    "reset": _receiver("reset"),
    "recovery_codes_generated": _on_recovery_codes_generated,
    "recovery_code_used": _receiver("recovery_code_used"),
    "challenge_failed": _on_challenge_failed,
    "locked_out": _receiver("locked_out"),
}


def send_notice(app: Flask, notice: str, user_id: str, client_address: str | None) -> None:
    """Mail the notice to the user, if they have an address; a failure is logged, not raised."""
    user = db.session.get(User, int(user_id)) if user_id.isascii() and user_id.isdigit() else None
    if user is None or not user.email:
        logger.info("No security notice %r for user %s: no email address.", notice, user_id)
        return
    message = compose(app, NOTICES[notice], user, client_address)
    try:
        app.extensions["notices"].send(message)
    except (OSError, smtplib.SMTPException) as error:
        logger.error(
            "The security notice %r to user %s was not sent: %s: %s",
            notice,
            user.id,
            type(error).__name__,
            error,
        )


def compose(app: Flask, notice: Notice, user: User, client_address: str | None) -> EmailMessage:
    """The message of ``notice`` to ``user``."""
    sender = app.config["MAIL_DEFAULT_SENDER"]
    site = app.config.get("UCLOUD_2FA_ISSUER") or app.name
    when = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    where = f" from the address {client_address}" if client_address else ""
    message = EmailMessage()
    message["Subject"] = f"{site}: {notice.subject}"
    message["From"] = sender
    message["To"] = user.email
    message["Date"] = formatdate(usegmt=True)
    message["Message-ID"] = make_msgid(domain=_domain(sender))
    message.set_content(
        f"Hello {user.username},\n\n{notice.what}\n\nThis happened on {when}{where}.\n\n"
        f"{notice.advice}\n\n-- \n{site}\n"
    )
    return message


def _domain(sender: str) -> str:
    """The domain of the sender's address, for the Message-ID (no DNS lookup)."""
    address = sender.rsplit("<", 1)[-1].rstrip(">").strip()
    return address.rpartition("@")[2] or "localhost"
