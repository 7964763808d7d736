"""The service layer: credentials and challenges, their transactions and their races.

Knows the database, not HTTP. Every rule that must hold across workers and hosts is a single
conditional statement, so the database, not process memory, decides who wins:

- a second setup replaces the pending secret by one ``INSERT ... ON CONFLICT DO UPDATE`` that
  refuses to touch a connected credential;
- a code's time step is spent by ``UPDATE ... WHERE last_used_step < :step`` (RFC 6238 5.2);
- a challenge is spent by ``DELETE ... WHERE id_hash = :id``, which only one answer can do;
- a wrong answer counts by ``UPDATE ... SET attempts = attempts + 1``.

Statements that lock take the credential row before the challenge row, in every path, so two
transactions never wait on each other in a cycle.
"""

from __future__ import annotations

import hashlib
import json
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Any
from typing import NoReturn
from typing import TypeVar
from typing import cast

from sqlalchemy import CursorResult
from sqlalchemy import Executable
from sqlalchemy import delete
from sqlalchemy import insert
from sqlalchemy import or_
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.dialects import postgresql
from sqlalchemy.dialects import sqlite
from sqlalchemy.orm import Session

from . import qr
from . import totp
from .errors import AlreadyConnected
from .errors import ChallengeNotFound
from .errors import InvalidCode
from .errors import TwoFactorError
from .errors import Unauthorized
from .models import LOGIN
from .models import SETUP
from .models import Models

T = TypeVar("T")

#: 256 bits from the CSPRNG, URL-safe base64 (43 characters).
CHALLENGE_ID_BYTES = 32


@dataclass(frozen=True)
class CreatedCredentials:
    """What ``POST /auth/2fa`` answers: UCloud's ``Create2FACredentialsResponse``."""

    otp_auth_uri: str
    qr_code_b64_data: str
    secret: str = field(repr=False)
    challenge_id: str = field(repr=False)


@dataclass(frozen=True)
class CompletedLogin:
    """A login whose factors all succeeded, handed to the ``login_completed`` hook.

    :param user_id: the id the login view passed to the login step, as text.
    :param methods: the authentication methods used, as OpenID Connect ``amr`` values:
        ``["pwd"]`` without 2FA, ``["pwd", "otp"]`` after a TOTP code.
    :param auth_time: when the last factor succeeded, in Unix seconds.
    :param state: the JSON-serialisable ``state`` the login view passed to the login step.
    """

    user_id: str
    methods: list[str]
    auth_time: int
    state: dict[str, Any]


def hash_challenge_id(challenge_id: str) -> str:
    """The stored form of a challenge id: its SHA-256, hex-encoded."""
    return hashlib.sha256(challenge_id.encode("utf-8")).hexdigest()


def _utc(timestamp: float) -> datetime:
    # Naive UTC: SQLite has no time zones, and both databases then compare the same values.
    return datetime.fromtimestamp(timestamp, timezone.utc).replace(tzinfo=None)


@dataclass
class ChallengeService:
    """Credentials and challenges of one app, on the integrator's session.

    :param session: the integrator's ``db.session``.
    :param models: the models bound to the integrator's ``db``.
    :param issuer: the issuer shown in authenticator apps.
    :param challenge_lifetime: seconds a challenge can be answered.
    :param max_attempts: wrong answers after which a challenge is burned.
    :param clock: the current time in Unix seconds.
    """

    session: Session
    models: Models
    issuer: str
    challenge_lifetime: int
    max_attempts: int
    clock: Callable[[], float]

    def is_connected(self, user_id: str) -> bool:
        """Whether ``user_id`` has a confirmed credential. One query."""
        credential = self.models.Credential
        connected = self.session.execute(
            select(credential.connected).where(credential.user_id == user_id)
        ).scalar_one_or_none()
        return bool(connected)

    def create_credentials(self, user_id: str, account_name: str) -> CreatedCredentials:
        """Start a setup: a new pending secret and the challenge that confirms it.

        A pending setup of the same user is replaced and its challenge dies.

        :raises AlreadyConnected: the user has a connected credential, which stays untouched.
        """
        now = self.clock()
        secret = totp.new_secret()
        uri = totp.otpauth_uri(secret, account_name, self.issuer)
        credential_id = self._store_pending_secret(user_id, secret, _utc(now))
        self.session.execute(
            delete(self.models.Challenge).where(
                self.models.Challenge.user_id == user_id, self.models.Challenge.kind == SETUP
            )
        )
        challenge_id = self._insert_challenge(SETUP, user_id, credential_id, now, None)
        self.session.commit()
        return CreatedCredentials(
            otp_auth_uri=uri,
            qr_code_b64_data=qr.qr_data_uri(uri),
            secret=secret,
            challenge_id=challenge_id,
        )

    def begin_login(self, user_id: str, methods: list[str], state: dict[str, Any]) -> str | None:
        """A login challenge for ``user_id``, or ``None`` when the user has no connected 2FA."""
        credential = self.models.Credential
        credential_id = self.session.execute(
            select(credential.id).where(
                credential.user_id == user_id, credential.connected.is_(True)
            )
        ).scalar_one_or_none()
        if credential_id is None:
            return None
        context = json.dumps({"methods": methods, "state": state})
        challenge_id = self._insert_challenge(LOGIN, user_id, credential_id, self.clock(), context)
        self.session.commit()
        return challenge_id

    def answer(
        self,
        challenge_id: str,
        code: str,
        *,
        token_user_id: str | None,
        missing_token: TwoFactorError | None,
        complete_login: Callable[[CompletedLogin], T],
    ) -> T | None:
        """Answer a challenge with a six-digit ``code``.

        A setup challenge needs the bearer token of its own user (``token_user_id``); on success
        the credential becomes connected and ``None`` is returned. A login challenge needs no
        token; on success ``complete_login`` runs inside the transaction that spends the
        challenge, so it runs exactly once, and its result is returned.

        :raises ChallengeNotFound: unknown, expired, spent or burned challenge, or another
            user's setup challenge.
        :raises InvalidCode: wrong or already used code; the challenge survives until its
            attempt limit.
        :raises TwoFactorError: ``missing_token`` (or :class:`Unauthorized`) for a setup
            challenge answered without a token.
        """
        now = self.clock()
        id_hash = hash_challenge_id(challenge_id)
        challenge, credential = self.models.Challenge, self.models.Credential
        row = self.session.execute(
            select(
                challenge.kind,
                challenge.user_id,
                challenge.credential_id,
                challenge.expires_at,
                challenge.login_context,
                credential.secret,
            )
            .join(credential, credential.id == challenge.credential_id)
            .where(challenge.id_hash == id_hash)
        ).one_or_none()
        if row is None or row.expires_at <= _utc(now):
            raise ChallengeNotFound()
        if row.kind == SETUP:
            if token_user_id is None:
                raise missing_token or Unauthorized()
            if token_user_id != row.user_id:
                # Another user's challenge is, to this user, a challenge that does not exist.
                raise ChallengeNotFound()

        step = totp.matching_step(row.secret, code, now)
        if step is None or not self._spend_step(row.kind, row.credential_id, step, now):
            self.session.rollback()
            self._count_failure(id_hash, now)
        spent = self._rowcount(
            delete(challenge).where(challenge.id_hash == id_hash, challenge.expires_at > _utc(now))
        )
        if spent != 1:
            self.session.rollback()
            raise ChallengeNotFound()
        if row.kind == SETUP:
            self.session.commit()
            return None
        context = json.loads(row.login_context or "{}")
        login = CompletedLogin(
            user_id=row.user_id,
            methods=[*context.get("methods", []), "otp"],
            auth_time=int(now),
            state=context.get("state", {}),
        )
        try:
            result = complete_login(login)
        except BaseException:
            self.session.rollback()
            raise
        self.session.commit()
        return result

    def _store_pending_secret(self, user_id: str, secret: str, now: datetime) -> int:
        """Insert or replace the user's pending secret; the credential row's id.

        :raises AlreadyConnected: the credential is connected; nothing was changed.
        """
        table = self.models.Credential.__table__  # type: ignore[attr-defined]
        dialect = self.session.get_bind(mapper=self.models.Credential).dialect.name
        dialects: dict[str, Any] = {"postgresql": postgresql.insert, "sqlite": sqlite.insert}
        if dialect not in dialects:
            raise RuntimeError(
                f"Flask-UCloud-2FA supports PostgreSQL and SQLite, not {dialect!r}: its setup"
                " relies on INSERT ... ON CONFLICT DO UPDATE to stay race-free."
            )
        insert = dialects[dialect](table).values(
            user_id=user_id, secret=secret, connected=False, created_at=now
        )
        statement = insert.on_conflict_do_update(
            index_elements=[table.c.user_id],
            set_={"secret": secret, "created_at": now, "last_used_step": None},
            where=table.c.connected.is_(False),
        ).returning(table.c.id)
        credential_id = self.session.execute(statement).scalar_one_or_none()
        if credential_id is None:
            self.session.rollback()
            raise AlreadyConnected()
        return int(credential_id)

    def _insert_challenge(
        self, kind: str, user_id: str, credential_id: int, now: float, context: str | None
    ) -> str:
        """Store a new challenge, clearing expired ones (an index range, no table scan)."""
        challenge = self.models.Challenge
        self.session.execute(delete(challenge).where(challenge.expires_at <= _utc(now)))
        challenge_id = secrets.token_urlsafe(CHALLENGE_ID_BYTES)
        self.session.execute(
            insert(challenge).values(
                id_hash=hash_challenge_id(challenge_id),
                kind=kind,
                user_id=user_id,
                credential_id=credential_id,
                expires_at=_utc(now) + timedelta(seconds=self.challenge_lifetime),
                attempts=0,
                login_context=context,
            )
        )
        return challenge_id

    def _spend_step(self, kind: str, credential_id: int, step: int, now: float) -> bool:
        """Mark ``step`` used on the credential, connecting it for a setup; whether it was new."""
        credential = self.models.Credential
        values: dict[str, Any] = {"last_used_step": step}
        if kind == SETUP:
            values.update(connected=True, connected_at=_utc(now))
        return 1 == self._rowcount(
            update(credential)
            .where(
                credential.id == credential_id,
                credential.connected.is_(kind == LOGIN),
                or_(credential.last_used_step.is_(None), credential.last_used_step < step),
            )
            .values(**values)
        )

    def _rowcount(self, statement: Executable) -> int:
        """Run an UPDATE or DELETE; how many rows it matched."""
        result = cast("CursorResult[Any]", self.session.execute(statement))
        return result.rowcount

    def _count_failure(self, id_hash: str, now: float) -> NoReturn:
        """Count a wrong answer; burn the challenge at the limit. Always raises."""
        challenge = self.models.Challenge
        attempts = self.session.execute(
            update(challenge)
            .where(challenge.id_hash == id_hash, challenge.expires_at > _utc(now))
            .values(attempts=challenge.attempts + 1)
            .returning(challenge.attempts)
        ).scalar_one_or_none()
        if attempts is None:
            self.session.rollback()
            raise ChallengeNotFound()
        remaining = max(self.max_attempts - attempts, 0)
        if remaining == 0:
            self.session.execute(delete(challenge).where(challenge.id_hash == id_hash))
        self.session.commit()
        if remaining == 0:
            raise InvalidCode(
                "Invalid 2FA code. No attempts are left on this challenge: start again.",
                remainingAttempts=0,
            )
        raise InvalidCode(remainingAttempts=remaining)
