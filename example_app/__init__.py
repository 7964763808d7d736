"""An Authlib auth server with Flask-UCloud-2FA: the integration to copy from.

Run it with ``flask --app example_app run`` after ``flask --app example_app create-user NAME``.
"""

from __future__ import annotations

import os
import secrets
import sqlite3
from collections.abc import Callable
from typing import Any

from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.integrations.sqla_oauth2 import create_bearer_token_validator
from cryptography.fernet import Fernet
from flask import Flask
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import event

from flask_ucloud_2fa import TwoFactor

db = SQLAlchemy()
require_oauth = ResourceProtector()
two_factor = TwoFactor(db=db, resource_protector=require_oauth)


def create_app(test_config: dict[str, Any] | None = None) -> Flask:
    """The app factory.

    Configuration comes, in order, from the defaults below, ``FLASK_*`` environment variables
    (``FLASK_SQLALCHEMY_DATABASE_URI``, ``FLASK_UCLOUD_2FA_ISSUER``, ...), then ``test_config``.
    """
    app = Flask(__name__, instance_relative_config=True)
    os.makedirs(app.instance_path, exist_ok=True)
    app.config.from_mapping(
        SQLALCHEMY_DATABASE_URI="sqlite:///" + os.path.join(app.instance_path, "example.sqlite"),
        UCLOUD_2FA_ISSUER="Example Auth Server",
        UCLOUD_2FA_LOGIN_URL="/login",
        SESSION_COOKIE_SAMESITE="Lax",
        ACCESS_TOKEN_LIFETIME=3600,
    )
    if not os.environ.get("FLASK_SECRET_KEY"):
        app.config["SECRET_KEY"] = _instance_key(app, "secret_key", secrets.token_urlsafe)
    if not os.environ.get("FLASK_UCLOUD_2FA_ENCRYPTION_KEYS"):
        # In production, set FLASK_UCLOUD_2FA_ENCRYPTION_KEYS='["newest key", "older key"]'.
        app.config["UCLOUD_2FA_ENCRYPTION_KEYS"] = [
            _instance_key(app, "ucloud_2fa_key", lambda: Fernet.generate_key().decode())
        ]
    app.config.from_prefixed_env()
    if test_config is not None:
        app.config.from_mapping(test_config)

    from . import models
    from .auth import auth
    from .cli import create_user
    from .oauth import init_oauth
    from .oauth import oauth
    from .pages import pages

    db.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":  # before anything connects
            event.listen(db.engine, "connect", _tune_sqlite)
    require_oauth.register_token_validator(
        create_bearer_token_validator(db.session, models.Token)()
    )
    two_factor.init_app(app)
    init_oauth(app)
    app.register_blueprint(auth)
    app.register_blueprint(pages)
    app.register_blueprint(oauth)
    app.cli.add_command(create_user)

    with app.app_context():
        db.create_all()
    return app


def _tune_sqlite(connection: sqlite3.Connection, _record: object) -> None:
    """Write-ahead logging with ``synchronous=NORMAL``, the usual setting for SQLite behind a
    web app: readers never wait for a writer (several workers share the file), and a commit
    appends to the log without an ``fsync``. A power cut may lose the last commits but never
    corrupts the database. Production servers use PostgreSQL."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _instance_key(app: Flask, name: str, generate: Callable[[], str]) -> str:
    """A key kept in the instance folder, made on first use, so it survives restarts and is
    shared by every worker of one checkout."""
    path = os.path.join(app.instance_path, name)
    if not os.path.exists(path):
        # Written whole to a file of our own, then linked into place: a worker starting at the
        # same moment sees either no key or the whole key, and the first link wins.
        draft = f"{path}.{os.getpid()}.draft"
        with open(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
            file.write(generate())
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(draft)
    with open(path) as file:
        return file.read().strip()
