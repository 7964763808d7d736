"""The app's rows: users with hashed passwords, the bearer tokens Authlib checks (stored only
as hashes, see :mod:`.tokens`), and the OAuth clients and authorization codes."""

from __future__ import annotations

import hashlib
import secrets
import time
from typing import NamedTuple

from authlib.integrations.sqla_oauth2 import OAuth2AuthorizationCodeMixin
from authlib.integrations.sqla_oauth2 import OAuth2ClientMixin
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

#: The scope of the app's own (first-party) tokens, from its JSON login: the only tokens that
#: may manage the second factor (``UCLOUD_2FA_MANAGEMENT_SCOPE``). OAuth clients never get it.
FIRST_PARTY_SCOPE = "ucloud-2fa"
#: The client id of the app's own tokens; not a registered OAuth client.
FIRST_PARTY_CLIENT_ID = "example-app"
#: Seconds an authorization code can be exchanged; RFC 6749 recommends at most ten minutes.
CODE_LIFETIME = 300


def hash_token(token: str) -> str:
    """What the database keeps of a bearer or refresh token: its SHA-256, in hex.

    The tokens are 256 bits or more from a CSPRNG, so a fast unsalted hash is enough: nobody
    can guess a token from its hash, and the lookup stays one indexed equality.
    """
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


class User(UserMixin, db.Model):  # type: ignore[name-defined,misc]
    id: Mapped[int] = mapped_column(primary_key=True)
    username: Mapped[str] = mapped_column(String(80), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    #: Bumped to end every browser session of the user: a session records the generation it
    #: was made in, and one from an earlier generation is refused (see :mod:`.session`).
    session_generation: Mapped[int] = mapped_column(default=0, server_default="0")
    #: Where the security notices go (:mod:`.notices`); users without one get none.
    email: Mapped[str | None] = mapped_column(String(254), default=None)

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


def new_family_id() -> str:
    """The id of a new token family: the tokens of one login or one authorization code,
    through all their refreshes (see :mod:`.tokens`)."""
    return secrets.token_hex(32)


class NewTokens(NamedTuple):
    """A token row and the plaintexts it was made from, which only the response carries."""

    row: Token
    access_token: str
    refresh_token: str
    #: UCloud's web client keeps it beside the access token (``setTokens``) and sends it as
    #: ``X-CSRFToken`` when it refreshes; only its hash is stored, on the row.
    csrf_token: str


class Token(db.Model, OAuth2TokenMixin):  # type: ignore[name-defined,misc]
    """A bearer token; ``amr`` and ``auth_time`` record how its login was made.

    ``access_token`` and ``refresh_token`` hold the :func:`hash_token` of the tokens, never the
    tokens: a copy of the database gives nobody a token that works.
    """

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"), index=True)
    user: Mapped[User] = relationship()
    amr: Mapped[str] = mapped_column(String(64), default="pwd")
    auth_time: Mapped[int] = mapped_column(default=0)
    #: The tokens of one login (or one authorization code) and all their refreshes share it:
    #: a replayed code or refresh token revokes the whole family. For a code's tokens it is
    #: the :func:`hash_token` of the code, so a replayed code finds them after it is deleted.
    family_id: Mapped[str] = mapped_column(String(64), index=True, default=new_family_id)
    #: The :func:`hash_token` of the JSON login's ``csrfToken``; none for OAuth clients.
    csrf_token: Mapped[str | None] = mapped_column(String(64), default=None)

    @classmethod
    def for_login(
        cls,
        user_id: int,
        methods: list[str],
        auth_time: int,
        lifetime: int,
        *,
        family_id: str | None = None,
    ) -> NewTokens:
        """A new access and refresh token of the app itself (scope :data:`FIRST_PARTY_SCOPE`)
        for a login made with ``methods`` at ``auth_time``, with its CSRF token; a new family
        unless ``family_id`` (a refresh) says which."""
        access_token, refresh_token = secrets.token_urlsafe(32), secrets.token_urlsafe(48)
        csrf_token = secrets.token_urlsafe(32)
        row = cls(
            user_id=user_id,
            client_id=FIRST_PARTY_CLIENT_ID,
            token_type="Bearer",  # nosec B106 - a token type, not a password
            access_token=hash_token(access_token),
            refresh_token=hash_token(refresh_token),
            scope=FIRST_PARTY_SCOPE,
            issued_at=int(time.time()),
            expires_in=lifetime,
            amr=" ".join(methods),
            auth_time=auth_time,
            family_id=family_id or new_family_id(),
            csrf_token=hash_token(csrf_token),
        )
        return NewTokens(row, access_token, refresh_token, csrf_token)


class OAuth2Client(db.Model, OAuth2ClientMixin):  # type: ignore[name-defined,misc]
    __tablename__ = "oauth2_client"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Unique, unlike the mixin's: workers that register the demo client at the same moment
    # must not make two of it.
    client_id: Mapped[str] = mapped_column(String(48), unique=True)


class OAuth2AuthorizationCode(db.Model, OAuth2AuthorizationCodeMixin):  # type: ignore[name-defined,misc]
    """A code waiting to be exchanged; ``amr`` and ``auth_time`` are those of the browser
    login that approved it, not the time the code was made (that is ``issued_at``)."""

    __tablename__ = "oauth2_code"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("user.id", ondelete="CASCADE"))
    user: Mapped[User] = relationship()
    issued_at: Mapped[int] = mapped_column(default=lambda: int(time.time()))
    #: The family of the tokens exchanged for it: :func:`hash_token` of the code, so a
    #: replayed code still finds them once this row is deleted.
    family_id: Mapped[str] = mapped_column(String(64))

    def is_expired(self) -> bool:
        # The mixin counts from auth_time, which here is the login, often long before.
        return self.issued_at + CODE_LIFETIME < time.time()
