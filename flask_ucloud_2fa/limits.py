"""The limits policy: which answers are looked at, and what a wrong one costs.

Per user, consecutive failures back off (doubling, capped), and a budget of failures locks
out: each failure is forgiven ``UCLOUD_2FA_LOCKOUT_DURATION`` seconds after the one before it
(the generic cell rate algorithm, one ``forgiven_at`` column), and a right answer forgives none,
so in any span of ``T`` seconds at most ``LOCKOUT_AFTER + T / LOCKOUT_DURATION`` codes are
checked, however the user's own logins interleave. Per challenge, ``MAX_ATTEMPTS`` wrong
answers burn it. Whether an answer is admitted is part of the statement that records it (see
:mod:`.store`), under the credential's lock.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any
from typing import NoReturn
from typing import Protocol

from .errors import ChallengeNotFound
from .errors import InvalidCode
from .errors import LockedOut
from .errors import NotConnected
from .errors import TooManyAttempts
from .store import Store
from .store import utc


class Emit(Protocol):
    """Reports a decision: a signal and an audit record (see :mod:`.signals`)."""

    def __call__(self, event: str, user_id: Any, outcome: str, **data: Any) -> None: ...


@dataclass(frozen=True)
class Limits:
    """How wrong answers are limited.

    :param max_attempts: wrong answers after which one challenge is burned.
    :param backoff_after: consecutive failures of a user before answers are slowed down; a
        right answer starts the count again.
    :param backoff_max: the longest wait between answers, in seconds.
    :param lockout_after: unforgiven failures after which the user is locked out. A right
        answer forgives none: one failure is forgiven per ``lockout_duration``.
    :param lockout_duration: seconds after which one failure is forgiven, so a locked-out user
        gets one more answer per ``lockout_duration``, unless an administrator resets them.
    """

    max_attempts: int = 5
    backoff_after: int = 5
    backoff_max: int = 60
    lockout_after: int = 100
    lockout_duration: int = 3600

    def delay(self, failures: int) -> int:
        """The back-off after ``failures`` consecutive failures, in seconds: doubling, capped."""
        if failures < self.backoff_after:
            return 0
        return min(int(2 ** (failures - self.backoff_after)), self.backoff_max)

    def horizon(self, now: float) -> int:
        """The latest ``forgiven_at`` at which an answer is admitted at ``now``: while at most
        ``lockout_after - 1`` failures are unforgiven (the budget), in Unix seconds."""
        return int(now) + (self.lockout_after - 1) * self.lockout_duration


def count_failure(
    store: Store, limits: Limits, row: Any, now: float, challenge_id: str | None, emit: Emit
) -> WrongAnswer:
    """Count a wrong answer for the user and the challenge, if it is admitted; burn the
    challenge at its limit, back off the user.

    :returns: the error to raise once the count is committed.
    :raises TooManyAttempts: the answer is not admitted (back-off or lock-out).
    :raises ChallengeNotFound: the challenge (or the credential) is gone.
    :raises NotConnected: the credential is gone (no challenge was answered).
    """
    horizon = limits.horizon(now)
    counted = store.count_failure(row.credential_id, now, horizon, limits.lockout_duration)
    if counted is None:
        refuse(store, limits, row, now, emit, challenge_id)
    failures, forgiven_at = counted
    delay = limits.delay(failures)
    if delay:
        store.block_until(row.credential_id, now + delay)
    remaining: int | None = None
    if challenge_id is not None:
        attempts = store.count_attempt(challenge_id, now)
        if attempts is None:
            raise ChallengeNotFound()
        remaining = max(limits.max_attempts - attempts, 0)
        if remaining == 0:  # burned
            store.spend_challenge(challenge_id, now)
    # The next answer waits for the back-off, or for the budget to forgive one failure.
    locked_out = forgiven_at > horizon
    wait = max(delay, forgiven_at - horizon)
    return WrongAnswer(
        failures, locked_out, remaining_attempts=remaining, retry_after=wait or None
    )


def refuse(
    store: Store, limits: Limits, row: Any, now: float, emit: Emit, challenge_id: str | None
) -> NoReturn:
    """Why an answer was not admitted.

    :raises TooManyAttempts: backing off; :class:`LockedOut` with the budget spent.
    :raises ChallengeNotFound: the credential is gone (reset or disabled meanwhile), for an
        answer to a challenge; :class:`NotConnected` for any other proof.
    """
    state = store.limits_row(row.credential_id)
    if state is None:
        raise ChallengeNotFound() if challenge_id else NotConnected()
    backoff = 0.0
    if state.blocked_until is not None:
        backoff = (state.blocked_until - utc(now)).total_seconds()
    lockout = (state.forgiven_at or 0) - limits.horizon(now)
    retry_after = max(1, math.ceil(max(backoff, lockout)))
    emit("challenge_failed", row.user_id, "blocked", retry_after=retry_after)
    if lockout > 0:
        raise LockedOut(retry_after)
    raise TooManyAttempts(retry_after)


class WrongAnswer(InvalidCode):
    """:class:`InvalidCode` with what it counted, for the signals: the consecutive failures,
    and whether the lock-out budget is now spent."""

    def __init__(self, failures: int, locked_out: bool, **details: Any) -> None:
        super().__init__(**details)
        self.failures = failures
        self.locked_out = locked_out
