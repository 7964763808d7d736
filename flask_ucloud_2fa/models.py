"""The extension's tables, bound to the integrator's Flask-SQLAlchemy ``db``.

The extension never creates its own ``SQLAlchemy()``: :func:`bind_models` defines the models on
the ``db`` the integrator passes, once per ``db``, so ``db.create_all()`` and Flask-Migrate see
them like any other model of the app.
"""

from __future__ import annotations

import weakref
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger
from sqlalchemy import Boolean
from sqlalchemy import DateTime
from sqlalchemy import ForeignKey
from sqlalchemy import Integer
from sqlalchemy import String
from sqlalchemy import Text
from sqlalchemy import UniqueConstraint
from sqlalchemy import cast
from sqlalchemy import select
from sqlalchemy.orm import ColumnProperty
from sqlalchemy.orm import Mapped
from sqlalchemy.orm import column_property
from sqlalchemy.orm import declared_attr
from sqlalchemy.orm import mapped_column

#: Challenge kinds.
SETUP = "setup"
LOGIN = "login"


class CredentialMixin:
    """A user's TOTP credential: pending until a setup challenge is answered, then connected.

    One row per user (``user_id`` is unique), so a second setup replaces the pending secret in
    place and two racing setups cannot create two rows.
    """

    __tablename__ = "ucloud_2fa_credential"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: The integrator's user id, as text, so any id type fits.
    user_id: Mapped[str] = mapped_column(String(255), unique=True, nullable=False)
    #: The TOTP secret, Fernet-encrypted under ``UCLOUD_2FA_ENCRYPTION_KEYS``.
    encrypted_secret: Mapped[str] = mapped_column(String(255), nullable=False)
    connected: Mapped[bool] = mapped_column(Boolean, nullable=False, default=False)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    connected_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: The last accepted RFC 6238 time step; codes of this step or earlier are refused.
    last_used_step: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: Consecutive wrong answers across all of the user's challenges; reset by a right one.
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: No answer is looked at before this time (back-off, or lock-out after many failures).
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)

    def __repr__(self) -> str:
        # The secret stays out of reprs, and so out of logs and tracebacks.
        return f"<TwoFactorCredential user_id={self.user_id!r} connected={self.connected}>"


class BelongsToCredential:
    """A row of a credential, which goes when the credential goes."""

    @declared_attr
    def credential_id(cls) -> Mapped[int]:  # noqa: N805 - declared_attr takes the class
        return mapped_column(
            Integer,
            ForeignKey("ucloud_2fa_credential.id", ondelete="CASCADE"),
            nullable=False,
        )


class ChallengeMixin(BelongsToCredential):
    """A pending challenge: the setup of a credential, or the second step of a login.

    Only the SHA-256 of the challenge id is stored, so a copy of the table answers nothing.
    """

    __tablename__ = "ucloud_2fa_challenge"

    id_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16), nullable=False)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    expires_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, index=True)
    attempts: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: JSON the login view passed to the login step, handed back to the completion hook.
    login_context: Mapped[str | None] = mapped_column(Text, nullable=True)
    #: SHA-256 of the cookie that binds a browser login challenge to the browser it began in.
    browser_binding: Mapped[str | None] = mapped_column(String(64), nullable=True)

    def __repr__(self) -> str:
        return f"<TwoFactorChallenge kind={self.kind!r} user_id={self.user_id!r}>"


class RecoveryCodeMixin(BelongsToCredential):
    """One unused recovery code of a credential, stored as a keyed hash, deleted when used."""

    __tablename__ = "ucloud_2fa_recovery_code"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    code_hash: Mapped[str] = mapped_column(String(64), nullable=False)

    @declared_attr.directive
    def __table_args__(cls) -> tuple[Any, ...]:  # noqa: N805
        return (UniqueConstraint("credential_id", "code_hash"),)

    def __repr__(self) -> str:
        return f"<TwoFactorRecoveryCode credential_id={self.credential_id}>"


@dataclass(frozen=True)
class Models:
    """The concrete model classes bound to one ``db``."""

    Credential: type[CredentialMixin]
    Challenge: type[ChallengeMixin]
    RecoveryCode: type[RecoveryCodeMixin]


_bound: weakref.WeakKeyDictionary[Any, Models] = weakref.WeakKeyDictionary()


def bind_models(db: Any) -> Models:
    """The models on ``db.Model``, defined on the first call for a given ``db``."""
    models = _bound.get(db)
    if models is None:
        credential = type("TwoFactorCredential", (CredentialMixin, db.Model), {})
        challenge = type("TwoFactorChallenge", (ChallengeMixin, db.Model), {})
        recovery = type("TwoFactorRecoveryCode", (RecoveryCodeMixin, db.Model), {})
        models = _bound[db] = Models(
            Credential=credential, Challenge=challenge, RecoveryCode=recovery
        )
    return models


def connected_property(models: Models, user_id: Any) -> ColumnProperty[bool | None]:
    """A column property for the integrator's token model: whether the token's user has a
    connected credential, loaded by the token's own ``SELECT`` as a correlated subquery on the
    credential's unique ``user_id`` index. ``None`` when the user has no credential at all.

    :param user_id: the token model's column (or SQL expression) holding the user id.
    """
    credential = models.Credential.__table__  # type: ignore[attr-defined]
    if not isinstance(user_id.type, String):
        # Ids are stored as text; the cast is on the token's side, so the index still serves.
        user_id = cast(user_id, String(255))
    return column_property(
        select(credential.c.connected)
        .where(credential.c.user_id == user_id)
        .correlate_except(credential)
        .scalar_subquery()
    )
