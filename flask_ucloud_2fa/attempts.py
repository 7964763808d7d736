"""The password-attempt limits: the second factor's back-off and budget, for the first factor.

An attempt is reserved before the password is checked: one short transaction charges a failure
to each of three keys, and only if every one of them admits an attempt now, so parallel
attempts are admitted one at a time by the database and a burst gets no more guesses than a
sequence. A right password refunds its charge (:meth:`PasswordAttempt.succeeded`); a wrong one
leaves it. The keys:

- **the user from this address**: consecutive failures back off as the second factor's do
  (``UCLOUD_2FA_BACKOFF_AFTER``, doubling up to ``UCLOUD_2FA_BACKOFF_MAX``), and a right
  password ends the back-off. Someone guessing from elsewhere never slows the user down;
- **the address**, whatever user it names: a budget of failures
  (``UCLOUD_2FA_LOGIN_ADDRESS_BUDGET``), one forgiven every
  ``UCLOUD_2FA_LOGIN_ADDRESS_FORGIVE`` seconds, against guessing and password spraying;
- **the user**, from any address: a larger budget (``UCLOUD_2FA_LOGIN_USER_BUDGET``, one
  forgiven every ``UCLOUD_2FA_LOGIN_USER_FORGIVE`` seconds), against guessing spread over
  many addresses. It throttles and never locks out: once it is spent, one attempt is admitted
  per forgiven failure, and spending it takes many addresses, each within its own budget.

IPv6 addresses count by their /64 network, which one host usually has to itself. Keys are
stored as SHA-256 hashes, so the table names no user and no address.
"""

from __future__ import annotations

import ipaddress
import math
from collections.abc import Callable
from dataclasses import dataclass

from .catalogues import N_
from .counters import Counters
from .crypto import sha256_hex
from .errors import TooManyAttempts
from .store import transaction

#: What a refused attempt is told, beside ``Retry-After``.
TOO_MANY_LOGINS = N_("Too many login attempts. Wait before trying again.")

#: A horizon no ``forgiven_at`` reaches: a key without a budget.
_UNBOUNDED = 2**62


@dataclass(frozen=True)
class Rule:
    """How failures under one kind of key are limited.

    :param period: seconds after which one failure is forgiven.
    :param budget: unforgiven failures after which attempts wait for one to be forgiven, or
        ``None`` for no budget.
    :param backoff_after: consecutive failures after which attempts back off, or ``None``.
    :param backoff_max: the longest back-off, in seconds.
    """

    period: int
    budget: int | None = None
    backoff_after: int | None = None
    backoff_max: int = 0

    def horizon(self, now: int) -> int:
        """The latest ``forgiven_at`` at which an attempt is admitted at ``now``."""
        if self.budget is None:
            return _UNBOUNDED
        return now + (self.budget - 1) * self.period

    def delay(self, failures: int) -> int:
        """The back-off after ``failures`` consecutive failures: doubling, capped."""
        if self.backoff_after is None or failures < self.backoff_after:
            return 0
        return min(int(2 ** (failures - self.backoff_after)), self.backoff_max)


@dataclass(frozen=True)
class PasswordLimits:
    """The three rules of password attempts (see the module's text)."""

    user_at_address: Rule
    address: Rule
    user: Rule

    @classmethod
    def of(
        cls,
        *,
        backoff_after: int,
        backoff_max: int,
        address_budget: int,
        address_forgive: int,
        user_budget: int,
        user_forgive: int,
    ) -> PasswordLimits:
        """The rules from the settings. The pair's failures are forgiven after the longest
        back-off each, so its row empties, and its consecutive count starts again, only after a
        quiet spell at least that long per failure."""
        return cls(
            user_at_address=Rule(
                period=backoff_max, backoff_after=backoff_after, backoff_max=backoff_max
            ),
            address=Rule(period=address_forgive, budget=address_budget),
            user=Rule(period=user_forgive, budget=user_budget),
        )

    def keys(self, username: str, address: str | None) -> list[tuple[str, Rule]]:
        """The hashed keys of an attempt and their rules, in the order rows are locked (by
        hash, the same in every transaction, so parallel attempts never wait in a cycle)."""
        network = _network(address)
        keyed = [
            (f"password user\0{username}\0{network}", self.user_at_address),
            (f"password address\0{network}", self.address),
            (f"password user\0{username}", self.user),
        ]
        return sorted((sha256_hex(key), rule) for key, rule in keyed)


def _network(address: str | None) -> str:
    """The client an address stands for: itself, an IPv6 address's /64, or ``unknown``."""
    try:
        ip = ipaddress.ip_address((address or "").strip())
    except ValueError:
        return "unknown"
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


class PasswordAttempt:
    """A reserved password attempt: counted as a failure until :meth:`succeeded` says the
    password was right. Returned by
    :meth:`~flask_ucloud_2fa.TwoFactor.limit_password_attempt`."""

    def __init__(self, counters: Counters, keys: list[tuple[str, Rule]]) -> None:
        self._counters = counters
        self._keys = keys
        self._refunded = False

    def succeeded(self) -> None:
        """The password was right: refund the charge, and end the back-off of the user at
        this address. Earlier failures stay counted in the budgets. Once per attempt."""
        if self._refunded:
            return
        self._refunded = True
        with transaction(self._counters.session):
            for key_hash, rule in self._keys:
                self._counters.refund(
                    key_hash, rule.period, clear_backoff=rule.backoff_after is not None
                )


def reserve(
    counters: Counters,
    limits: PasswordLimits,
    username: str,
    address: str | None,
    clock: Callable[[], float],
) -> PasswordAttempt:
    """Charge one failed attempt to each key of ``username`` at ``address``, if every key
    admits one now, in one transaction, which then removes a batch of empty rows.

    :raises TooManyAttempts: a key does not admit an attempt now (nothing is charged); its
        ``retry_after`` says when one will be.
    """
    now = math.floor(clock())
    keys = limits.keys(username, address)
    with transaction(counters.session):
        admitted = all(_charge(counters, key_hash, rule, now) for key_hash, rule in keys)
        if admitted:
            # Last: it waits for no row, so no charge ever waits for a transaction that waits.
            counters.delete_empty(now)
        else:
            counters.session.rollback()
    if not admitted:
        raise TooManyAttempts(_retry_after(counters, keys, now), TOO_MANY_LOGINS)
    return PasswordAttempt(counters, keys)


def _charge(counters: Counters, key_hash: str, rule: Rule, now: int) -> bool:
    counted = counters.charge(key_hash, now, rule.period, rule.horizon(now))
    if counted is None:
        return False
    delay = rule.delay(counted[0])
    if delay:
        counters.block(key_hash, now + delay)
    return True


def _retry_after(counters: Counters, keys: list[tuple[str, Rule]], now: int) -> int:
    """Seconds until every key admits an attempt again, at least one."""
    rows = counters.rows([key_hash for key_hash, _ in keys])
    wait = 1
    for key_hash, rule in keys:
        row = rows.get(key_hash)
        if row is None:
            continue
        wait = max(wait, (row.blocked_until or 0) - now, row.forgiven_at - rule.horizon(now))
    return wait
