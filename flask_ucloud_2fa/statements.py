"""The SQL of the paths with a speed target (status, answers, setup), built once per ``db``.

Building a SQLAlchemy statement costs more than running it on a warm connection (about two
thirds of a status check's own work, measured by ``bench/run.py``), so the statements that run
on every status check, answer and setup are built here once, on the tables' columns, with bound
parameters (``:name`` below); the service passes the values. Rarer statements (recovery codes,
administration) are built where they are used.

Each statement that decides a race is a single conditional statement, so the database, not
process memory, decides who wins (see :mod:`.service`).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Executable
from sqlalchemy import and_
from sqlalchemy import any_
from sqlalchemy import bindparam
from sqlalchemy import case
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import literal
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite

from .models import SETUP
from .models import TwoFactorModels

#: Expired challenges removed by each new challenge, at most.
EXPIRED_BATCH = 100

#: ``INSERT ... ON CONFLICT DO UPDATE`` of each supported dialect.
_UPSERTS: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


@dataclass(frozen=True)
class Statements:
    """The statements for the tables of one :class:`~.models.TwoFactorModels` on one dialect."""

    #: ``connected`` of the credential of ``:user_id`` (no row: no credential).
    is_connected: Executable
    #: The challenge ``:id_hash`` joined to its credential: all an answer needs, in one query.
    answer_row: Executable
    #: Spend the challenge ``:id_hash`` if it has not expired at ``:now``: one answer wins.
    spend_challenge: Executable
    #: Spend ``:step`` on the connected credential ``:credential_id`` (a login).
    spend_step: Executable
    #: Spend ``:step`` on the pending credential ``:credential_id`` and connect it at ``:now``.
    connect_step: Executable
    #: Insert or replace the pending secret of ``:user_id``; returns the credential's id, or
    #: nothing when the credential is connected (which it leaves untouched).
    store_pending_secret: Executable
    #: Delete the setup challenges of ``:user_id``: a new setup kills the earlier one.
    delete_setup_challenges: Executable
    #: Delete up to :data:`EXPIRED_BATCH` challenges expired at ``:now``, oldest first: the
    #: start of the ``expires_at`` index, never a table scan, and never a long delete in a
    #: login however large a backlog is (each new challenge removes many more than one).
    #: See :func:`_delete_expired`.
    delete_expired_challenges: Executable
    #: Insert a challenge; executed with a value for each column.
    insert_challenge: Executable
    #: Count a wrong answer on the credential ``:credential_id`` if it is admitted (see
    #: :func:`_admitted`), charging the lock-out budget ``:period`` seconds; returns the
    #: failures so far and the new ``forgiven_at``, or nothing when it is not admitted.
    count_failure: Executable
    #: Take the lock of the connected credential ``:credential_id`` if an answer is admitted
    #: now (a recovery code is checked under it); matches no row otherwise.
    admit: Executable
    #: Clear the back-off of the credential ``:credential_id`` after a right answer.
    clear_backoff: Executable
    #: ``failures``, ``blocked_until`` and ``forgiven_at`` of the credential
    #: ``:credential_id``: why an answer was not admitted.
    limits_row: Executable
    #: Block answers of the credential ``:credential_id`` until ``:until``, unless it already
    #: is for longer.
    block_until: Executable
    #: Count a wrong answer on the challenge ``:challenge_hash`` (an UPDATE cannot take a
    #: parameter named after a column) if it has not expired at ``:now``; returns the attempts
    #: so far.
    count_attempt: Executable

    @staticmethod
    @functools.cache
    def of(models: TwoFactorModels, dialect: str) -> Statements:
        """The statements for ``models`` on ``dialect`` (``"postgresql"`` or ``"sqlite"``).

        :raises RuntimeError: another dialect.
        """
        if dialect not in _UPSERTS:
            raise RuntimeError(
                f"Flask-UCloud-2FA supports PostgreSQL and SQLite, not {dialect!r}: its setup"
                " relies on INSERT ... ON CONFLICT DO UPDATE to stay race-free."
            )
        credentials = models.Credential.__table__  # type: ignore[attr-defined]
        challenges = models.Challenge.__table__  # type: ignore[attr-defined]
        credential, challenge = credentials.c, challenges.c
        return Statements(
            is_connected=select(credential.connected).where(
                credential.user_id == bindparam("user_id")
            ),
            answer_row=select(
                challenge.kind,
                challenge.user_id,
                challenge.credential_id,
                challenge.expires_at,
                challenge.login_context,
                challenge.browser_binding,
                credential.encrypted_secret,
            )
            .join_from(challenges, credentials, credential.id == challenge.credential_id)
            .where(challenge.id_hash == bindparam("id_hash")),
            spend_challenge=delete(challenges).where(
                challenge.id_hash == bindparam("id_hash"), challenge.expires_at > bindparam("now")
            ),
            spend_step=_spend_step(credentials, connecting=False),
            connect_step=_spend_step(credentials, connecting=True),
            store_pending_secret=_store_pending_secret(_UPSERTS[dialect], credentials),
            delete_setup_challenges=delete(challenges).where(
                challenge.user_id == bindparam("user_id"), challenge.kind == SETUP
            ),
            delete_expired_challenges=_delete_expired(challenges, dialect),
            insert_challenge=insert(challenges),
            count_failure=update(credentials)
            .where(credential.id == bindparam("credential_id"), _admitted(credential))
            .values(
                failures=credential.failures + 1,
                forgiven_at=case(
                    (credential.forgiven_at > bindparam("now_s"), credential.forgiven_at),
                    else_=bindparam("now_s"),
                )
                + bindparam("period"),
            )
            .returning(credential.failures, credential.forgiven_at),
            admit=update(credentials)
            .where(
                credential.id == bindparam("credential_id"),
                credential.connected.is_(True),
                _admitted(credential),
            )
            .values(failures=credential.failures),
            clear_backoff=update(credentials)
            .where(credential.id == bindparam("credential_id"))
            .values(failures=0, blocked_until=None),
            limits_row=select(
                credential.failures, credential.blocked_until, credential.forgiven_at
            ).where(credential.id == bindparam("credential_id")),
            block_until=update(credentials)
            .where(
                credential.id == bindparam("credential_id"),
                or_(
                    credential.blocked_until.is_(None),
                    credential.blocked_until < bindparam("until"),
                ),
            )
            .values(blocked_until=bindparam("until")),
            count_attempt=update(challenges)
            .where(
                challenge.id_hash == bindparam("challenge_hash"),
                challenge.expires_at > bindparam("now"),
            )
            .values(attempts=challenge.attempts + 1)
            .returning(challenge.attempts),
        )


def _delete_expired(challenges: Any, dialect: str) -> Executable:
    """Delete the :data:`EXPIRED_BATCH` oldest challenges expired at ``:now``.

    The batch is picked from the start of the ``expires_at`` index; its size is in the SQL
    text, not a parameter, so that a plan prepared once still knows the batch is small. On
    PostgreSQL the batch is an array (``= ANY(array(SELECT ...))``), which the planner always
    matches by the primary key: with ``IN (SELECT ...)`` it may join by scanning the table.
    """
    challenge = challenges.c
    batch = (
        select(challenge.id_hash)
        .where(challenge.expires_at <= bindparam("now"))
        .order_by(challenge.expires_at)
        .limit(literal(EXPIRED_BATCH, literal_execute=True))
    )
    if dialect == "postgresql":
        return delete(challenges).where(
            challenge.id_hash == any_(func.array(batch.scalar_subquery()))
        )
    return delete(challenges).where(challenge.id_hash.in_(batch))


def _admitted(credential: Any) -> Any:
    """Whether an answer of the credential is looked at now (``:now``, and ``:horizon`` in Unix
    seconds): not during a back-off, and not while its lock-out budget is spent, that is while
    more failures are unforgiven than ``UCLOUD_2FA_LOCKOUT_AFTER`` allows (the generic cell
    rate algorithm: ``:horizon`` is now plus the budget's length). Part of the statement that
    records the answer, under the row's lock, so parallel answers are admitted one at a time."""
    return and_(
        or_(credential.blocked_until.is_(None), credential.blocked_until <= bindparam("now")),
        or_(credential.forgiven_at.is_(None), credential.forgiven_at <= bindparam("horizon")),
    )


def _spend_step(credentials: Any, *, connecting: bool) -> Executable:
    """``UPDATE`` the credential to have used ``:step``, only if that step is newer than its
    last one (RFC 6238 5.2), which only one answer can do, and only if an answer is admitted
    now; its back-off is cleared, its lock-out budget is not."""
    credential = credentials.c
    values: dict[str, Any] = {
        "last_used_step": bindparam("step"),
        "failures": 0,
        "blocked_until": None,
    }
    if connecting:
        values.update(connected=True, connected_at=bindparam("now"))
    return (
        update(credentials)
        .where(
            credential.id == bindparam("credential_id"),
            credential.connected.is_(not connecting),
            or_(
                credential.last_used_step.is_(None), credential.last_used_step < bindparam("step")
            ),
            _admitted(credential),
        )
        .values(values)
    )


def _store_pending_secret(upsert: Any, credentials: Any) -> Executable:
    """One statement, so two racing setups cannot create two rows, and a setup racing the
    confirmation of another cannot replace a secret that just became connected."""
    credential = credentials.c
    statement = upsert(credentials).values(
        user_id=bindparam("user_id"),
        encrypted_secret=bindparam("encrypted_secret"),
        created_at=bindparam("created_at"),
        connected=False,
        last_used_step=None,
        failures=0,
        blocked_until=None,
        forgiven_at=None,
    )
    fresh = {
        "encrypted_secret": statement.excluded.encrypted_secret,
        "created_at": statement.excluded.created_at,
        "last_used_step": None,
        "failures": 0,
        "blocked_until": None,
        "forgiven_at": None,
    }
    upserted: Executable = statement.on_conflict_do_update(
        index_elements=[credential.user_id], set_=fresh, where=credential.connected.is_(False)
    ).returning(credential.id)
    return upserted
