"""Checking a password, with the extension's attempt limits in front of it.

Every password check of the app goes through :func:`authenticate`: the extension reserves the
attempt in the database before the password hash is computed (a back-off for the user at this
address, budgets for the address and the user), so parallel guesses are counted like
sequential ones, and a right password refunds it. Behind a reverse proxy, wrap the app in
Werkzeug's ``ProxyFix`` so ``request.remote_addr`` is the client's address, not the proxy's.
"""

from __future__ import annotations

from flask import request

from .models import User
from .ucloud_2fa import two_factor


def authenticate(username: str, password: str) -> int | None:
    """The id of the user with this username and password, or ``None``. The id, read before
    the refund's commit expires the user's row, so that nothing loads it again.

    :raises TooManyAttempts: too many recent failures for this user at this address, for this
        address, or for this user (429 with ``Retry-After``); the password was not checked.
    """
    attempt = two_factor.limit_password_attempt(username, request.remote_addr)
    user = User.authenticate(username, password)
    if user is None:
        return None
    user_id: int = user.id
    attempt.succeeded()
    return user_id
