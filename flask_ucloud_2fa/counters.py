"""The attempt counters' SQL: one row per key, charged, blocked and refunded by single
statements, so the database decides which of parallel attempts are admitted.

Knows SQL, no rules: :mod:`.attempts` decides what a key is and what a failure costs. Times are
whole Unix seconds. A row is empty once ``forgiven_at`` has passed; charging an empty row
starts its count again, and each charge removes a batch of empty rows.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import and_
from sqlalchemy import case
from sqlalchemy import delete
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite

from .store import Store

#: Empty rows removed by each charge, at most.
EMPTY_BATCH = 100

_UPSERTS: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}


class Counters:
    """The attempt counters, through the store (its session and its statement timeout).

    :param store: the extension's store on the integrator's ``db.session``.
    :param model: the mapped subclass of :class:`~.models.AttemptCounterMixin`.
    """

    def __init__(self, store: Store, model: Any) -> None:
        self.store = store
        self.session = store.session
        self.table = model.__table__
        self.upsert = _UPSERTS[store.dialect]

    def charge(self, key_hash: str, now: int, period: int, horizon: int) -> tuple[int, int] | None:
        """Count one failure under ``key_hash`` if an attempt is admitted at ``now``: no
        back-off, and ``forgiven_at`` no later than ``horizon``. The failure is forgiven
        ``period`` seconds after the one before it.

        :returns: the consecutive failures and the new ``forgiven_at``, or ``None`` when the
            attempt is not admitted (nothing is counted).
        """
        c = self.table.c
        statement = self.upsert(self.table).values(
            key_hash=key_hash, failures=1, blocked_until=None, forgiven_at=now + period
        )
        statement = statement.on_conflict_do_update(
            index_elements=[c.key_hash],
            set_={
                "failures": case((c.forgiven_at <= now, 1), else_=c.failures + 1),
                "forgiven_at": case((c.forgiven_at > now, c.forgiven_at), else_=now) + period,
            },
            where=and_(
                or_(c.blocked_until.is_(None), c.blocked_until <= now), c.forgiven_at <= horizon
            ),
        ).returning(c.failures, c.forgiven_at)
        row = self.store.execute(statement).one_or_none()
        return None if row is None else (row.failures, row.forgiven_at)

    def block(self, key_hash: str, until: int) -> None:
        """No attempt under ``key_hash`` is admitted before ``until``."""
        c = self.table.c
        self.store.execute(
            update(self.table).where(c.key_hash == key_hash).values(blocked_until=until)
        )

    def refund(self, key_hash: str, period: int, *, clear_backoff: bool) -> None:
        """Forgive the failure charged last under ``key_hash``; with ``clear_backoff``, start
        its consecutive count and its back-off again."""
        c = self.table.c
        values: dict[str, Any] = {"forgiven_at": c.forgiven_at - period}
        if clear_backoff:
            values.update(failures=0, blocked_until=None)
        self.store.execute(update(self.table).where(c.key_hash == key_hash).values(values))

    def rows(self, key_hashes: list[str]) -> dict[str, Any]:
        """``blocked_until`` and ``forgiven_at`` of each stored key."""
        c = self.table.c
        found = self.store.execute(
            select(c.key_hash, c.blocked_until, c.forgiven_at).where(c.key_hash.in_(key_hashes))
        )
        return {row.key_hash: row for row in found}

    def delete_empty(self, now: int) -> None:
        """Remove up to :data:`EMPTY_BATCH` rows whose failures are all forgiven. Rows another
        attempt holds are skipped, not waited for (``SKIP LOCKED`` on PostgreSQL), so this never
        waits in a cycle with the charges; the outer condition is checked again on each row as
        it is deleted, so a row charged meanwhile stays."""
        c = self.table.c
        batch = (
            select(c.key_hash)
            .where(c.forgiven_at <= now)
            .order_by(c.forgiven_at)
            .limit(EMPTY_BATCH)
            .with_for_update(skip_locked=True)
        )
        self.store.execute(delete(self.table).where(c.key_hash.in_(batch), c.forgiven_at <= now))
