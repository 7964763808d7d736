"""Blinker signals, one per decision the extension makes.

Each is sent with the app as sender and these keyword arguments: ``user_id`` (text),
``outcome`` (``"success"`` or ``"failure"``), ``client_address`` (or ``None`` outside a request)
and, where it applies, ``kind`` (``"setup"`` or ``"login"``). No signal carries a secret, a code
or a recovery code. :data:`EVENTS` maps each event name to its signal; every signal is also
written as an audit record to the ``flask_ucloud_2fa.audit`` logger.
"""

from __future__ import annotations

import logging
from typing import Any

from blinker import Namespace
from flask import Flask
from flask import has_request_context
from flask import request

_signals = Namespace()

#: A user started a setup: a new pending secret and setup challenge exist.
setup_started = _signals.signal("ucloud-2fa-setup-started")
#: A setup challenge was answered: the user's credential is connected.
connected = _signals.signal("ucloud-2fa-connected")
#: A challenge (setup or login) was answered correctly.
challenge_passed = _signals.signal("ucloud-2fa-challenge-passed")
#: A challenge was answered wrongly, with a used code, or while backing off.
challenge_failed = _signals.signal("ucloud-2fa-challenge-failed")
#: A user reached the consecutive-failure limit and is locked out for a while.
locked_out = _signals.signal("ucloud-2fa-locked-out")
#: A recovery code was used in place of a TOTP code.
recovery_code_used = _signals.signal("ucloud-2fa-recovery-code-used")
#: New recovery codes were generated (``count`` of them); the earlier ones no longer work.
#: With ``kind="setup"``: the first codes, made as a setup was confirmed.
recovery_codes_generated = _signals.signal("ucloud-2fa-recovery-codes-generated")
#: A user disabled 2FA with a second-factor proof.
disabled = _signals.signal("ucloud-2fa-disabled")
#: A user's 2FA was removed without a proof: an administrator's reset, or the integrator's
#: call for a deleted user (``TwoFactor.reset``).
reset = _signals.signal("ucloud-2fa-reset")
#: A browser was remembered after a right code (``UCLOUD_2FA_REMEMBER_DAYS``): its logins skip
#: the second factor for that many days.
browser_remembered = _signals.signal("ucloud-2fa-browser-remembered")
#: A login from a remembered browser skipped the challenge (``kind="login"``); its ``amr`` has
#: no ``otp``.
remembered_login = _signals.signal("ucloud-2fa-remembered-login")
#: Remembered browsers of a user were forgotten (``count`` of them) by the user or by the
#: integrator's call on a password change (disabling and resets forget them too, under their
#: own signals).
browsers_forgotten = _signals.signal("ucloud-2fa-browsers-forgotten")

EVENTS = {
    "setup_started": setup_started,
    "connected": connected,
    "challenge_passed": challenge_passed,
    "challenge_failed": challenge_failed,
    "locked_out": locked_out,
    "recovery_code_used": recovery_code_used,
    "recovery_codes_generated": recovery_codes_generated,
    "disabled": disabled,
    "reset": reset,
    "browser_remembered": browser_remembered,
    "remembered_login": remembered_login,
    "browsers_forgotten": browsers_forgotten,
}

#: One record per decision: ``event``, ``user_id``, ``outcome``, ``client_address``, never a
#: secret or a code.
audit_logger = logging.getLogger("flask_ucloud_2fa.audit")


def send(app: Flask, event: str, user_id: Any, outcome: str, **data: Any) -> None:
    """Send the signal of ``event`` from ``app`` and write its audit record."""
    user_id = str(user_id)
    address = request.remote_addr if has_request_context() else None
    EVENTS[event].send(app, user_id=user_id, outcome=outcome, client_address=address, **data)
    audit_logger.info(
        "%s user_id=%s outcome=%s client_address=%s",
        event,
        user_id,
        outcome,
        address,
        extra={
            "event": event,
            "user_id": user_id,
            "outcome": outcome,
            "client_address": address,
            "details": data,
        },
    )
