"""Users with hashed passwords and the bearer tokens Authlib checks."""

from __future__ import annotations

from authlib.integrations.sqla_oauth2 import OAuth2TokenMixin
from sqlalchemy import ForeignKey
from sqlalchemy import String
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import mapped_column
from sqlalchemy.orm import relationship
from werkzeug.security import check_password_hash
from werkzeug.security import generate_password_hash

from . import db
from . import two_factor


class User(db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))

    def set_password(self, password: str) -> None:
        self.password_hash = generate_password_hash(password)

    def check_password(self, password: str) -> bool:
        return check_password_hash(self.password_hash, password)


class Token(db.Model, OAuth2TokenMixin):  # type: ignore[name-defined,misc]
    """A bearer token; ``amr`` and ``auth_time`` record how its login was made."""

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    user: Mapped[User] = relationship()
    amr: Mapped[str] = mapped_column(String(64), default="pwd")
    auth_time: Mapped[int] = mapped_column(default=0)


# The token's SELECT also loads its user's 2FA state: status and step-up checks need no query.
two_factor.load_with_token(Token)
