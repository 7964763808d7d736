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
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import TypeVar

from . import qr
from . import totp
from .catalogues import N_
from .crypto import SecretBox
from .crypto import sha256_hex
from .data import CreatedCredentials
from .data import LoginCompleted
from .data import SetupConfirmed
from .errors import AlreadyConnected
from .errors import ChallengeNotFound
from .errors import InvalidRequest
from .errors import NotConnected
from .limits import Emit
from .limits import Limits
from .limits import WrongAnswer
from .limits import count_failure
from .models import LOGIN
from .models import SETUP
from .proofs import Proof
from .proofs import is_challenge_id
from .recovery import new_recovery_code
from .store import Store
from .store import utc

T = TypeVar("T")


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
        setup_recovery_codes: bool = False,
    ) -> T | SetupConfirmed:
        """Answer a challenge: a setup one connects the credential (a :class:`SetupConfirmed`),
        a login one runs ``login_completed`` inside the transaction that spends the challenge,
        so it runs exactly once, and returns what it returns.

        :param kind: ``"setup"`` or ``"login"``: any other challenge is, to this call, unknown;
            ``None`` answers either.
        :param setup_user: asked for the answering user's id, only for a setup challenge (so
            a login answer costs no token lookup); only that user's challenge is answered.
        :param browser_binding: the secret of the browser a login challenge began in.
        :param setup_recovery_codes: a setup also makes the first recovery codes, in the
            transaction that connects the credential.
        :raises ChallengeNotFound: unknown, expired, spent or burned challenge, another
            user's setup challenge, or a browser's challenge answered without its binding.
        :raises InvalidCode: wrong or already used code; the challenge survives until its
            attempt limit. For a setup, with ``clock_drift_seconds`` when the code is that of
            a time step up to ten minutes away.
        :raises TooManyAttempts: the user is backing off or locked out; nothing was checked.
        :raises InvalidRequest: a recovery code for a setup challenge.
        """
        now = self.clock()
        if not is_challenge_id(challenge_id):
            raise ChallengeNotFound()
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
                raise InvalidRequest(
                    N_("A setup is confirmed with a verificationCode from the app.")
                )

        def complete(method: str) -> T | SetupConfirmed:
            if not self.store.spend_challenge(challenge_id, now):
                raise ChallengeNotFound()
            if setup:
                codes = self._new_recovery_codes(row) if setup_recovery_codes else []
                return SetupConfirmed(recovery_codes=codes)
            context = json.loads(row.login_context or "{}")
            rc = ["rc"] if method == "recovery_code" else []
            login = LoginCompleted(
                user_id=row.user_id,
                methods=[*context.get("methods", []), "otp", *rc],
                auth_time=int(now),
                state=context.get("state", {}),
            )
            return login_completed(login)

        result, method = self._spend(row, proof, now, complete, setup, challenge_id)
        self._emit_passed(row.user_id, row.kind, method)
        if isinstance(result, SetupConfirmed):
            self.emit("connected", row.user_id, "success")
            if result.recovery_codes:
                count = len(result.recovery_codes)
                self.emit(
                    "recovery_codes_generated", row.user_id, "success", kind=SETUP, count=count
                )
        return result

    # -- recovery codes and disabling -------------------------------------------------------

    def regenerate_recovery_codes(self, user_id: Any, proof: Proof) -> list[str]:
        """New recovery codes for a connected user who proves the second factor; the earlier
        codes stop working. The codes are returned once and stored only hashed.

        :raises NotConnected: the user has no connected credential.
        """
        row = self._connected(user_id)
        codes, _ = self._spend(row, proof, self.clock(), lambda _: self._new_recovery_codes(row))
        self.emit("recovery_codes_generated", row.user_id, "success", count=len(codes))
        return codes

    def _new_recovery_codes(self, row: Any) -> list[str]:
        """Replace the recovery codes of the credential in ``row`` (in the caller's
        transaction) with new ones, stored only hashed; the new codes."""
        codes = [new_recovery_code() for _ in range(self.recovery_code_count)]
        hashes = [self.box.keyed_hash(code.replace("-", "")) for code in codes]
        self.store.replace_recovery_codes(row.credential_id, hashes)
        return codes

    def disable(self, user_id: Any, proof: Proof) -> None:
        """Remove a connected user's 2FA, on a second-factor proof.

        :raises NotConnected: the user has no connected credential.
        """
        row = self._connected(user_id)
        self._spend(row, proof, self.clock(), lambda _: self.store.delete_user(row.user_id))
        self.emit("disabled", row.user_id, "success")

    # -- proofs and limits ------------------------------------------------------------------

    def _connected(self, user_id: Any) -> Any:
        row = self.store.connected_credential(self.store.user_key(user_id))
        if row is None:
            raise NotConnected()
        return row

    def _spend(
        self,
        row: Any,
        proof: Proof,
        now: float,
        then: Callable[[str], T],
        connecting: bool = False,
        challenge_id: str | None = None,
    ) -> tuple[T, str]:
        """In one transaction: spend ``proof`` against the credential in ``row`` (with
        ``user_id``, ``credential_id`` and ``encrypted_secret``), then do ``then(method)``; what
        it returns, and the method used (``"otp"`` or ``"recovery_code"``).

        Whether the answer is looked at at all (back-off, lock-out) is decided by the same
        statement that records it, under the credential's lock, so parallel answers of one
        user are admitted one at a time, as one client answering in turn would be.

        :raises InvalidCode: a wrong proof, counted against the user (and the challenge); the
            count is committed.
        :raises TooManyAttempts: the answer was not admitted; nothing was changed, and the
            answer says nothing of the proof.
        """
        wrong: WrongAnswer | None = None
        with self.store.transaction():
            method = self._spend_proof(row, proof, now, connecting)
            if method is None:
                wrong = count_failure(self.store, self.limits, row, now, challenge_id, self.emit)
            else:
                result = then(method)
        if wrong is not None:
            if connecting and proof.code is not None:
                wrong.clock_drift_seconds = self._clock_drift(row, proof.code, now)
            self.emit("challenge_failed", row.user_id, "failure", failures=wrong.failures)
            if wrong.locked_out:
                self.emit("locked_out", row.user_id, "failure", failures=wrong.failures)
            raise wrong
        return result, method  # type: ignore[return-value]

    def _spend_proof(self, row: Any, proof: Proof, now: float, connecting: bool) -> str | None:
        """The method of a proof that matched and was spent, or ``None``."""
        store, horizon = self.store, self.limits.horizon(now)
        if proof.code is not None:
            step = totp.matching_step(self.box.decrypt(row.encrypted_secret), proof.code, now)
            if step is None:
                # The same round trip a right code makes, so that an answer refused while the
                # user is locked out takes as long for a right code as for a wrong one.
                store.admit(row.credential_id, now, horizon)
            elif store.spend_step(row.credential_id, step, now, horizon, connecting=connecting):
                return "otp"
        elif (
            proof.recovery_code is not None
            and store.admit(row.credential_id, now, horizon)
            and store.spend_recovery_code(
                row.credential_id, self.box.keyed_hashes(proof.recovery_code)
            )
        ):
            return "recovery_code"
        return None

    def _clock_drift(self, row: Any, code: str, now: float) -> int | None:
        """How far off the clock of the device that showed the refused setup ``code`` seems
        to be, in seconds, or ``None``. Told only at setup, to the user who was just shown the
        secret: at a login it would tell a guesser that a guess is close."""
        steps = totp.drift_steps(self.box.decrypt(row.encrypted_secret), code, now)
        if steps is None or abs(steps) <= totp.VALID_WINDOW:  # within the window: not drift
            return None
        return steps * totp.PERIOD

    def _emit_passed(self, user_id: Any, kind: str, method: str) -> None:
        self.emit("challenge_passed", user_id, "success", kind=kind, method=method)
        if method == "recovery_code":
            self.emit("recovery_code_used", user_id, "success", kind=kind)
