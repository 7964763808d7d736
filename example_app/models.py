"""Users with hashed passwords and the bearer tokens Authlib checks."""

from __future__ import annotations

import secrets
import time

from authlib.integrations.sqla_oauth2 import OAuth2TokenMixin
from flask_login import UserMixin
from sqlalchemy import ForeignKey
from sqlalchemy import String
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship
from werkzeug.security import check_password_hash
from werkzeug.security import generate_password_hash

from .extensions import db

# Checked against when the user does not exist, so both failures take the same time.
_UNKNOWN_USER_HASH = generate_password_hash(secrets.token_urlsafe())


class User(UserMixin, db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)

    @classmethod
    def by_username(cls, username: str) -> User | None:
        user: User | None = db.session.execute(
            db.select(cls).filter_by(username=username)
        ).scalar_one_or_none()
        return user

    @classmethod
    def authenticate(cls, username: str, password: str) -> User | None:
        """The user with this username and password, or ``None``; an unknown user takes as
        long as a wrong password."""
        user = cls.by_username(username)
        if user is None:
            check_password_hash(_UNKNOWN_USER_HASH, password)
            return None
        return user if user.check_password(password) else None


class Token(db.Model, OAuth2TokenMixin):  # type: ignore[name-defined,misc]
    """A bearer token; ``amr`` and ``auth_time`` record how its login was made."""

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    user: Mapped[User] = relationship()
    amr: Mapped[str] = mapped_column(String(64), default="pwd")
    auth_time: Mapped[int] = mapped_column(default=0)

    @classmethod
    def for_login(cls, user_id: int, methods: list[str], auth_time: int, lifetime: int) -> Token:
        """A new access and refresh token of the app itself for a login made with
        ``methods`` at ``auth_time``."""
        return cls(
            user_id=user_id,
            client_id="example-app",
            token_type="Bearer",  # nosec B106 - a token type, not a password
            access_token=secrets.token_urlsafe(32),
            refresh_token=secrets.token_urlsafe(48),
            scope="",
            issued_at=int(time.time()),
            expires_in=lifetime,
            amr=" ".join(methods),
            auth_time=auth_time,
        )
