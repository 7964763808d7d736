"""The store: every SQL statement the extension runs, and its one transaction helper.

Knows SQL and the tables, no rules: it answers what is stored and changes it as told, and the
service decides. Dialect branches live here and in :mod:`.statements` only. Every statement
that decides a race is a single conditional statement, so the database, not process memory,
decides who wins (see :mod:`.service`). Statements that lock take the credential row before any
challenge or recovery-code row, in every path, so two transactions never wait in a cycle.
"""

from __future__ import annotations

import functools
import secrets
from collections.abc import Iterator
from contextlib import AbstractContextManager
from contextlib import contextmanager
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Any
from typing import cast

from sqlalchemy import CursorResult
from sqlalchemy import Executable
from sqlalchemy import Result
from sqlalchemy import Row
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import text
from sqlalchemy import update
from sqlalchemy.orm import Session

from .crypto import sha256_hex
from .models import TwoFactorModels
from .models import user_id_type
from .statements import Statements

#: 256 bits from the CSPRNG, URL-safe base64 (43 characters).
CHALLENGE_ID_BYTES = 32


def utc(timestamp: float) -> datetime:
    """Unix seconds as the stored form of a time: naive UTC (SQLite has no time zones, and both
    databases then compare the same values)."""
    return datetime.fromtimestamp(timestamp, timezone.utc).replace(tzinfo=None)


def hash_challenge_id(challenge_id: str) -> str:
    """The stored form of a challenge id: its SHA-256, hex-encoded."""
    return sha256_hex(challenge_id)


@contextmanager
def transaction(session: Session) -> Iterator[None]:
    """Commit what the block did on ``session``, or roll it all back if it raises."""
    try:
        yield
    except BaseException:
        session.rollback()
        raise
    session.commit()


@functools.cache
def _set_statement_timeout(milliseconds: int) -> Executable:
    return text(f"SET LOCAL statement_timeout = {int(milliseconds)}")


class Store:
    """The extension's rows, on the integrator's session.

    :param session: the integrator's ``db.session``.
    :param models: the models bound to the integrator's ``db``.
    :param statement_timeout: seconds each statement may run or wait for a lock, on
        PostgreSQL (``UCLOUD_2FA_STATEMENT_TIMEOUT``); ``None`` for no limit.
    """

    def __init__(
        self, session: Session, models: TwoFactorModels, statement_timeout: float | None = None
    ) -> None:
        self.session = session
        self.models = models
        self.statement_timeout = statement_timeout
        #: The transaction that got the statement timeout (see :meth:`execute`).
        self._limited: object = None

    @functools.cached_property
    def dialect(self) -> str:
        """The name of the session's database for these models: ``postgresql``, ``sqlite``."""
        name: str = self.session.get_bind(mapper=self.models.Credential).dialect.name
        return name

    @functools.cached_property
    def statements(self) -> Statements:
        """The prebuilt statements for these models on the session's database.

        :raises RuntimeError: a database other than PostgreSQL or SQLite.
        """
        return Statements.of(self.models, self.dialect)

    @functools.cached_property
    def _time_limit(self) -> Executable | None:
        """``SET LOCAL statement_timeout``, on PostgreSQL with a timeout; else ``None``.

        Local to the transaction, so it ends with it and a pooler's (pgbouncer's) server
        connections stay clean; pgbouncer refuses ``options=-c statement_timeout=...`` at
        connection time. It covers lock waits too: ``lock_timeout`` would add nothing.
        """
        if self.statement_timeout is None or self.dialect != "postgresql":
            return None
        return _set_statement_timeout(max(1, round(self.statement_timeout * 1000)))

    def execute(self, statement: Executable, parameters: Any = None) -> Result[Any]:
        """Run one of the extension's statements: with a statement timeout, the transaction
        it runs in gets :attr:`_time_limit` first, once. A statement over it then raises
        SQLAlchemy's ``OperationalError`` and the transaction rolls back."""
        time_limit = self._time_limit
        if time_limit is not None:
            bind = {"mapper": self.models.Credential}
            current = self.session.connection(bind_arguments=bind).get_transaction()
            if current is not self._limited:
                self.session.execute(time_limit, bind_arguments=bind)
                self._limited = current
        return self.session.execute(statement, parameters)

    def user_key(self, user_id: Any) -> Any:
        """``user_id`` as the column stores it: text by default, or the user table's key type.

        :raises ValueError: ``user_id`` cannot be one.
        """
        python_type = user_id_type(self.models)
        if isinstance(user_id, python_type):
            return user_id
        try:
            return python_type(user_id)
        except (TypeError, ValueError):
            raise ValueError(
                f"{user_id!r} is not a user id of this app's user table ({python_type.__name__})."
            ) from None

    def transaction(self) -> AbstractContextManager[None]:
        """Commit what the block did, or roll it all back if it raises."""
        return transaction(self.session)

    # -- reads ------------------------------------------------------------------------------

    def is_connected(self, user_id: Any) -> bool:
        """Whether ``user_id`` has a connected credential. One query."""
        connected = self.execute(
            self.statements.is_connected, {"user_id": user_id}
        ).scalar_one_or_none()
        return bool(connected)

    def answer_row(self, challenge_id: str) -> Row[Any] | None:
        """The challenge joined to its credential: all an answer needs, in one query."""
        return self.execute(
            self.statements.answer_row, {"id_hash": hash_challenge_id(challenge_id)}
        ).one_or_none()

    def connected_credential(self, user_id: Any) -> Any:
        """``user_id``, ``credential_id`` and ``encrypted_secret`` of the user's connected
        credential, or ``None``."""
        credential = self.models.Credential
        return self.execute(
            select(
                credential.user_id,
                credential.id.label("credential_id"),
                credential.encrypted_secret,
            ).where(credential.user_id == user_id, credential.connected.is_(True))
        ).one_or_none()

    def limits_row(self, credential_id: int) -> Any:
        """``failures``, ``blocked_until`` and ``forgiven_at`` of the credential, or ``None``."""
        return self.execute(
            self.statements.limits_row, {"credential_id": credential_id}
        ).one_or_none()

    def credential(self, user_id: Any) -> Any:
        """The user's credential row (the model instance), or ``None``."""
        credential = self.models.Credential
        return self.execute(
            select(credential).where(credential.user_id == user_id)
        ).scalar_one_or_none()

    def count_recovery_codes(self, credential_id: int) -> int:
        recovery = self.models.RecoveryCode
        count: int = self.execute(
            select(func.count()).where(recovery.credential_id == credential_id)
        ).scalar_one()
        return count

    def count_live_challenges(self, user_id: Any, now: float) -> int:
        challenge = self.models.Challenge
        count: int = self.execute(
            select(func.count()).where(
                challenge.user_id == user_id, challenge.expires_at > utc(now)
            )
        ).scalar_one()
        return count

    def credential_batches(self, size: int) -> Iterator[list[tuple[int, str]]]:
        """Every credential's id and encrypted secret, in batches of ``size`` by id."""
        credential = self.models.Credential
        last_id = 0
        while True:
            batch = [
                (row.id, row.encrypted_secret)
                for row in self.execute(
                    select(credential.id, credential.encrypted_secret)
                    .where(credential.id > last_id)
                    .order_by(credential.id)
                    .limit(size)
                )
            ]
            if not batch:
                return
            yield batch
            last_id = batch[-1][0]

    # -- writes -----------------------------------------------------------------------------

    def store_pending_secret(self, user_id: Any, encrypted: str, now: float) -> int | None:
        """Insert or replace the user's pending secret; the credential row's id, or ``None``
        when the credential is connected (which stays untouched)."""
        credential_id = self.execute(
            self.statements.store_pending_secret,
            {"user_id": user_id, "encrypted_secret": encrypted, "created_at": utc(now)},
        ).scalar_one_or_none()
        return None if credential_id is None else int(credential_id)

    def delete_setup_challenges(self, user_id: Any) -> None:
        self.execute(self.statements.delete_setup_challenges, {"user_id": user_id})

    def insert_challenge(
        self,
        *,
        kind: str,
        user_id: Any,
        credential_id: int,
        now: float,
        lifetime: int,
        login_context: str | None = None,
        browser_binding: str | None = None,
    ) -> str:
        """Store a new challenge, clearing a batch of expired ones (an index range, no table
        scan); the new challenge's id, which is stored only hashed."""
        statements = self.statements
        self.execute(statements.delete_expired_challenges, {"now": utc(now)})
        challenge_id = secrets.token_urlsafe(CHALLENGE_ID_BYTES)
        binding = None if browser_binding is None else sha256_hex(browser_binding)
        self.execute(
            statements.insert_challenge,
            {
                "id_hash": hash_challenge_id(challenge_id),
                "kind": kind,
                "user_id": user_id,
                "credential_id": credential_id,
                "expires_at": utc(now) + timedelta(seconds=lifetime),
                "attempts": 0,
                "login_context": login_context,
                "browser_binding": binding,
            },
        )
        return challenge_id

    def spend_challenge(self, challenge_id: str, now: float) -> bool:
        """Delete the challenge if it has not expired; whether this call did (one answer
        wins)."""
        return 1 == self._rowcount(
            self.statements.spend_challenge,
            {"id_hash": hash_challenge_id(challenge_id), "now": utc(now)},
        )

    def spend_step(
        self, credential_id: int, step: int, now: float, horizon: int, *, connecting: bool
    ) -> bool:
        """Mark ``step`` used on the credential (connecting it, for a setup) and clear its
        back-off, if the step is newer than its last and an answer is admitted (``horizon``:
        see :meth:`count_failure`); whether it was."""
        statements = self.statements
        return 1 == self._rowcount(
            statements.connect_step if connecting else statements.spend_step,
            {"credential_id": credential_id, "step": step, "now": utc(now), "horizon": horizon},
        )

    def admit(self, credential_id: int, now: float, horizon: int) -> bool:
        """Lock the connected credential if an answer is admitted now; whether it is."""
        return 1 == self._rowcount(
            self.statements.admit,
            {"credential_id": credential_id, "now": utc(now), "horizon": horizon},
        )

    def spend_recovery_code(self, credential_id: int, code_hashes: list[str]) -> bool:
        """Delete the credential's recovery code with one of ``code_hashes`` and clear the
        credential's back-off; whether a code matched. Call it after :meth:`admit`."""
        recovery = self.models.RecoveryCode
        spent = 1 == self._rowcount(
            delete(recovery).where(
                recovery.credential_id == credential_id, recovery.code_hash.in_(code_hashes)
            )
        )
        if spent:
            self.execute(self.statements.clear_backoff, {"credential_id": credential_id})
        return spent

    def count_failure(
        self, credential_id: int, now: float, horizon: int, period: int
    ) -> tuple[int, int] | None:
        """Count a wrong answer on the credential, if an answer is admitted now, and charge
        its lock-out budget ``period`` seconds; the failures so far and when they are all
        forgiven, or ``None`` when the answer is not admitted (or the credential is gone).

        An answer is admitted outside a back-off and while ``forgiven_at`` is at most
        ``horizon`` (now plus the budget's length, in Unix seconds).
        """
        row = self.execute(
            self.statements.count_failure,
            {
                "credential_id": credential_id,
                "now": utc(now),
                "now_s": int(now),
                "horizon": horizon,
                "period": period,
            },
        ).one_or_none()
        return None if row is None else (row.failures, row.forgiven_at)

    def block_until(self, credential_id: int, until: float) -> None:
        """Refuse the credential's answers until ``until``, unless it already is for longer."""
        self.execute(
            self.statements.block_until, {"credential_id": credential_id, "until": utc(until)}
        )

    def count_attempt(self, challenge_id: str, now: float) -> int | None:
        """Count a wrong answer on the challenge; the attempts so far, or ``None`` when it is
        gone or expired."""
        attempts: int | None = self.execute(
            self.statements.count_attempt,
            {"challenge_hash": hash_challenge_id(challenge_id), "now": utc(now)},
        ).scalar_one_or_none()
        return attempts

    def replace_recovery_codes(self, credential_id: int, code_hashes: list[str]) -> None:
        recovery = self.models.RecoveryCode
        self.execute(delete(recovery).where(recovery.credential_id == credential_id))
        self.execute(
            insert(recovery),
            [{"credential_id": credential_id, "code_hash": code} for code in code_hashes],
        )

    def delete_user(self, user_id: Any) -> bool:
        """Delete the user's credential with its challenges, recovery codes and remembered
        browsers (explicitly: SQLite enforces no ``ON DELETE CASCADE`` without ``PRAGMA
        foreign_keys``, and may give a new credential the deleted one's id); whether a
        credential existed."""
        credential, challenge = self.models.Credential, self.models.Challenge
        recovery, remembered = self.models.RecoveryCode, self.models.RememberedBrowser
        ids = select(credential.id).where(credential.user_id == user_id).scalar_subquery()
        self.execute(delete(recovery).where(recovery.credential_id.in_(ids)))
        self.execute(delete(challenge).where(challenge.user_id == user_id))
        if remembered is not None:
            self.execute(delete(remembered).where(remembered.user_id == user_id))
        return 1 == self._rowcount(delete(credential).where(credential.user_id == user_id))

    def reencrypt(self, credential_id: int, encrypted: str) -> None:
        credential = self.models.Credential
        self.execute(
            update(credential)
            .where(credential.id == credential_id)
            .values(encrypted_secret=encrypted)
        )

    def _rowcount(self, statement: Executable, parameters: dict[str, Any] | None = None) -> int:
        """Run an UPDATE or DELETE; how many rows it matched."""
        result = cast("CursorResult[Any]", self.execute(statement, parameters))
        return result.rowcount
