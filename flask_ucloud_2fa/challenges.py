"""The service layer: credentials, challenges, proofs and limits, their transactions and races.

Knows the database, not HTTP. Every rule that must hold across workers and hosts is a single
conditional statement, so the database, not process memory, decides who wins:

- a second setup replaces the pending secret by one ``INSERT ... ON CONFLICT DO UPDATE`` that
  refuses to touch a connected credential;
- a code's time step is spent by ``UPDATE ... WHERE last_used_step < :step`` (RFC 6238 5.2);
- a recovery code is spent by ``DELETE ... WHERE code_hash IN (...)``;
- a challenge is spent by ``DELETE ... WHERE id_hash = :id``, which only one answer can do;
- a wrong answer counts by ``UPDATE ... SET failures = failures + 1`` (per user) and
  ``attempts = attempts + 1`` (per challenge).

Statements that lock take the credential row before any challenge or recovery-code row, in
every path, so two transactions never wait on each other in a cycle.
"""

from __future__ import annotations

import functools
import hashlib
import hmac
import json
import math
import secrets
from collections.abc import Callable
from collections.abc import Iterator
from dataclasses import dataclass
from dataclasses import field
from datetime import datetime
from datetime import timedelta
from datetime import timezone
from typing import Any
from typing import NoReturn
from typing import Protocol
from typing import TypeVar
from typing import cast

from sqlalchemy import CursorResult
from sqlalchemy import Executable
from sqlalchemy import delete
from sqlalchemy import func
from sqlalchemy import insert
from sqlalchemy import select
from sqlalchemy import update
from sqlalchemy.orm import Session

from . import qr
from . import totp
from .crypto import SecretBox
from .errors import AlreadyConnected
from .errors import BadRequest
from .errors import ChallengeNotFound
from .errors import InvalidCode
from .errors import LockedOut
from .errors import NotConnected
from .errors import TooManyAttempts
from .errors import Unauthorized
from .models import LOGIN
from .models import SETUP
from .models import Models
from .recovery import new_recovery_code
from .statements import Statements

T = TypeVar("T")

#: 256 bits from the CSPRNG, URL-safe base64 (43 characters).
CHALLENGE_ID_BYTES = 32
#: Credentials re-encrypted per transaction by :meth:`ChallengeService.rotate_keys`.
ROTATION_BATCH = 1000


class Emit(Protocol):
    """Reports a decision: a signal and an audit record (see :mod:`.signals`)."""

    def __call__(self, event: str, user_id: str, outcome: str, **data: Any) -> None: ...


@dataclass(frozen=True)
class Proof:
    """A second-factor proof: a six-digit TOTP code or a canonical recovery code."""

    code: str | None = field(default=None, repr=False)
    recovery_code: str | None = field(default=None, repr=False)


@dataclass(frozen=True)
class Limits:
    """How wrong answers are limited.

    :param max_attempts: wrong answers after which one challenge is burned.
    :param backoff_after: consecutive failures of a user before answers are slowed down.
    :param backoff_max: the longest wait between answers, in seconds.
    :param lockout_after: consecutive failures after which the user is locked out.
    :param lockout_duration: seconds a lock-out lasts, unless an administrator resets it.
    """

    max_attempts: int = 5
    backoff_after: int = 5
    backoff_max: int = 60
    lockout_after: int = 100
    lockout_duration: int = 3600

    def delay(self, failures: int) -> int:
        """Seconds to wait after ``failures`` consecutive failures: doubling, capped."""
        if failures >= self.lockout_after:
            return self.lockout_duration
        if failures < self.backoff_after:
            return 0
        return min(int(2 ** (failures - self.backoff_after)), self.backoff_max)


@dataclass(frozen=True)
class CreatedCredentials:
    """What ``POST /auth/2fa`` answers: UCloud's ``Create2FACredentialsResponse``."""

    otp_auth_uri: str = field(repr=False)
    qr_code_b64_data: str = field(repr=False)
    secret: str = field(repr=False)
    challenge_id: str = field(repr=False)


@dataclass(frozen=True)
class CompletedLogin:
    """A login whose factors all succeeded, handed to the ``login_completed`` hook.

    :param user_id: the id the login view passed to the login step, as text.
    :param methods: the authentication methods used, as OpenID Connect ``amr`` values:
        ``["pwd"]`` without 2FA, ``["pwd", "otp"]`` after a TOTP or recovery code.
    :param auth_time: when the last factor succeeded, in Unix seconds.
    :param state: the JSON-serialisable ``state`` the login view passed to the login step.
    """

    user_id: str
    methods: list[str]
    auth_time: int
    state: dict[str, Any]


@dataclass(frozen=True)
class CredentialStatus:
    """An administrator's view of a user's 2FA, without the secret."""

    user_id: str
    connected: bool
    created_at: datetime
    connected_at: datetime | None
    failures: int
    blocked_until: datetime | None
    recovery_codes_left: int
    pending_challenges: int


def _sha256(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()


def hash_challenge_id(challenge_id: str) -> str:
    """The stored form of a challenge id: its SHA-256, hex-encoded."""
    return _sha256(challenge_id)


def _utc(timestamp: float) -> datetime:
    # Naive UTC: SQLite has no time zones, and both databases then compare the same values.
    return datetime.fromtimestamp(timestamp, timezone.utc).replace(tzinfo=None)


@dataclass
class ChallengeService:
    """Credentials and challenges of one app, on the integrator's session.

    :param session: the integrator's ``db.session``.
    :param models: the models bound to the integrator's ``db``.
    :param box: encrypts secrets and hashes recovery codes.
    :param issuer: the issuer shown in authenticator apps.
    :param challenge_lifetime: seconds a challenge can be answered.
    :param limits: attempt limits, back-off and lock-out.
    :param recovery_code_count: recovery codes made at a time.
    :param clock: the current time in Unix seconds.
    :param emit: reports every decision (signal and audit record).
    """

    session: Session
    models: Models
    box: SecretBox
    issuer: str
    challenge_lifetime: int
    limits: Limits
    recovery_code_count: int
    clock: Callable[[], float]
    emit: Emit

    @functools.cached_property
    def statements(self) -> Statements:
        """The prebuilt statements for these models on the session's database.

        :raises RuntimeError: a database other than PostgreSQL or SQLite.
        """
        bind = self.session.get_bind(mapper=self.models.Credential)
        return Statements.of(self.models, bind.dialect.name)

    # -- status and setup ---------------------------------------------------------------

    def is_connected(self, user_id: str) -> bool:
        """Whether ``user_id`` has a confirmed credential. One query."""
        connected = self.session.execute(
            self.statements.is_connected, {"user_id": user_id}
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
        credential_id = self._store_pending_secret(user_id, self.box.encrypt(secret), _utc(now))
        self.session.execute(self.statements.delete_setup_challenges, {"user_id": user_id})
        challenge_id = self._insert_challenge(SETUP, user_id, credential_id, now, None)
        self.session.commit()
        self.emit("setup_started", user_id, "success")
        return CreatedCredentials(
            otp_auth_uri=uri,
            qr_code_b64_data=qr.qr_data_uri(uri),
            secret=secret,
            challenge_id=challenge_id,
        )

    # -- the login step -------------------------------------------------------------------

    def begin_login(
        self,
        user_id: str,
        methods: list[str],
        state: dict[str, Any],
        browser_binding: str | None = None,
    ) -> str | None:
        """A login challenge for ``user_id``, or ``None`` when the user has no connected 2FA.

        :param browser_binding: a secret kept in the browser's cookie; the challenge can then
            only be answered with it (see :meth:`answer`).
        """
        credential = self.models.Credential
        credential_id = self.session.execute(
            select(credential.id).where(
                credential.user_id == user_id, credential.connected.is_(True)
            )
        ).scalar_one_or_none()
        if credential_id is None:
            return None
        context = json.dumps({"methods": methods, "state": state})
        challenge_id = self._insert_challenge(
            LOGIN, user_id, credential_id, self.clock(), context, browser_binding
        )
        self.session.commit()
        return challenge_id

    def answer(
        self,
        challenge_id: str,
        proof: Proof,
        *,
        setup_user: Callable[[], str] | None = None,
        complete_login: Callable[[CompletedLogin], T] | None = None,
        browser_binding: str | None = None,
        kind: str | None = None,
    ) -> T | None:
        """Answer a challenge with a TOTP code, or a login challenge with a recovery code.

        A setup challenge is answered only by its own user: ``setup_user`` returns the id of the
        user answering (the views read it from the bearer token, and raise when there is none),
        and is called only for a setup challenge, so a login answer costs no token lookup. On
        success the credential becomes connected and ``None`` is returned. A login challenge
        needs no token; on success ``complete_login`` runs inside the transaction that spends
        the challenge, so it runs exactly once, and its result is returned.

        :raises ChallengeNotFound: unknown, expired, spent or burned challenge, or another
            user's setup challenge.
        :raises InvalidCode: wrong or already used code; the challenge survives until its
            attempt limit.
        :raises TooManyAttempts: the user is backing off or locked out; nothing was checked.
        :raises TwoFactorError: what ``setup_user`` raises, or :class:`Unauthorized` without
            it, for a setup challenge.

        ``kind`` (``"setup"`` or ``"login"``) restricts which challenges this call may answer:
        any other is, to it, unknown. ``complete_login`` is needed for login challenges.

        A challenge begun in a browser is answered only with that browser's
        ``browser_binding``: a challenge id seen in a log or a Referer, or an attacker's own
        challenge submitted from the victim's browser (login CSRF), is not enough.
        """
        now = self.clock()
        id_hash = hash_challenge_id(challenge_id)
        statements = self.statements
        row = self.session.execute(statements.answer_row, {"id_hash": id_hash}).one_or_none()
        if row is None or row.expires_at <= _utc(now) or kind not in (None, row.kind):
            raise ChallengeNotFound()
        if row.browser_binding is not None and not hmac.compare_digest(
            row.browser_binding, _sha256(browser_binding or "")
        ):
            raise ChallengeNotFound()
        if row.kind == SETUP:
            if setup_user is None:
                raise Unauthorized()
            if setup_user() != row.user_id:
                # Another user's challenge is, to this user, a challenge that does not exist.
                raise ChallengeNotFound()
            if proof.recovery_code is not None:
                raise BadRequest("A setup is confirmed with a verificationCode from the app.")

        method = self._spend_proof(
            row, proof, now, connecting=row.kind == SETUP, challenge_hash=id_hash
        )
        spent = self._rowcount(statements.spend_challenge, {"id_hash": id_hash, "now": _utc(now)})
        if spent != 1:
            self.session.rollback()
            raise ChallengeNotFound()
        if row.kind == SETUP:
            self.session.commit()
            self._emit_passed(row.user_id, SETUP, method)
            self.emit("connected", row.user_id, "success")
            return None
        context = json.loads(row.login_context or "{}")
        login = CompletedLogin(
            user_id=row.user_id,
            methods=[*context.get("methods", []), "otp"],
            auth_time=int(now),
            state=context.get("state", {}),
        )
        if complete_login is None:
            self.session.rollback()  # nothing spent: the challenge stays answerable
            raise RuntimeError("Answering a login challenge needs complete_login.")
        result = self.finish_login(login, complete_login)
        self._emit_passed(row.user_id, LOGIN, method)
        return result

    def finish_login(
        self, login: CompletedLogin, complete_login: Callable[[CompletedLogin], T]
    ) -> T:
        """Run ``complete_login`` inside the current transaction, then commit once.

        What the hook adds to the session (a token, a session row) is committed together with
        the spent challenge and time step: either the login is finished and its proof spent, or
        neither. If the hook raises, nothing is spent and the challenge stays answerable.
        """
        try:
            result = complete_login(login)
        except BaseException:
            self.session.rollback()
            raise
        self.session.commit()
        return result

    # -- recovery codes, disabling, administration ------------------------------------------

    def regenerate_recovery_codes(self, user_id: str, proof: Proof) -> list[str]:
        """New recovery codes for a connected user who proves the second factor.

        The earlier codes stop working. The codes are returned once and stored only hashed.

        :raises NotConnected: the user has no connected credential.
        """
        row = self._connected_credential(user_id)
        self._spend_proof(row, proof, self.clock(), connecting=False)
        recovery = self.models.RecoveryCode
        self.session.execute(delete(recovery).where(recovery.credential_id == row.credential_id))
        codes = [new_recovery_code() for _ in range(self.recovery_code_count)]
        self.session.execute(
            insert(recovery),
            [
                {"credential_id": row.credential_id, "code_hash": self._recovery_hash(code)}
                for code in codes
            ],
        )
        self.session.commit()
        self.emit("recovery_codes_generated", user_id, "success", count=len(codes))
        return codes

    def disable(self, user_id: str, proof: Proof) -> None:
        """Remove a connected user's 2FA, on a second-factor proof.

        :raises NotConnected: the user has no connected credential.
        """
        row = self._connected_credential(user_id)
        self._spend_proof(row, proof, self.clock(), connecting=False)
        self._delete_user_rows(user_id)
        self.session.commit()
        self.emit("disabled", user_id, "success")

    def reset(self, user_id: str) -> bool:
        """An administrator's reset: nothing of the user's credential, challenges or recovery
        codes survives, nor any back-off. Whether there was anything to remove."""
        removed = self._delete_user_rows(user_id)
        self.session.commit()
        if removed:
            self.emit("reset", user_id, "success")
        return removed

    def credential_status(self, user_id: str) -> CredentialStatus | None:
        """The user's 2FA as an administrator sees it, or ``None`` without a credential."""
        credential, challenge = self.models.Credential, self.models.Challenge
        recovery = self.models.RecoveryCode
        row = self.session.execute(
            select(credential).where(credential.user_id == user_id)
        ).scalar_one_or_none()
        if row is None:
            return None
        codes = self.session.execute(
            select(func.count()).where(recovery.credential_id == row.id)
        ).scalar_one()
        challenges = self.session.execute(
            select(func.count()).where(
                challenge.user_id == user_id, challenge.expires_at > _utc(self.clock())
            )
        ).scalar_one()
        return CredentialStatus(
            user_id=user_id,
            connected=row.connected,
            created_at=row.created_at,
            connected_at=row.connected_at,
            failures=row.failures,
            blocked_until=row.blocked_until,
            recovery_codes_left=codes,
            pending_challenges=challenges,
        )

    def rotate_keys(self) -> int:
        """Re-encrypt every secret under the newest key; how many were re-encrypted."""
        credential = self.models.Credential
        rotated = 0
        for batch in self._credential_batches():
            for credential_id, encrypted in batch:
                self.session.execute(
                    update(credential)
                    .where(credential.id == credential_id)
                    .values(encrypted_secret=self.box.rotate(encrypted))
                )
            self.session.commit()
            rotated += len(batch)
        return rotated

    # -- proofs and limits ------------------------------------------------------------------

    def _spend_proof(
        self,
        row: Any,
        proof: Proof,
        now: float,
        *,
        connecting: bool,
        challenge_hash: str | None = None,
    ) -> str:
        """Check and spend a proof against the credential in ``row``; the method used.

        ``row`` has ``user_id``, ``credential_id``, ``encrypted_secret``, ``failures`` and
        ``blocked_until``. On failure the transaction is rolled back, the failure counted
        (against the challenge too, if one is given), and :class:`InvalidCode` raised.
        """
        self._refuse_while_blocked(row, now)
        if proof.code is not None:
            step = totp.matching_step(self.box.decrypt(row.encrypted_secret), proof.code, now)
            if step is not None and self._spend_step(row.credential_id, step, now, connecting):
                return "otp"
        elif proof.recovery_code is not None and self._spend_recovery_code(
            row.credential_id, proof.recovery_code
        ):
            return "recovery_code"
        self.session.rollback()
        self._count_failure(row.user_id, row.credential_id, now, challenge_hash)

    def _refuse_while_blocked(self, row: Any, now: float) -> None:
        """:raises TooManyAttempts: the user is backing off or locked out."""
        if row.blocked_until is None or row.blocked_until <= _utc(now):
            return
        retry_after = max(1, math.ceil((row.blocked_until - _utc(now)).total_seconds()))
        self.emit("challenge_failed", row.user_id, "blocked", retry_after=retry_after)
        if row.failures >= self.limits.lockout_after:
            raise LockedOut(retry_after)
        raise TooManyAttempts(retry_after)

    def _spend_step(self, credential_id: int, step: int, now: float, connecting: bool) -> bool:
        """Mark ``step`` used on the credential (connecting it for a setup) and clear its
        failures; whether the step was new."""
        statements = self.statements
        return 1 == self._rowcount(
            statements.connect_step if connecting else statements.spend_step,
            {"credential_id": credential_id, "step": step, "now": _utc(now)},
        )

    def _spend_recovery_code(self, credential_id: int, code: str) -> bool:
        """Delete the matching recovery code, clearing the credential's failures; whether one
        matched."""
        credential, recovery = self.models.Credential, self.models.RecoveryCode
        # The credential row first, as everywhere, then the code.
        self.session.execute(
            update(credential)
            .where(credential.id == credential_id, credential.connected.is_(True))
            .values(failures=0, blocked_until=None)
        )
        return 1 == self._rowcount(
            delete(recovery).where(
                recovery.credential_id == credential_id,
                recovery.code_hash.in_(self.box.keyed_hashes(code)),
            )
        )

    def _count_failure(
        self, user_id: str, credential_id: int, now: float, challenge_hash: str | None
    ) -> NoReturn:
        """Count a wrong answer for the user and the challenge; burn the challenge at its
        limit, back off or lock out the user. Always raises."""
        statements = self.statements
        failures = self.session.execute(
            statements.count_failure, {"credential_id": credential_id}
        ).scalar_one_or_none()
        if failures is None:  # reset or disabled meanwhile
            self.session.rollback()
            raise ChallengeNotFound() if challenge_hash else NotConnected()
        delay = self.limits.delay(failures)
        if delay:
            self.session.execute(
                statements.block_until,
                {
                    "credential_id": credential_id,
                    "until": _utc(now) + timedelta(seconds=delay),
                },
            )
        extra: dict[str, Any] = {"retryAfter": delay} if delay else {}
        if challenge_hash is not None:
            attempts = self.session.execute(
                statements.count_attempt, {"challenge_hash": challenge_hash, "now": _utc(now)}
            ).scalar_one_or_none()
            if attempts is None:
                self.session.rollback()
                raise ChallengeNotFound()
            extra["remainingAttempts"] = max(self.limits.max_attempts - attempts, 0)
            if extra["remainingAttempts"] == 0:  # burned
                self.session.execute(
                    statements.spend_challenge, {"id_hash": challenge_hash, "now": _utc(now)}
                )
        self.session.commit()
        self.emit("challenge_failed", user_id, "failure", failures=failures)
        if failures == self.limits.lockout_after:
            self.emit("locked_out", user_id, "failure", failures=failures)
        why = None
        if extra.get("remainingAttempts") == 0:
            why = "Invalid 2FA code. No attempts are left on this challenge: start again."
        wrong = InvalidCode(why, **extra)
        if delay:  # the next answer waits: say so the standard way too
            wrong.headers["Retry-After"] = str(delay)
        raise wrong

    # -- storage helpers ------------------------------------------------------------------

    def _connected_credential(self, user_id: str) -> Any:
        credential = self.models.Credential
        row = self.session.execute(
            select(
                credential.user_id,
                credential.id.label("credential_id"),
                credential.encrypted_secret,
                credential.failures,
                credential.blocked_until,
            ).where(credential.user_id == user_id, credential.connected.is_(True))
        ).one_or_none()
        if row is None:
            raise NotConnected()
        return row

    def _store_pending_secret(self, user_id: str, encrypted: str, now: datetime) -> int:
        """Insert or replace the user's pending secret; the credential row's id.

        :raises AlreadyConnected: the credential is connected; nothing was changed.
        """
        credential_id = self.session.execute(
            self.statements.store_pending_secret,
            {"user_id": user_id, "encrypted_secret": encrypted, "created_at": now},
        ).scalar_one_or_none()
        if credential_id is None:
            self.session.rollback()
            raise AlreadyConnected()
        return int(credential_id)

    def _insert_challenge(
        self,
        kind: str,
        user_id: str,
        credential_id: int,
        now: float,
        context: str | None,
        browser_binding: str | None = None,
    ) -> str:
        """Store a new challenge, clearing a batch of expired ones (an index range, no table
        scan)."""
        self.session.execute(self.statements.delete_expired_challenges, {"now": _utc(now)})
        challenge_id = secrets.token_urlsafe(CHALLENGE_ID_BYTES)
        self.session.execute(
            self.statements.insert_challenge,
            {
                "id_hash": hash_challenge_id(challenge_id),
                "kind": kind,
                "user_id": user_id,
                "credential_id": credential_id,
                "expires_at": _utc(now) + timedelta(seconds=self.challenge_lifetime),
                "attempts": 0,
                "login_context": context,
                "browser_binding": None if browser_binding is None else _sha256(browser_binding),
            },
        )
        return challenge_id

    def _delete_user_rows(self, user_id: str) -> bool:
        """Delete the user's credential with its challenges and recovery codes (explicitly:
        SQLite enforces no ``ON DELETE CASCADE`` by default); whether a credential existed."""
        credential, challenge = self.models.Credential, self.models.Challenge
        recovery = self.models.RecoveryCode
        ids = select(credential.id).where(credential.user_id == user_id).scalar_subquery()
        self.session.execute(delete(recovery).where(recovery.credential_id.in_(ids)))
        self.session.execute(delete(challenge).where(challenge.user_id == user_id))
        return 1 == self._rowcount(delete(credential).where(credential.user_id == user_id))

    def _credential_batches(self) -> Iterator[list[tuple[int, str]]]:
        credential = self.models.Credential
        last_id = 0
        while True:
            batch = [
                (row.id, row.encrypted_secret)
                for row in self.session.execute(
                    select(credential.id, credential.encrypted_secret)
                    .where(credential.id > last_id)
                    .order_by(credential.id)
                    .limit(ROTATION_BATCH)
                )
            ]
            if not batch:
                return
            yield batch
            last_id = batch[-1][0]

    def _recovery_hash(self, code: str) -> str:
        # Stored in the canonical form that answers are normalised to.
        return self.box.keyed_hash(code.replace("-", ""))

    def _emit_passed(self, user_id: str, kind: str, method: str) -> None:
        self.emit("challenge_passed", user_id, "success", kind=kind, method=method)
        if method == "recovery_code":
            self.emit("recovery_code_used", user_id, "success", kind=kind)

    def _rowcount(self, statement: Executable, parameters: dict[str, Any] | None = None) -> int:
        """Run an UPDATE or DELETE; how many rows it matched."""
        result = cast("CursorResult[Any]", self.session.execute(statement, parameters))
        return result.rowcount
