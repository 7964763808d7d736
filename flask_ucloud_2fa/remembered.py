"""The remembered browsers' SQL: one row per browser whose logins skip the second factor.

Knows SQL, no rules: :mod:`.remember` decides when a browser is remembered and whether a row
still counts. Statements run through the :class:`~.store.Store`, on the integrator's session and
with its statement timeout. Times are naive UTC, as the store keeps them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any
from typing import cast

from sqlalchemy import CursorResult
from sqlalchemy import Row
from sqlalchemy import delete
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import update

from .store import Store


class RememberedRows:
    """The remembered browsers of one app.

    :param store: the app's store; its models have a ``RememberedBrowser``.
    :raises RuntimeError: they have none.
    """

    def __init__(self, store: Store) -> None:
        model = store.models.RememberedBrowser
        if model is None:
            raise RuntimeError(
                "Flask-UCloud-2FA remembers browsers in a RememberedBrowser model: pass"
                " TwoFactorModels(..., RememberedBrowser=...), a subclass of"
                " RememberedBrowserMixin, or leave UCLOUD_2FA_REMEMBER_DAYS at 0."
            )
        self.store = store
        self.model: Any = model

    def insert(
        self,
        *,
        token_hash: str,
        user_id: Any,
        credential_id: int,
        now: datetime,
        expires_at: datetime,
        user_agent: str | None,
    ) -> None:
        """Store a remembered browser, clearing the user's expired ones: only the user's, which
        no other user's login waits for (the answer holds the user's credential row)."""
        model = self.model
        self.store.execute(delete(model).where(model.user_id == user_id, model.expires_at <= now))
        self.store.execute(
            insert(model).values(
                token_hash=token_hash,
                user_id=user_id,
                credential_id=credential_id,
                created_at=now,
                expires_at=expires_at,
                user_agent=user_agent,
            )
        )

    def use(self, token_hash: str, user_id: Any, now: datetime, oldest: datetime) -> bool:
        """Record a login with the row of ``token_hash``, if it is ``user_id``'s, made after
        ``oldest``, not expired at ``now``, and made under the user's connected credential;
        whether it was. One statement."""
        model, credential = self.model, self.store.models.Credential
        connected = select(credential.id).where(
            credential.user_id == user_id, credential.connected.is_(True)
        )
        return 1 == self._rowcount(
            update(model)
            .where(
                model.token_hash == token_hash,
                model.user_id == user_id,
                model.expires_at > now,
                model.created_at > oldest,
                model.credential_id.in_(connected),
            )
            .values(last_used_at=now)
        )

    def of_user(self, user_id: Any, now: datetime, oldest: datetime) -> list[Row[Any]]:
        """The user's rows that :meth:`use` would accept at ``now``, newest first."""
        model, credential = self.model, self.store.models.Credential
        connected = select(credential.id).where(
            credential.user_id == user_id, credential.connected.is_(True)
        )
        return list(
            self.store.execute(
                select(
                    model.id,
                    model.token_hash,
                    model.created_at,
                    model.expires_at,
                    model.last_used_at,
                    model.user_agent,
                )
                .where(
                    model.user_id == user_id,
                    model.expires_at > now,
                    model.created_at > oldest,
                    model.credential_id.in_(connected),
                )
                .order_by(model.created_at.desc(), model.id.desc())
            ).all()
        )

    def delete(self, user_id: Any, browser_id: int) -> bool:
        """Delete the user's row ``browser_id``; whether there was one."""
        model = self.model
        return 1 == self._rowcount(
            delete(model).where(model.id == browser_id, model.user_id == user_id)
        )

    def delete_user(self, user_id: Any) -> int:
        """Delete every row of the user; how many there were."""
        model = self.model
        return self._rowcount(delete(model).where(model.user_id == user_id))

    def _rowcount(self, statement: Any) -> int:
        result = cast("CursorResult[Any]", self.store.execute(statement))
        return result.rowcount
