"""Remembered browsers ("Remember this browser", ``UCLOUD_2FA_REMEMBER_DAYS``): the rules.
No HTTP.

- A browser is remembered only after a right TOTP code, never a recovery code: a recovery
  code is for a lost phone, and should not turn into days without any second factor.
- The browser keeps a random value (256 bits) in a cookie; the row keeps its SHA-256, the user
  and the credential the code was checked against.
- A login of that user from that browser skips the challenge while the row has not expired,
  was made less than ``UCLOUD_2FA_REMEMBER_DAYS`` ago (so lowering the setting takes effect at
  once) and its credential is still the user's connected one. Its ``amr`` has no ``otp``.
- Disabling 2FA, an administrator's reset and a new setup delete the user's rows; so does
  the integrator's call on a password change (:meth:`Remember.forget_all`).
"""

from __future__ import annotations

import hmac
import re
import secrets
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import TypeGuard

from .crypto import sha256_hex
from .data import RememberedBrowser
from .limits import Emit
from .remembered import RememberedRows
from .store import utc

#: Seconds in a day.
DAY = 24 * 60 * 60
#: 256 bits from the CSPRNG, URL-safe base64 (43 characters).
COOKIE_VALUE_BYTES = 32
_COOKIE_VALUE = re.compile(r"[A-Za-z0-9_-]{43}")

#: ``User-Agent`` markers, the first match naming the browser and its system.
_BROWSERS = (
    ("Edg/", "Edge"),
    ("OPR/", "Opera"),
    ("Firefox/", "Firefox"),
    ("Chrome/", "Chrome"),
    ("Safari/", "Safari"),
)
_SYSTEMS = (
    ("Android", "Android"),
    ("iPhone", "iOS"),
    ("iPad", "iOS"),
    ("Windows", "Windows"),
    ("Mac OS X", "macOS"),
    ("CrOS", "ChromeOS"),
    ("Linux", "Linux"),
)


def describe_user_agent(user_agent: str | None) -> str | None:
    """A short name of the browser for its user's list, like ``"Firefox on Linux"``, or
    ``None`` when the ``User-Agent`` names no browser or system it knows. Only this summary is
    stored, never the whole header."""
    text = user_agent or ""
    browser = next((name for marker, name in _BROWSERS if marker in text), None)
    system = next((name for marker, name in _SYSTEMS if marker in text), None)
    if browser and system:
        return f"{browser} on {system}"
    return browser or system


def without_second_factor(methods: list[str]) -> list[str]:
    """The ``amr`` of a login a remembered browser skipped the challenge of: the first factor's
    methods, without any of the second factor's (``otp``, ``rc``) a caller may have put there."""
    return [method for method in methods if method not in ("otp", "rc")]


@dataclass
class Remember:
    """The remembered browsers of one app.

    :param rows: their rows.
    :param days: ``UCLOUD_2FA_REMEMBER_DAYS``; 0 remembers and recognises no browser.
    :param clock: the current time in Unix seconds.
    :param emit: reports each decision (signal and audit record).
    """

    rows: RememberedRows
    days: int
    clock: Callable[[], float]
    emit: Emit

    def remember(self, user_id: Any, methods: list[str], user_agent: str | None) -> str | None:
        """Remember a browser of ``user_id`` after a login with ``methods``, in the caller's
        transaction (the one that spends the login challenge); the cookie's value, or ``None``
        when nothing is remembered: remembering is off, the login used a recovery code, or the
        user has no connected credential."""
        if self.days <= 0 or "otp" not in methods or "rc" in methods:
            return None
        store = self.rows.store
        credential = store.connected_credential(store.user_key(user_id))
        if credential is None:
            return None
        value = secrets.token_urlsafe(COOKIE_VALUE_BYTES)
        now = self.clock()
        self.rows.insert(
            token_hash=sha256_hex(value),
            user_id=credential.user_id,
            credential_id=credential.credential_id,
            now=utc(now),
            expires_at=utc(now + self.days * DAY),
            user_agent=describe_user_agent(user_agent),
        )
        return value

    def recognise(self, user_id: Any, value: str | None) -> bool:
        """Whether the browser with the cookie ``value`` is remembered for ``user_id`` now; a
        yes is recorded as the row's last use."""
        if self.days <= 0 or not _is_cookie_value(value):
            return False
        now, store = self.clock(), self.rows.store
        with store.transaction():
            return self.rows.use(
                sha256_hex(value), store.user_key(user_id), utc(now), self._oldest(now)
            )

    def browsers(self, user_id: Any, value: str | None) -> list[RememberedBrowser]:
        """The browsers remembered for ``user_id`` now, newest first; ``value`` is the current
        request's cookie, which marks its browser as ``current``."""
        now, store = self.clock(), self.rows.store
        current = sha256_hex(value) if _is_cookie_value(value) else ""
        return [
            RememberedBrowser(
                id=row.id,
                created_at=row.created_at,
                expires_at=row.expires_at,
                last_used_at=row.last_used_at,
                user_agent=row.user_agent,
                current=hmac.compare_digest(row.token_hash, current),
            )
            for row in self.rows.of_user(store.user_key(user_id), utc(now), self._oldest(now))
        ]

    def forget(self, user_id: Any, browser_id: Any) -> bool:
        """Forget one browser of ``user_id``; whether it was theirs.

        :raises ValueError: ``browser_id`` is not a whole number.
        """
        try:
            number = int(browser_id)
        except (TypeError, ValueError):
            raise ValueError(f"{browser_id!r} is not the id of a remembered browser.") from None
        store = self.rows.store
        user_id = store.user_key(user_id)
        if not 0 < number < 2**31:  # no row has it, and PostgreSQL's integer holds no more
            return False
        with store.transaction():
            forgotten = self.rows.delete(user_id, number)
        if forgotten:
            self.emit("browsers_forgotten", user_id, "success", count=1)
        return forgotten

    def forget_all(self, user_id: Any) -> int:
        """Forget every browser of ``user_id``; how many there were."""
        store = self.rows.store
        user_id = store.user_key(user_id)
        with store.transaction():
            forgotten = self.rows.delete_user(user_id)
        if forgotten:
            self.emit("browsers_forgotten", user_id, "success", count=forgotten)
        return forgotten

    def _oldest(self, now: float) -> Any:
        return utc(now - self.days * DAY)


def _is_cookie_value(value: object) -> TypeGuard[str]:
    return isinstance(value, str) and _COOKIE_VALUE.fullmatch(value) is not None
