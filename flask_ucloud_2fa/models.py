"""The extension's tables, bound to the integrator's Flask-SQLAlchemy ``db``.

The extension never creates its own ``SQLAlchemy()``. The mixins are public, as Authlib's
``sqla_oauth2`` mixins are: an integrator may subclass them on their own ``db.Model`` (own table
names, own columns) and hand them to ``TwoFactor(models=...)``. Otherwise :func:`bind_models`
defines the default models on the integrator's ``db``, once per ``db``, so ``db.create_all()``
and Flask-Migrate see them like any other model of the app.
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
from sqlalchemy.types import NullType

#: Challenge kinds.
SETUP = "setup"
LOGIN = "login"


class CredentialMixin:
    """A user's TOTP credential: pending until a setup challenge is answered, then connected.

    One row per user (``user_id`` is unique), so a second setup replaces the pending secret in
    place and two racing setups cannot create two rows. ``user_id`` is text by default; a
    subclass may declare it as a foreign key to the user table instead (it must stay unique
    and not null), as ``TwoFactor(user_table=...)`` does for the default models.
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
    #: No answer is looked at before this time (the back-off after consecutive failures).
    blocked_until: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: The lock-out budget, in Unix seconds: when every failure counted so far is forgiven, one
    #: per ``UCLOUD_2FA_LOCKOUT_DURATION``. A right answer does not move it.
    forgiven_at: Mapped[int | None] = mapped_column(BigInteger, nullable=True)

    def __repr__(self) -> str:
        # The secret stays out of reprs, and so out of logs and tracebacks.
        return f"<TwoFactorCredential user_id={self.user_id!r} connected={self.connected}>"


class BelongsToCredential:
    """A row of a credential, which goes when the credential goes.

    A subclass whose credential model has a table name of its own declares ``credential_id``
    with a foreign key to that table.
    """

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


class AttemptCounterMixin:
    """The failed attempts counted under one key (a user, a client address, or both) of the
    password-attempt limits: see :meth:`~flask_ucloud_2fa.TwoFactor.limit_password_attempt`.

    The key is stored only as a SHA-256, so the table names no user and no address. A row
    whose failures are all forgiven (``forgiven_at`` in the past) counts as empty and is
    removed by later attempts.
    """

    __tablename__ = "ucloud_2fa_attempt_counter"

    key_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    #: Consecutive failed attempts; a successful one starts the count again.
    failures: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    #: No attempt is admitted before this time, in Unix seconds (the back-off).
    blocked_until: Mapped[int | None] = mapped_column(BigInteger, nullable=True)
    #: When every failure counted so far is forgiven, in Unix seconds (the budget).
    forgiven_at: Mapped[int] = mapped_column(BigInteger, nullable=False, index=True)

    def __repr__(self) -> str:
        return f"<TwoFactorAttemptCounter failures={self.failures}>"


class RememberedBrowserMixin(BelongsToCredential):
    """A browser whose logins skip the second factor until ``expires_at`` ("Remember this
    browser", ``UCLOUD_2FA_REMEMBER_DAYS``), bound to its user and to the credential it was
    made under: it goes with that credential.

    Only the SHA-256 of the cookie's random value is stored, so a copy of the table lets no one
    skip the second factor.
    """

    __tablename__ = "ucloud_2fa_remembered_browser"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    #: SHA-256 of the random value in the browser's cookie, hex-encoded.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True, nullable=False)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False, index=True)
    created_at: Mapped[datetime] = mapped_column(DateTime, nullable=False)
    expires_at: Mapped[datetime] = mapped_column(DateTime, nullable=False, index=True)
    #: The last login that skipped the second factor with it.
    last_used_at: Mapped[datetime | None] = mapped_column(DateTime, nullable=True)
    #: A summary of the browser's ``User-Agent`` (``"Firefox on Linux"``), for the user's list.
    user_agent: Mapped[str | None] = mapped_column(String(64), nullable=True)

    def __repr__(self) -> str:
        return f"<TwoFactorRememberedBrowser id={self.id} user_id={self.user_id!r}>"


@dataclass(frozen=True)
class TwoFactorModels:
    """The model classes the extension stores its rows in.

    :param Credential: a mapped subclass of :class:`CredentialMixin`.
    :param Challenge: a mapped subclass of :class:`ChallengeMixin`.
    :param RecoveryCode: a mapped subclass of :class:`RecoveryCodeMixin`.
    :param AttemptCounter: a mapped subclass of :class:`AttemptCounterMixin`, for the
        password-attempt limits; ``None`` if the app does not use them.
    :param RememberedBrowser: a mapped subclass of :class:`RememberedBrowserMixin`, for
        ``UCLOUD_2FA_REMEMBER_DAYS``; ``None`` if the app does not remember browsers.
    """

    Credential: type[CredentialMixin]
    Challenge: type[ChallengeMixin]
    RecoveryCode: type[RecoveryCodeMixin]
    AttemptCounter: type[AttemptCounterMixin] | None = None
    RememberedBrowser: type[RememberedBrowserMixin] | None = None


_bound: weakref.WeakKeyDictionary[Any, tuple[str | None, TwoFactorModels]] = (
    weakref.WeakKeyDictionary()
)


def bind_models(db: Any, user_table: str | None = None) -> TwoFactorModels:
    """The default models on ``db.Model``, defined on the first call for a given ``db``.

    :param user_table: ``"table"`` or ``"table.column"`` (``.id`` by default): the
        ``user_id`` columns become foreign keys to it with ``ON DELETE CASCADE``, typed like
        it, so deleting a user deletes their 2FA. ``None`` keeps user ids as text.
    :raises RuntimeError: the models of ``db`` were defined with another ``user_table``.
    """
    found = _bound.get(db)
    if found is not None:
        if found[0] != user_table:
            raise RuntimeError(
                f"Flask-UCloud-2FA's models are already defined on this db with"
                f" user_table={found[0]!r}, not {user_table!r}: create one TwoFactor per db,"
                " or pass the same user_table to each."
            )
        return found[1]
    credential_columns: dict[str, Any] = {}
    challenge_columns: dict[str, Any] = {}
    remembered_columns: dict[str, Any] = {}
    if user_table is not None:
        target = user_table if "." in user_table else f"{user_table}.id"
        # No type: SQLAlchemy copies the type of the user's key once that table is defined.
        credential_columns["user_id"] = mapped_column(
            ForeignKey(target, ondelete="CASCADE"), unique=True, nullable=False
        )
        challenge_columns["user_id"] = mapped_column(
            ForeignKey(target, ondelete="CASCADE"), nullable=False, index=True
        )
        remembered_columns["user_id"] = mapped_column(
            ForeignKey(target, ondelete="CASCADE"), nullable=False, index=True
        )
    models = TwoFactorModels(
        Credential=type("TwoFactorCredential", (CredentialMixin, db.Model), credential_columns),
        Challenge=type("TwoFactorChallenge", (ChallengeMixin, db.Model), challenge_columns),
        RecoveryCode=type("TwoFactorRecoveryCode", (RecoveryCodeMixin, db.Model), {}),
        AttemptCounter=type("TwoFactorAttemptCounter", (AttemptCounterMixin, db.Model), {}),
        RememberedBrowser=type(
            "TwoFactorRememberedBrowser", (RememberedBrowserMixin, db.Model), remembered_columns
        ),
    )
    _bound[db] = (user_table, models)
    return models


def models_of(db: Any, user_table: str | None, models: TwoFactorModels | None) -> TwoFactorModels:
    """The integrator's own ``models``, or the default ones on ``db`` with ``user_table``.

    :raises ValueError: both ``models`` and ``user_table``: own models declare their own keys.
    """
    if models is None:
        return bind_models(db, user_table)
    if user_table is not None:
        raise ValueError(
            "Pass TwoFactor either models=... or user_table=..., not both: your own models"
            " declare the foreign key of their user_id columns themselves."
        )
    return models


def user_id_type(models: TwoFactorModels) -> type:
    """The Python type of user ids in ``models``: ``str`` for text, else the type of the
    user table's key."""
    column = models.Credential.__table__.c.user_id  # type: ignore[attr-defined]
    if isinstance(column.type, NullType):  # a foreign key whose table was never defined
        target = ", ".join(key.target_fullname for key in column.foreign_keys)
        raise RuntimeError(
            f"Flask-UCloud-2FA's user_id refers to {target}, which is not defined on this db:"
            " pass TwoFactor(user_table=...) the table of your user model."
        )
    python_type: type = column.type.python_type
    return python_type


def connected_property(
    models: TwoFactorModels, token_model: Any, user_id: Any = None
) -> ColumnProperty[bool | None]:
    """A column property for the integrator's token model: whether the token's user has a
    connected credential, loaded by the token's own ``SELECT`` as a correlated subquery on the
    credential's unique ``user_id`` index. ``None`` when the user has no credential at all.

    :param user_id: the token model's column (or SQL expression) holding the user id;
        ``token_model.user_id`` by default.
    :raises RuntimeError: ``token_model`` has no ``user_id`` column and none was given.
    """
    if user_id is None:
        user_id = getattr(token_model, "user_id", None)
        if user_id is None:
            raise RuntimeError(
                f"{token_model.__name__} has no 'user_id' column: pass the column that holds"
                " the user id, as in two_factor.load_with_token(Token, Token.owner_id)."
            )
    credential = models.Credential.__table__  # type: ignore[attr-defined]
    if isinstance(credential.c.user_id.type, String) and not isinstance(user_id.type, String):
        # Ids are stored as text; the cast is on the token's side, so the index still serves.
        user_id = cast(user_id, String(255))
    return column_property(
        select(credential.c.connected)
        .where(credential.c.user_id == user_id)
        .correlate_except(credential)
        .scalar_subquery()
    )
