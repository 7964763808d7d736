"""Ending a user's logins: every bearer token and browser session of theirs.

The app ends them when what they were made with changes or is lost:

- an administrator's ``flask ucloud-2fa reset`` (the extension's ``reset`` signal): all;
- ``flask --app example_app set-password NAME``: all;
- disabling 2FA (the ``disabled`` signal): all but the one session or token that disabled it
  with a second-factor proof, so the person who did it stays logged in.

Turning 2FA on ends nothing: UCloud's client asks ``GET /auth/2fa/status`` with the token that
enrolled right after. Password-only tokens and sessions from before are refused only where the
second factor is managed (``UCLOUD_2FA_MANAGEMENT_SCOPE`` and the settings pages).
"""

from __future__ import annotations

from typing import Any

from authlib.integrations.flask_oauth2 import current_token
from flask import Flask
from flask import has_request_context

from flask_ucloud_2fa import signals

from .extensions import db
from .session import current_login
from .session import end_sessions
from .session import keep_session
from .tokens import revoke_tokens


def end_logins(user_id: int, *, keep_current: bool = False) -> None:
    """Revoke every token and end every browser session of the user, and commit.

    :param keep_current: keep the current request's session and bearer token where they are
        the user's.
    """
    token, session = _current_credentials(user_id) if keep_current else (None, False)
    revoke_tokens(user_id, keep=token)
    generation = end_sessions(user_id)
    db.session.commit()
    if session:
        keep_session(generation)


def _current_credentials(user_id: int) -> tuple[int | None, bool]:
    """The id of the request's validated bearer token if it is the user's, and whether the
    request's browser session is the user's."""
    if not has_request_context():
        return None, False
    token_id = current_token.id if current_token and current_token.user_id == user_id else None
    login = current_login()
    return token_id, login is not None and login.user.id == user_id


def connect_signals(app: Flask) -> None:
    """End the logins of a user whose 2FA ``app``'s extension resets or disables."""
    signals.reset.connect(_on_reset, sender=app)
    signals.disabled.connect(_on_disabled, sender=app)


def _user_id(value: str) -> int | None:
    # The signals carry the id as text.
    return int(value) if value.isascii() and value.isdigit() else None


def _on_reset(sender: Flask, *, user_id: str, **_: Any) -> None:
    uid = _user_id(user_id)
    if uid is not None:
        end_logins(uid)


def _on_disabled(sender: Flask, *, user_id: str, **_: Any) -> None:
    uid = _user_id(user_id)
    if uid is not None:
        end_logins(uid, keep_current=True)
