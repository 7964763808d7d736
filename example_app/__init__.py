"""An Authlib auth server with Flask-UCloud-2FA: the integration to copy from.

Run it with ``flask --app example_app run`` after ``flask --app example_app create-user NAME``;
``... set-password NAME`` changes a password and ends that user's logins.
The 2FA wiring is :mod:`example_app.ucloud_2fa`; the browser session, :mod:`example_app.session`;
the tokens, :mod:`example_app.tokens`; ending logins, :mod:`example_app.revocation`; hostile
input, :mod:`example_app.input_checks`; mailing users about their 2FA, :mod:`example_app.notices`.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from typing import Any

from cryptography.fernet import Fernet
from flask import Flask
from flask import current_app
from sqlalchemy import event
from sqlalchemy import make_url
from sqlalchemy.engine import URL
from sqlalchemy.exc import OperationalError

from .auth import auth
from .cli import create_user
from .cli import delete_user
from .cli import set_password
from .extensions import db
from .extensions import require_oauth
from .i18n import init_i18n
from .input_checks import init_input_checks
from .instance import instance_key
from .models import FIRST_PARTY_SCOPE
from .notices import init_notices
from .oauth import init_oauth
from .oauth import oauth
from .oauth import register_demo_client
from .pages import pages
from .remembered import remembered
from .revocation import connect_signals
from .session import login_manager
from .tokens import HashedBearerTokenValidator
from .ucloud_2fa import two_factor

__all__ = ["create_app", "db", "init_database", "require_oauth", "two_factor"]


def create_app(
    test_config: dict[str, Any] | None = None, instance_path: str | None = None
) -> Flask:
    """The app factory.

    Configuration comes, in order, from the defaults below, ``FLASK_*`` environment variables
    (``FLASK_SQLALCHEMY_DATABASE_URI``, ``FLASK_UCLOUD_2FA_ISSUER``, ...), then ``test_config``.

    :param instance_path: the folder of the SQLite database and the keys made on first use;
        by default ``instance/`` beside the package.
    """
    app = Flask(__name__, instance_path=instance_path, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(
        SQLALCHEMY_DATABASE_URI="sqlite:///" + os.path.join(app.instance_path, "example.sqlite"),
        UCLOUD_2FA_ISSUER="Example Auth Server",
        UCLOUD_2FA_LOGIN_URL="/login",
        SESSION_COOKIE_SAMESITE="Lax",
        ACCESS_TOKEN_LIFETIME=3600,  # seconds
        REFRESH_TOKEN_LIFETIME=30 * 24 * 3600,  # seconds from each refresh token's issue
        # Only the app's own login tokens manage the second factor (see .ucloud_2fa).
        UCLOUD_2FA_MANAGEMENT_SCOPE=FIRST_PARTY_SCOPE,
        # "Remember this browser" on the challenge page: its logins skip the code for 30 days
        # (the settings page lists and forgets them; see docs/security.rst for the trade-off).
        UCLOUD_2FA_REMEMBER_DAYS=30,
        # No body of this app comes near it; bigger ones are a 413, not read.
        MAX_CONTENT_LENGTH=64 * 1024,
        # The database URL is a pooler in transaction mode (pgbouncer's pool_mode=transaction):
        # FLASK_DATABASE_TRANSACTION_POOLING=true. See _engine_options.
        DATABASE_TRANSACTION_POOLING=False,
    )
    if not os.environ.get("FLASK_SECRET_KEY"):
        app.config["SECRET_KEY"] = instance_key(app, "secret_key", secrets.token_urlsafe)
    if not os.environ.get("FLASK_UCLOUD_2FA_ENCRYPTION_KEYS"):
        # In production, set FLASK_UCLOUD_2FA_ENCRYPTION_KEYS='["newest key", "older key"]'.
        app.config["UCLOUD_2FA_ENCRYPTION_KEYS"] = [
            instance_key(app, "ucloud_2fa_key", lambda: Fernet.generate_key().decode())
        ]
    app.config.from_prefixed_env()
    if test_config is not None:
        app.config.from_mapping(test_config)
    _engine_options(app)

    db.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":  # before anything connects
            _create_private_file(db.engine.url)
            event.listen(db.engine, "connect", _tune_sqlite)
    require_oauth.register_token_validator(HashedBearerTokenValidator())
    login_manager.init_app(app)
    init_i18n(app)
    two_factor.init_app(app)
    connect_signals(app)
    init_notices(app)  # mails users on their 2FA's events (MAIL_* settings)
    init_oauth(app)
    init_input_checks(app)
    app.register_blueprint(auth)
    app.register_blueprint(pages)
    app.register_blueprint(remembered)
    app.register_blueprint(oauth)
    app.cli.add_command(create_user)
    app.cli.add_command(delete_user)
    app.cli.add_command(set_password)

    with app.app_context():
        try:
            init_database()
        except OperationalError as error:
            # A worker that starts while the database is down (one replaced during an outage)
            # must start all the same: gunicorn stops altogether when a worker fails to boot.
            # It answers 503 until the database is back; the next start creates what is missing.
            app.logger.warning(
                "The database is unavailable, so its tables were not checked: %s",
                type(error.orig).__name__,
            )
    return app


def init_database() -> None:
    """Create the tables that do not exist yet (the 2FA tables among them) and the demo
    client; in an app context."""
    db.create_all()
    register_demo_client(current_app.config["OAUTH_DEMO_REDIRECT_URIS"])


def _engine_options(app: Flask) -> None:
    """The engine options of a production PostgreSQL, added to ``SQLALCHEMY_ENGINE_OPTIONS``
    (which wins where it sets the same).

    ``pool_pre_ping``: a connection is checked (``SELECT 1``) as it leaves the pool, so the
    connections of a database that restarted are replaced there, by every worker, instead of
    failing a request each (a 503, as any request during the outage).

    ``DATABASE_TRANSACTION_POOLING``: behind pgbouncer in transaction mode, each transaction
    may run on another server connection, but psycopg prepares a statement on the server
    connection it ran on, from its fifth run: the next transaction then finds it missing, or
    another client's of the same name (``prepared statement "_pg3_0" does not exist``). With
    ``prepare_threshold=None`` psycopg prepares nothing.
    """
    if make_url(app.config["SQLALCHEMY_DATABASE_URI"]).get_backend_name() != "postgresql":
        return
    options = {"pool_pre_ping": True, **app.config.get("SQLALCHEMY_ENGINE_OPTIONS", {})}
    if app.config["DATABASE_TRANSACTION_POOLING"]:
        options["connect_args"] = {"prepare_threshold": None, **options.get("connect_args", {})}
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = options


def _create_private_file(url: URL) -> None:
    """Create the SQLite file readable by its owner only (0600), like the keys beside it: it
    holds password hashes and 2FA secrets. SQLite gives its ``-wal`` and ``-shm`` files the
    same mode. A file from before is made private too."""
    path = url.database
    if not path or path == ":memory:" or url.query.get("uri"):
        return
    os.close(os.open(path, os.O_RDWR | os.O_CREAT, 0o600))
    if os.stat(path).st_mode & 0o077:
        os.chmod(path, 0o600)


def _tune_sqlite(connection: sqlite3.Connection, _record: object) -> None:
    """SQLite's settings for this app, on each new connection.

    ``foreign_keys=ON``: SQLite enforces foreign keys only when asked, so without it deleting a
    user would leave their tokens and 2FA rows behind instead of cascading.

    Write-ahead logging with ``synchronous=NORMAL``, the usual setting for SQLite behind a web
    app: readers never wait for a writer (several workers share the file), and a commit appends
    to the log without an ``fsync``. A power cut may lose the last commits but never corrupts
    the database. Production servers use PostgreSQL.
    """
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()
