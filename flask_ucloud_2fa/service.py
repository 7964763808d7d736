"""The service: setup, the login step, answers and the limits policy. Rules, no HTTP.

Every rule that must hold across workers and hosts is a single conditional statement of the
store, so the database, not process memory, decides who wins:

- a second setup replaces the pending secret by one ``INSERT ... ON CONFLICT DO UPDATE`` that
  refuses to touch a connected credential;
- a code's time step is spent by ``UPDATE ... WHERE last_used_step < :step`` (RFC 6238 5.2);
- a recovery code is spent by ``DELETE ... WHERE code_hash IN (...)``;
- a challenge is spent by ``DELETE ... WHERE id_hash = :id``, which only one answer can do;
- a wrong answer counts by ``UPDATE ... SET failures = failures + 1`` (per user) and
  ``attempts = attempts + 1`` (per challenge).
"""

from __future__ import annotations

import hmac
import json
import math
from collections.abc import Callable
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from typing import NoReturn
from typing import Protocol
from typing import TypeVar

from . import qr
from . import totp
from .crypto import SecretBox
from .crypto import sha256_hex
from .data import CreatedCredentials
from .data import LoginCompleted
from .errors import AlreadyConnected
from .errors import ChallengeNotFound
from .errors import InvalidCode
from .errors import InvalidRequest
from .errors import LockedOut
from .errors import NotConnected
from .errors import TooManyAttempts
from .models import LOGIN
from .models import SETUP
from .proofs import Proof
from .recovery import new_recovery_code
from .store import Store
from .store import utc

T = TypeVar("T")


class Emit(Protocol):
    """Reports a decision: a signal and an audit record (see :mod:`.signals`)."""

    def __call__(self, event: str, user_id: Any, outcome: str, **data: Any) -> None: ...


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


class _Rejected(Exception):
    """A proof that did not match: counted as a failure outside the transaction."""


@dataclass
class TwoFactorService:
    """Setup, login and answers of one app, on the store.

    :param store: the app's rows.
    :param box: encrypts secrets and hashes recovery codes.
    :param issuer: the issuer shown in authenticator apps.
    :param challenge_lifetime: seconds a challenge can be answered.
    :param limits: attempt limits, back-off and lock-out.
    :param recovery_code_count: recovery codes made at a time.
    :param clock: the current time in Unix seconds.
    :param emit: reports every decision (signal and audit record).
    """

    store: Store
    box: SecretBox
    issuer: str
    challenge_lifetime: int
    limits: Limits
    recovery_code_count: int
    clock: Callable[[], float]
    emit: Emit

    # -- setup --------------------------------------------------------------------------------

    def start_setup(self, user_id: Any, account_name: str) -> CreatedCredentials:
        """A new pending secret and the setup challenge that confirms it. A pending setup of
        the same user is replaced and its challenge dies.

        :raises AlreadyConnected: the user has a connected credential, which stays untouched.
        """
        now, store = self.clock(), self.store
        user_id = store.user_key(user_id)
        secret = totp.new_secret()
        uri = totp.otpauth_uri(secret, account_name, self.issuer)
        with store.transaction():
            credential_id = store.store_pending_secret(user_id, self.box.encrypt(secret), now)
            if credential_id is None:
                raise AlreadyConnected()
            store.delete_setup_challenges(user_id)
            challenge_id = store.insert_challenge(
                kind=SETUP,
                user_id=user_id,
                credential_id=credential_id,
                now=now,
                lifetime=self.challenge_lifetime,
            )
        self.emit("setup_started", user_id, "success")
        return CreatedCredentials(
            otp_auth_uri=uri,
            qr_code_b64_data=qr.qr_data_uri(uri),
            secret=secret,
            challenge_id=challenge_id,
        )

    # -- the login step ---------------------------------------------------------------------

    def begin_login(
        self,
        user_id: Any,
        methods: list[str],
        state: dict[str, Any],
        browser_binding: str | None = None,
    ) -> str | None:
        """A login challenge for ``user_id``, or ``None`` when the user has no connected 2FA.

        :param browser_binding: a secret kept in the browser's cookie; the challenge can then
            only be answered with it.
        """
        store = self.store
        credential = store.connected_credential(store.user_key(user_id))
        if credential is None:
            return None
        with store.transaction():
            return store.insert_challenge(
                kind=LOGIN,
                user_id=credential.user_id,
                credential_id=credential.credential_id,
                now=self.clock(),
                lifetime=self.challenge_lifetime,
                login_context=json.dumps({"methods": methods, "state": state}),
                browser_binding=browser_binding,
            )

    def finish_login(
        self,
        user_id: Any,
        methods: list[str],
        state: dict[str, Any],
        login_completed: Callable[[LoginCompleted], T],
    ) -> T:
        """Complete the login of a user without 2FA: run the ``login_completed`` hook in a
        transaction and commit what it added (a token row) once. If it raises, nothing is
        kept."""
        login = LoginCompleted(
            user_id=self.store.user_key(user_id),
            methods=list(methods),
            auth_time=int(self.clock()),
            state=state,
        )
        with self.store.transaction():
            return login_completed(login)

    # -- answers ----------------------------------------------------------------------------

    def answer(
        self,
        challenge_id: str,
        proof: Proof,
        *,
        kind: str | None,
        setup_user: Callable[[], Any] | None,
        login_completed: Callable[[LoginCompleted], T],
        browser_binding: str | None = None,
    ) -> T | None:
        """Answer a challenge: a setup one connects the credential (``None``), a login one
        runs ``login_completed`` inside the transaction that spends the challenge, so it runs
        exactly once, and returns what it returns.

        :param kind: ``"setup"`` or ``"login"``: any other challenge is, to this call, unknown;
            ``None`` answers either.
        :param setup_user: asked for the answering user's id, only for a setup challenge (so
            a login answer costs no token lookup); only that user's challenge is answered.
        :param browser_binding: the secret of the browser a login challenge began in.
        :raises ChallengeNotFound: unknown, expired, spent or burned challenge, another
            user's setup challenge, or a browser's challenge answered without its binding.
        :raises InvalidCode: wrong or already used code; the challenge survives until its
            attempt limit.
        :raises TooManyAttempts: the user is backing off or locked out; nothing was checked.
        :raises InvalidRequest: a recovery code for a setup challenge.
        """
        now = self.clock()
        row = self.store.answer_row(challenge_id)
        if row is None or row.expires_at <= utc(now) or kind not in (None, row.kind):
            raise ChallengeNotFound()
        # A challenge begun in a browser is answered only with that browser's secret: a
        # challenge id seen in a log is not enough, nor is an attacker's own challenge
        # submitted from the victim's browser (login CSRF).
        if row.browser_binding is not None and not hmac.compare_digest(
            row.browser_binding, sha256_hex(browser_binding or "")
        ):
            raise ChallengeNotFound()
        setup = row.kind == SETUP
        if setup:
            if setup_user is None or self.store.user_key(setup_user()) != row.user_id:
                # Another user's challenge is, to this user, a challenge that does not exist.
                raise ChallengeNotFound()
            if proof.recovery_code is not None:
                raise InvalidRequest("A setup is confirmed with a verificationCode from the app.")
        result: T | None = None
        with self._spending(row, proof, now, connecting=setup, challenge_id=challenge_id) as (
            method
        ):
            if not self.store.spend_challenge(challenge_id, now):
                raise ChallengeNotFound()
            if not setup:
                context = json.loads(row.login_context or "{}")
                login = LoginCompleted(
                    user_id=row.user_id,
                    methods=[*context.get("methods", []), "otp"],
                    auth_time=int(now),
                    state=context.get("state", {}),
                )
                result = login_completed(login)
        self._emit_passed(row.user_id, row.kind, method)
        if setup:
            self.emit("connected", row.user_id, "success")
        return result

    # -- recovery codes and disabling -------------------------------------------------------

    def regenerate_recovery_codes(self, user_id: Any, proof: Proof) -> list[str]:
        """New recovery codes for a connected user who proves the second factor; the earlier
        codes stop working. The codes are returned once and stored only hashed.

        :raises NotConnected: the user has no connected credential.
        """
        row = self._connected(user_id)
        codes = [new_recovery_code() for _ in range(self.recovery_code_count)]
        with self._spending(row, proof, self.clock()):
            self.store.replace_recovery_codes(
                row.credential_id, [self.box.keyed_hash(code.replace("-", "")) for code in codes]
            )
        self.emit("recovery_codes_generated", row.user_id, "success", count=len(codes))
        return codes

    def disable(self, user_id: Any, proof: Proof) -> None:
        """Remove a connected user's 2FA, on a second-factor proof.

        :raises NotConnected: the user has no connected credential.
        """
        row = self._connected(user_id)
        with self._spending(row, proof, self.clock()):
            self.store.delete_user(row.user_id)
        self.emit("disabled", row.user_id, "success")

    # -- proofs and limits ------------------------------------------------------------------

    def _connected(self, user_id: Any) -> Any:
        row = self.store.connected_credential(self.store.user_key(user_id))
        if row is None:
            raise NotConnected()
        return row

    @contextmanager
    def _spending(
        self,
        row: Any,
        proof: Proof,
        now: float,
        *,
        connecting: bool = False,
        challenge_id: str | None = None,
    ) -> Iterator[str]:
        """A transaction that spends ``proof`` against the credential in ``row`` and yields
        the method used (``"otp"`` or ``"recovery_code"``), then does the block's work and
        commits both together.

        ``row`` has ``user_id``, ``credential_id``, ``encrypted_secret``, ``failures`` and
        ``blocked_until``. A wrong proof is rolled back, then counted against the user (and
        the challenge, if given) in a transaction of its own, and :class:`InvalidCode` raised.
        """
        self._refuse_while_blocked(row, now)
        try:
            with self.store.transaction():
                method = self._spend_proof(row, proof, now, connecting)
                yield method
        except _Rejected:
            self._count_failure(row.user_id, row.credential_id, now, challenge_id)

    def _spend_proof(self, row: Any, proof: Proof, now: float, connecting: bool) -> str:
        """:raises _Rejected: the proof does not match, or its time step was used."""
        store = self.store
        if proof.code is not None:
            step = totp.matching_step(self.box.decrypt(row.encrypted_secret), proof.code, now)
            if step is not None and store.spend_step(
                row.credential_id, step, now, connecting=connecting
            ):
                return "otp"
        elif proof.recovery_code is not None and store.spend_recovery_code(
            row.credential_id, self.box.keyed_hashes(proof.recovery_code)
        ):
            return "recovery_code"
        raise _Rejected()

    def _refuse_while_blocked(self, row: Any, now: float) -> None:
        """:raises TooManyAttempts: the user is backing off or locked out."""
        if row.blocked_until is None or row.blocked_until <= utc(now):
            return
        retry_after = max(1, math.ceil((row.blocked_until - utc(now)).total_seconds()))
        self.emit("challenge_failed", row.user_id, "blocked", retry_after=retry_after)
        if row.failures >= self.limits.lockout_after:
            raise LockedOut(retry_after)
        raise TooManyAttempts(retry_after)

    def _count_failure(
        self, user_id: Any, credential_id: int, now: float, challenge_id: str | None
    ) -> NoReturn:
        """Count a wrong answer for the user and the challenge; burn the challenge at its
        limit, back off or lock out the user. Always raises."""
        store = self.store
        remaining: int | None = None
        with store.transaction():
            failures = store.count_failure(credential_id)
            if failures is None:  # reset or disabled meanwhile
                raise ChallengeNotFound() if challenge_id else NotConnected()
            delay = self.limits.delay(failures)
            if delay:
                store.block_until(credential_id, now + delay)
            if challenge_id is not None:
                attempts = store.count_attempt(challenge_id, now)
                if attempts is None:
                    raise ChallengeNotFound()
                remaining = max(self.limits.max_attempts - attempts, 0)
                if remaining == 0:  # burned
                    store.spend_challenge(challenge_id, now)
        self.emit("challenge_failed", user_id, "failure", failures=failures)
        if failures == self.limits.lockout_after:
            self.emit("locked_out", user_id, "failure", failures=failures)
        raise InvalidCode(remaining_attempts=remaining, retry_after=delay or None)

    def _emit_passed(self, user_id: Any, kind: str, method: str) -> None:
        self.emit("challenge_passed", user_id, "success", kind=kind, method=method)
        if method == "recovery_code":
            self.emit("recovery_code_used", user_id, "success", kind=kind)
