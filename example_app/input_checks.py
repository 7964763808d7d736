"""Hostile input is refused before any view, with a 4xx, never a 500.

No legitimate client sends a NUL character or a lone surrogate (``"\\ud800"``, which JSON can
escape but UTF-8 cannot encode): PostgreSQL refuses NUL in text, and no database driver or
password hash can encode a surrogate, so either would fail deep inside a view. Neither can
arrive percent-encoded in a query or form (Werkzeug does not decode invalid UTF-8), only as
``%00`` or inside JSON. So every request whose query, form or JSON body holds one, or whose
JSON nests deeper than :data:`MAX_JSON_DEPTH` (Python's parser would raise ``RecursionError``
well before the ``MAX_CONTENT_LENGTH`` of 64 KiB), gets a 400 before any view runs.

The answer has the format of the route: an HTML page for the pages and for browsers, UCloud's
JSON error body for the JSON routes; the OAuth routes check the same in OAuth's own format
(:mod:`.oauth`), and the extension's routes (``/auth/2fa...``) check their own input. A body
over ``MAX_CONTENT_LENGTH`` is a 413 in the same formats.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from flask import Flask
from flask import Response
from flask import request
from werkzeug.exceptions import RequestEntityTooLarge

from flask_ucloud_2fa import InvalidRequest
from flask_ucloud_2fa import TwoFactorError
from flask_ucloud_2fa import error_response

from .pages import error_page

#: JSON bodies of this app are flat objects; anything deeper is refused.
MAX_JSON_DEPTH = 32
#: Bodies that are form fields, read through ``request.form``.
FORM_MIMETYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


class RequestTooLarge(TwoFactorError):
    """A body over ``MAX_CONTENT_LENGTH``, answered in UCloud's shape."""

    status_code = 413
    error_code = "REQUEST_ENTITY_TOO_LARGE"
    why = "The request body is too large."


def init_input_checks(app: Flask) -> None:
    """Refuse hostile input to every route of ``app`` but the OAuth ones, which do it in
    their own format."""
    app.before_request(_refuse_hostile_input)
    app.register_error_handler(RequestEntityTooLarge, _too_large)


def hostile_text(value: str) -> bool:
    """Whether ``value`` holds a NUL character or cannot be encoded as UTF-8 (a lone
    surrogate)."""
    if "\x00" in value:
        return True
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return True
    return False


def input_problem() -> str | None:
    """Why the request's query, form or JSON body is refused, or ``None``."""
    for where, fields in (("query", request.args), ("form", request.form)):
        for name, value in fields.items(multi=True):
            if hostile_text(name) or hostile_text(value):
                return f"A {where} parameter holds a NUL character or an invalid character."
    return _json_problem()


def _json_problem() -> str | None:
    if request.mimetype in FORM_MIMETYPES:
        return None
    data = request.get_data(cache=True)  # kept for the view; 413 over MAX_CONTENT_LENGTH
    if not data:
        return None
    try:
        body = json.loads(data)
    except RecursionError:
        return "The JSON body is nested too deeply."
    except ValueError:
        return None  # not JSON: the view decides what that means
    return _walk(body)


def _walk(body: Any) -> str | None:
    """Check every string (keys too) and the depth of a parsed JSON body, without recursion."""
    pending: list[tuple[Any, int]] = [(body, 1)]
    while pending:
        value, depth = pending.pop()
        if isinstance(value, str):
            if hostile_text(value):
                return "The JSON body holds a NUL character or an invalid character."
            continue
        if not isinstance(value, (dict, list)):
            continue
        if depth > MAX_JSON_DEPTH:
            return "The JSON body is nested too deeply."
        items: Iterable[Any] = (
            [item for pair in value.items() for item in pair] if isinstance(value, dict) else value
        )
        pending.extend((item, depth + 1) for item in items)
    return None


#: Blueprints that check their own input: the OAuth routes (in OAuth's format) and the
#: extension's (with a body limit of its own, which reading the body here would bypass).
CHECKED_ELSEWHERE = frozenset({"oauth", "ucloud_2fa"})


def _refuse_hostile_input() -> Response | None:
    if request.blueprint in CHECKED_ELSEWHERE:
        return None
    problem = input_problem()
    return None if problem is None else _refusal(InvalidRequest(problem))


def _too_large(error: RequestEntityTooLarge) -> Response:
    return _refusal(RequestTooLarge())


def _refusal(error: TwoFactorError) -> Response:
    """``error`` as an HTML page for pages and browsers, else in UCloud's JSON shape."""
    if request.blueprint == "pages" or _prefers_html():
        return error_page(error.why, error.status_code)
    return error_response(error)


def _prefers_html() -> bool:
    # The extension's rule for browsers: text/html preferred to application/json.
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"
