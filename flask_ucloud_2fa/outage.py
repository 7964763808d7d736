"""An unavailable database answers 503 ``SERVICE_UNAVAILABLE`` with ``Retry-After``, in every
view of the app, never a 500 with a traceback.

A database that is down, restarting or unreachable, a pool without a free connection, or a
statement or lock wait over ``UCLOUD_2FA_STATEMENT_TIMEOUT`` raises one of SQLAlchemy's errors
wherever the request meets the database: in the extension's routes, in the login step, in the
app's own views (the resource protector's token lookup, the password check).
:func:`register_error_handlers` answers them as :class:`~.errors.DatabaseUnavailable`, through
the app's (or the request's blueprint's) handler for that, and logs one line per failure
instead of a traceback. SQLAlchemy's pool discards the connections of a database that went
away, so once it is back the next requests succeed, in every worker, without a restart.
"""

from __future__ import annotations

import logging
import sqlite3

from flask import Flask
from flask import current_app
from flask import request
from flask.typing import ResponseReturnValue
from sqlalchemy.exc import DBAPIError
from sqlalchemy.exc import InterfaceError
from sqlalchemy.exc import OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout

from .browser import unavailable_page
from .browser import wants_html
from .errors import DatabaseUnavailable
from .errors import TwoFactorError
from .http import error_response

logger = logging.getLogger("flask_ucloud_2fa")

#: SQLAlchemy's errors that may mean the database is unavailable (see :func:`is_outage`).
DATABASE_ERRORS = (OperationalError, InterfaceError, PoolTimeout)


def register_error_handlers(app: Flask) -> None:
    """Answer the extension's errors in UCloud's shape in every view of ``app`` (the login
    step and step-up checks run in the app's own views), and an unavailable database with
    :class:`~.errors.DatabaseUnavailable`."""
    app.register_error_handler(TwoFactorError, error_response)
    app.register_error_handler(DatabaseUnavailable, unavailable_response)
    for error in DATABASE_ERRORS:
        app.register_error_handler(error, database_error)


def is_outage(error: BaseException) -> bool:
    """Whether ``error`` means the database is unavailable rather than a bug: the DB-API's
    ``OperationalError`` ("errors related to the database's operation and not necessarily under
    the control of the programmer": a refused or lost connection, a cancelled statement, a lock
    not available), a connection SQLAlchemy found dead, or no free connection in the pool."""
    if isinstance(error, OperationalError):
        return not _schema_mistake(error)
    if isinstance(error, PoolTimeout):
        return True
    return isinstance(error, DBAPIError) and error.connection_invalidated


#: How SQLite words a mistake in the schema or the SQL, which it reports as an
#: ``OperationalError`` too (PostgreSQL raises ``ProgrammingError``): a missing table is a
#: forgotten migration, a bug to see with its traceback, not an outage to wait out.
_SQLITE_MISTAKES = ("no such table", "no such column", "table ", "syntax error", "near ")


def _schema_mistake(error: OperationalError) -> bool:
    cause = error.orig
    return isinstance(cause, sqlite3.OperationalError) and str(cause).startswith(_SQLITE_MISTAKES)


def database_error(error: Exception) -> ResponseReturnValue:
    """An unavailable database, answered by the handler for
    :class:`~.errors.DatabaseUnavailable` and logged in one line, without a traceback (it is
    not a bug, and an outage fails every request). Anything else is raised again: a 500."""
    if not is_outage(error):
        raise error
    logger.error(
        "The database is unavailable; %s %s answered 503: %s",
        request.method,
        request.path,
        describe(error),
    )
    return current_app.handle_user_exception(DatabaseUnavailable())


def unavailable_response(error: DatabaseUnavailable) -> ResponseReturnValue:
    """An HTML page for browsers and the challenge page's form, UCloud's JSON error for any
    other client; both with ``Retry-After``."""
    if wants_html() or request.endpoint == "ucloud_2fa.answer_challenge_form":
        return unavailable_page(error)
    return error_response(error)


def describe(error: BaseException) -> str:
    """The driver's error class and the first line of its message: no SQL, no parameters."""
    cause = getattr(error, "orig", None) or error
    lines = str(cause).strip().splitlines()
    return f"{type(cause).__name__}: {lines[0] if lines else 'no message'}"
