"""The browser session, through Flask-Login: the one place that logs a browser in, reads who is
logged in and how, and logs out.

Only :func:`log_in` makes a login, and only the 2FA wiring (:mod:`.ucloud_2fa`) calls it, once
every factor succeeded. Beside Flask-Login's user id the session keeps how that login was made,
its ``amr`` methods and ``auth_time``: the authorization server copies them into the ID tokens
and access tokens it issues for the browser.

Sessions live in signed cookies, so the server cannot delete one. Instead each user has a
session generation (``User.session_generation``): a login records the generation it was made
in, and the user loader refuses a session of an earlier one, on every request. Bumping it
(:func:`end_sessions`) ends every session of the user, in every browser and every copy of
the cookie: on logging out, on a password change, on disabling 2FA and on an administrator's
reset (:mod:`.revocation`). Logging out therefore ends the user's sessions in every browser.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit
from urllib.parse import urlunsplit

from flask import redirect
from flask import request
from flask import session
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_login import LoginManager
from flask_login import current_user
from flask_login import login_user
from flask_login import logout_user
from sqlalchemy import select
from sqlalchemy import update

from .extensions import db
from .models import User

login_manager = LoginManager()

#: The session key of how the browser logged in:
#: ``{"amr": [...], "auth_time": ..., "generation": ...}``.
LOGIN_KEY = "login"
#: Longer ``next`` values are not kept: a login URL has no need for them.
MAX_NEXT_LENGTH = 2048


@dataclass(frozen=True)
class BrowserLogin:
    """Who is logged in to this browser, and how."""

    user: User
    methods: list[str]
    auth_time: int


def log_in(user: User, methods: list[str], auth_time: int) -> None:
    """Log the browser in as ``user``, in a new session: nothing of the session before the
    login (its CSRF token included) carries over."""
    session.clear()
    login_user(user)
    session[LOGIN_KEY] = {
        "amr": list(methods),
        "auth_time": auth_time,
        "generation": user.session_generation,
    }


def current_login() -> BrowserLogin | None:
    """The login of this browser, or ``None`` without a complete one."""
    if not current_user.is_authenticated:
        return None
    how: Any = session.get(LOGIN_KEY)
    if not isinstance(how, dict):
        return None
    methods, auth_time = how.get("amr"), how.get("auth_time")
    if not isinstance(methods, list) or not methods or not isinstance(auth_time, int):
        return None
    # The user Flask-Login loaded: from the session's identity map, without a query.
    user = db.session.get(User, int(current_user.get_id()))
    return None if user is None else BrowserLogin(user, methods, auth_time)


def log_out() -> None:
    """End the browser's login, and every other session of its user (see above); the rest of
    the session (its CSRF token) stays."""
    if current_user.is_authenticated:
        end_sessions(int(current_user.get_id()))
        db.session.commit()
    logout_user()
    session.pop(LOGIN_KEY, None)


def end_sessions(user_id: int) -> int:
    """End every browser session of the user: bump their session generation; the new one.
    Not committed."""
    db.session.execute(
        update(User)
        .where(User.id == user_id)
        .values(session_generation=User.session_generation + 1)
        .execution_options(synchronize_session=False)
    )
    generation: int | None = db.session.execute(
        select(User.session_generation).where(User.id == user_id)
    ).scalar_one_or_none()
    return generation or 0


def keep_session(generation: int) -> None:
    """Keep this browser's login after :func:`end_sessions` ended its user's sessions: it
    moves to the new ``generation``."""
    session[LOGIN_KEY] = {**session[LOGIN_KEY], "generation": generation}


@login_manager.user_loader
def load_user(user_id: str) -> User | None:
    """The session's user, unless the session was ended since (an earlier generation)."""
    user = db.session.get(User, int(user_id))
    how: Any = session.get(LOGIN_KEY)
    if user is None or not isinstance(how, dict):
        return None
    generation = how.get("generation")
    if type(generation) is not int or generation != user.session_generation:
        return None
    return user


@login_manager.unauthorized_handler
def send_to_login_page() -> ResponseReturnValue:
    """What ``@login_required`` answers a browser without a login: the login page, and back
    here afterwards."""
    log_out()  # a deleted user's session ends here
    back = request.full_path.rstrip("?") if request.method == "GET" else None
    return redirect(url_for("pages.login", next=local_path(back)))


# -- where to go after logging in --------------------------------------------------------------


def safe_next(target: object) -> str:
    """``target`` if it is a path on this site, else the settings page: no open redirects."""
    return local_path(target) or url_for("pages.settings")


def local_path(target: object) -> str | None:
    """``target`` if it is a path on this site that every browser reads the same way, else
    ``None``.

    Browsers drop tabs and newlines from URLs, so ``"/\\t/evil.example"`` is
    ``"//evil.example"`` to them: control characters and backslashes are refused. This site's
    own absolute URL (a view passed ``request.url``) is cut down to its path.
    """
    if not isinstance(target, str) or not 0 < len(target) <= MAX_NEXT_LENGTH:
        return None
    if any(char < " " or char in "\x7f\\" for char in target):
        return None
    parts = urlsplit(target)
    if parts.scheme in ("http", "https") and parts.netloc == request.host:
        target = urlunsplit(("", "", parts.path, parts.query, parts.fragment))
    elif parts.scheme or parts.netloc:
        return None
    if not target.startswith("/") or target.startswith("//"):
        return None
    return target
