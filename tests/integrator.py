"""The smallest integrator of the extension the tests need: an Authlib resource server with a
password login, its own ``db``, users and tokens, and Flask-UCloud-2FA. No OpenID provider.

Every call of :func:`create_app` builds everything anew (``db``, models, resource protector,
extension), so apps never share state. Gunicorn serves it too::

    gunicorn --pythonpath tests 'integrator:create_app_from_env()'
"""

from __future__ import annotations

import os
import secrets
import sqlite3
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from authlib.integrations.flask_oauth2 import ResourceProtector
from authlib.integrations.flask_oauth2 import current_token
from authlib.integrations.sqla_oauth2 import OAuth2TokenMixin
from authlib.integrations.sqla_oauth2 import create_bearer_token_validator
from flask import Config
from flask import Flask
from flask import jsonify
from flask import request
from flask.typing import ResponseReturnValue
from flask_sqlalchemy import SQLAlchemy
from sqlalchemy import ForeignKey
from sqlalchemy import Integer
from sqlalchemy import String
from sqlalchemy import event
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship
from werkzeug.security import check_password_hash

from flask_ucloud_2fa import InvalidRequest
from flask_ucloud_2fa import LoginCompleted
from flask_ucloud_2fa import TwoFactor
from flask_ucloud_2fa import TwoFactorError
from flask_ucloud_2fa import error_response
from flask_ucloud_2fa import second_factor_required

#: Lifetime of the access tokens the login issues, in seconds.
ACCESS_TOKEN_LIFETIME = 3600
EXTENSION_KEY = "integrator"


class InvalidCredentials(TwoFactorError):
    """The integrator's own error, answered in UCloud's shape by the extension's renderer."""

    status_code = 401
    error_code = "INVALID_CREDENTIALS"
    why = "Incorrect username or password."


@dataclass(frozen=True)
class Integrator:
    """What one app was built with; ``integrator_of(app)`` finds it."""

    db: SQLAlchemy
    User: Any
    Token: Any
    two_factor: TwoFactor
    require_oauth: ResourceProtector
    #: The ``login_completed`` hook the app registered, for tests that wrap it.
    finish_login: Callable[[LoginCompleted], ResponseReturnValue]


def integrator_of(app: Flask) -> Integrator:
    parts: Integrator = app.extensions[EXTENSION_KEY]
    return parts


def create_app(
    config: dict[str, Any],
    *,
    instance_path: str,
    clock: Callable[[], float] = time.time,
    user_table: str | None = "user",
    create_tables: bool = True,
) -> Flask:
    """An integrator app on ``config["SQLALCHEMY_DATABASE_URI"]``, tables created.

    :param clock: the extension's clock (a test's fake one).
    :param user_table: passed to :class:`TwoFactor`: the extension's rows then follow the user
        row (a foreign key with ``ON DELETE CASCADE``); ``None`` stores user ids as text.
    :param create_tables: create the tables that do not exist yet (which connects).
    """
    app = Flask(__name__, instance_path=instance_path)
    app.config.update(config)
    db = SQLAlchemy()

    class User(db.Model):  # type: ignore[name-defined,misc]
        __tablename__ = "user"

        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        username: Mapped[str] = mapped_column(String(80), unique=True)
        password_hash: Mapped[str] = mapped_column(String(255))

    class Token(db.Model, OAuth2TokenMixin):  # type: ignore[name-defined,misc]
        __tablename__ = "token"

        id: Mapped[int] = mapped_column(Integer, primary_key=True)
        user_id: Mapped[int] = mapped_column(
            Integer, ForeignKey("user.id", ondelete="CASCADE"), index=True
        )
        user: Mapped[Any] = relationship(User)
        amr: Mapped[str] = mapped_column(String(64), default="pwd")
        auth_time: Mapped[int] = mapped_column(Integer, default=0)

    require_oauth = ResourceProtector()
    two_factor = TwoFactor(
        db=db, resource_protector=require_oauth, clock=clock, user_table=user_table
    )
    two_factor.load_with_token(Token)

    @two_factor.account_name_loader
    def account_name(token: Token) -> str:
        name: str = token.user.username
        return name

    @two_factor.login_completed
    def finish_login(login: LoginCompleted) -> ResponseReturnValue:
        """Issue tokens, on the extension's transaction: added, not committed."""
        token = Token(
            user_id=int(login.user_id),
            client_id="integrator",
            token_type="Bearer",  # nosec B106 - a token type, not a password
            access_token=secrets.token_urlsafe(32),
            refresh_token=secrets.token_urlsafe(48),
            # The app's own (first-party) login: its tokens may manage the second factor.
            scope=app.config.get("UCLOUD_2FA_MANAGEMENT_SCOPE") or "",
            issued_at=int(time.time()),
            expires_in=ACCESS_TOKEN_LIFETIME,
            amr=" ".join(login.methods),
            auth_time=login.auth_time,
        )
        db.session.add(token)
        return jsonify(
            {
                "accessToken": token.access_token,
                "refreshToken": token.refresh_token,
                "expiresAt": (token.issued_at + ACCESS_TOKEN_LIFETIME) * 1000,
            }
        )

    @app.post("/auth/login")
    def password_login() -> ResponseReturnValue:
        body = request.get_json(silent=True)
        if not isinstance(body, dict) or not all(
            isinstance(body.get(key), str) for key in ("username", "password")
        ):
            why = "Send a JSON object with username and password."
            return error_response(InvalidRequest(why))
        # Reserved before the hash is checked; TooManyAttempts answers 429 with Retry-After.
        attempt = two_factor.limit_password_attempt(body["username"], request.remote_addr)
        user = db.session.execute(
            db.select(User).filter_by(username=body["username"])
        ).scalar_one_or_none()
        if user is None or not check_password_hash(user.password_hash, body["password"]):
            return error_response(InvalidCredentials())
        attempt.succeeded()
        return two_factor.login(user.id)

    @app.get("/api/me")
    @require_oauth()
    def me() -> ResponseReturnValue:
        token: Token = current_token
        return jsonify(
            {
                "username": token.user.username,
                "amr": token.amr.split(),
                "authTime": token.auth_time,
            }
        )

    @app.get("/api/me/security")
    @require_oauth()
    @second_factor_required
    def security() -> ResponseReturnValue:
        token: Token = current_token
        return jsonify(
            {"username": token.user.username, "secondFactor": "otp" in token.amr.split()}
        )

    db.init_app(app)
    with app.app_context():
        if db.engine.dialect.name == "sqlite":  # before anything connects
            event.listen(db.engine, "connect", _foreign_keys_on)
    require_oauth.register_token_validator(create_bearer_token_validator(db.session, Token)())
    two_factor.init_app(app)
    app.extensions[EXTENSION_KEY] = Integrator(
        db, User, Token, two_factor, require_oauth, finish_login
    )
    if create_tables:
        with app.app_context():
            db.create_all()
    return app


def _foreign_keys_on(connection: sqlite3.Connection, _record: object) -> None:
    """SQLite enforces foreign keys (and so ``ON DELETE CASCADE``) only when asked, per
    connection."""
    cursor = connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.close()


def create_app_from_env() -> Flask:
    """The app for a server process: ``FLASK_*`` environment variables configure it
    (``FLASK_SQLALCHEMY_DATABASE_URI``, ``FLASK_UCLOUD_2FA_ENCRYPTION_KEYS``, ...);
    ``INTEGRATOR_INSTANCE_PATH`` is its instance folder.

    The test made the tables before starting the server, so a worker does not connect to the
    database as it starts: one that starts while the database is down (a worker replaced during
    an outage) serves 503s until it is back, instead of failing to boot, which stops gunicorn.
    """
    instance_path = os.environ["INTEGRATOR_INSTANCE_PATH"]
    config = Config(instance_path)
    config.from_prefixed_env()
    return create_app(dict(config), instance_path=instance_path, create_tables=False)
