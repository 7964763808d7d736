"""What ``/oauth/authorize`` decides beside Authlib: when a login is fresh enough, where to
come back after a new one, and where to answer hostile input.

Asking for a new login never ends the session
    ``/oauth/authorize`` is a GET any site can send a browser to, so it never logs anyone out.
    When the request asks for a fresh login (``prompt=login``, or a ``max_age`` the session's
    login is older than), the browser goes to ``/login?prompt=login&next=...``, which asks for
    the password while the session stays; the new login, through the 2FA login step, replaces
    the session when it completes. ``next`` is the authorization request without ``prompt``
    and ``max_age`` but with ``auth_after=T``, the time the new login was asked for. Back
    there, a code is issued only for a login whose ``auth_time`` is ``T`` or later: the old
    session does not satisfy it (unless it was made in that very second, as ``auth_time``
    counts whole seconds), and the new login does not ask again. The parameter only ever
    demands a newer login, so a client that sends its own gains nothing. ``auth_time`` and
    ``T`` are read from the extension's clock (``two_factor.clock``), which made the login's
    ``auth_time``.

Hostile input
    A NUL character or lone surrogate in a parameter is answered as RFC 6749 (section 4.1.2.1)
    has it: ``error=invalid_request`` at the client's redirect URI when its ``client_id`` and
    ``redirect_uri`` are valid, else a 400 here, never a redirect. So is a ``response_type`` or
    ``redirect_uri`` with a character an OAuth error description may not hold (outside
    printable ASCII, or ``"`` or a backslash): Authlib copies those two into its error
    descriptions and raises ``ValueError`` (a 500) for such a character. ``max_age`` and
    ``auth_after`` must be ASCII digits (``"²".isdigit()`` is true, ``int("²")`` fails), else
    ``invalid_request`` at the redirect URI.
"""

from __future__ import annotations

import re
from urllib.parse import urlencode

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2.rfc6749 import InvalidRequestError
from flask import request
from flask import url_for

from .input_checks import hostile_text

#: The authorization request's parameter of the time a fresh login was asked for.
AUTH_AFTER = "auth_after"
SECONDS = re.compile(r"[0-9]{1,10}")
#: What an OAuth error description may hold (RFC 6749, section 4.1.2.1).
DESCRIPTION_TEXT = re.compile(r"[\x20\x21\x23-\x5b\x5d-\x7e]*")
#: The parameters Authlib copies into error descriptions.
QUOTED_PARAMETERS = ("response_type", "redirect_uri")


def unquotable_parameter() -> str | None:
    """Why a parameter Authlib would quote in an error description is refused, or ``None``."""
    for name in QUOTED_PARAMETERS:
        if any(not DESCRIPTION_TEXT.fullmatch(value) for value in request.values.getlist(name)):
            return f"Invalid '{name}' parameter."
    return None


def openid_without_redirect_uri() -> InvalidRequestError | None:
    """The error of an OpenID request (``scope`` has ``openid``) without ``redirect_uri``,
    which OpenID Connect Core (3.1.2.1) requires: answered here, never redirected."""
    if "openid" not in request.values.get("scope", "").split() or request.values.get(
        "redirect_uri"
    ):
        return None
    return InvalidRequestError("Missing 'redirect_uri': OpenID requests must send it.")


def prompts() -> list[str]:
    """The request's OpenID Connect ``prompt`` values."""
    return request.values.get("prompt", "").split()


def fresh_login_after(now: int, redirect_uri: str | None) -> int | None:
    """The time the browser's login must have been made at or after, for ``max_age`` and
    ``auth_after``; ``None`` when the request does not care. (``prompt=login`` wants a login
    made after the request, which no session has yet.)

    :raises InvalidRequestError: ``max_age`` or ``auth_after`` is not a number of seconds.
    """
    values = request.values
    times = []
    for name in ("max_age", AUTH_AFTER):
        value = values.get(name, "")
        if not value:
            continue
        if not SECONDS.fullmatch(value):
            raise InvalidRequestError(f"Invalid '{name}' parameter.", redirect_uri=redirect_uri)
        times.append(now - int(value) if name == "max_age" else int(value))
    return max(times, default=None)


def request_again(*, asked_at: int | None = None) -> str:
    """This authorization request, as a GET.

    :param asked_at: when a new login was asked for: ``prompt`` and ``max_age`` are left out
        and ``auth_after`` carries it, so the request does not ask again after that login.
    """
    params: list[tuple[str, str]] = list(request.values.items(multi=True))
    if asked_at is not None:
        params = [(key, value) for key, value in params if key not in _ASKS_FOR_A_LOGIN]
        params.append((AUTH_AFTER, str(asked_at)))
    return f"{url_for('oauth.authorize')}?{urlencode(params)}"


_ASKS_FOR_A_LOGIN = frozenset({"prompt", "max_age", AUTH_AFTER})


def refusal_for_the_client(server: AuthorizationServer, problem: str) -> InvalidRequestError:
    """The ``invalid_request`` error of an authorization request with hostile input, to be
    redirected to the client if its ``client_id`` and ``redirect_uri`` are valid."""
    values = request.values
    client_id, redirect_uri = values.get("client_id", ""), values.get("redirect_uri")
    target = None
    client = server.query_client(client_id) if client_id and not hostile_text(client_id) else None
    if client is None:
        pass  # an unknown client: never redirect
    elif redirect_uri is None:
        target = client.get_default_redirect_uri()
    elif not hostile_text(redirect_uri) and client.check_redirect_uri(redirect_uri):
        target = redirect_uri
    state = values.get("state")
    return InvalidRequestError(
        problem, redirect_uri=target, state=state if state and not hostile_text(state) else None
    )
