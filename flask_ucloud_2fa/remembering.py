"""Remembered browsers ("Remember this browser"): their cookie, and the facade's part of
them, a base class of :class:`~flask_ucloud_2fa.TwoFactor` (as :class:`~.hooks.Hooks` is), so
the facade stays one class. The rules are :mod:`.remember`'s; the JSON routes never remember
anything.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any

from flask import current_app
from flask import has_request_context
from flask import request
from flask.typing import ResponseReturnValue

from .browser import wants_html
from .config import Settings
from .config import app_state
from .data import LoginCompleted
from .data import RememberedBrowser
from .models import LOGIN
from .models import TwoFactorModels
from .remember import DAY
from .remember import Remember
from .remember import without_second_factor
from .remembered import RememberedRows

if TYPE_CHECKING:
    from .service import TwoFactorService
    from .store import Store

#: The cookie of a remembered browser: a random value whose SHA-256 the server keeps.
REMEMBER_COOKIE = "ucloud_2fa_remember"

LoginHook = Callable[[LoginCompleted], ResponseReturnValue]


def check_models(settings: Settings, models: TwoFactorModels) -> None:
    """:raises RuntimeError: browsers are to be remembered, and there is no model for them."""
    if settings.remember_days > 0 and models.RememberedBrowser is None:
        raise RuntimeError(
            "UCLOUD_2FA_REMEMBER_DAYS is set, but the app's own models have no"
            " RememberedBrowser: pass TwoFactorModels(..., RememberedBrowser=...), a subclass of"
            " RememberedBrowserMixin, or leave UCLOUD_2FA_REMEMBER_DAYS at 0."
        )


def _cookie() -> str | None:
    return request.cookies.get(REMEMBER_COOKIE) if has_request_context() else None


class BrowserMemory:
    """Remembering the browser of one login answer, when asked to: :meth:`wrap` makes the
    completion hook remember it in the transaction that spends the challenge, and
    :meth:`respond` gives the response its cookie.

    :param remember: the app's remembered browsers, or ``None`` not to remember.
    :param days: the cookie's lifetime.
    """

    def __init__(self, remember: Remember | None, days: int) -> None:
        self.remember = remember
        self.days = days
        self.value: str | None = None
        self.user_id: Any = None

    def wrap(self, hook: LoginHook) -> LoginHook:
        remember = self.remember
        if remember is None:
            return hook

        def completed(login: LoginCompleted) -> ResponseReturnValue:
            result = hook(login)
            agent = request.user_agent.string if has_request_context() else None
            self.value = remember.remember(login.user_id, login.methods, agent)
            self.user_id = login.user_id
            return result

        return completed

    def respond(self, result: ResponseReturnValue) -> ResponseReturnValue:
        """``result`` with the cookie of the browser remembered, if one was."""
        if self.value is None or self.remember is None:
            return result
        response = current_app.make_response(result)
        response.set_cookie(
            REMEMBER_COOKIE,
            self.value,
            max_age=self.days * DAY,
            path=request.script_root.rstrip("/") + "/",  # the app's login view, wherever it is
            secure=request.is_secure,
            httponly=True,
            samesite="Lax",
        )
        self.remember.emit("browser_remembered", self.user_id, "success", days=self.days)
        return response


class RememberedBrowsers:
    """The facade's remembered browsers (``UCLOUD_2FA_REMEMBER_DAYS``)."""

    models: TwoFactorModels
    clock: Callable[[], float]

    if TYPE_CHECKING:

        def _store(self) -> Store: ...
        def _service(self) -> TwoFactorService: ...
        def _emit(self, event: str, user_id: Any, outcome: str, **data: Any) -> None: ...
        def _run_login_completed(self, login: LoginCompleted) -> ResponseReturnValue: ...

    def remembered_browsers(self, user_id: Any) -> list[RememberedBrowser]:
        """The browsers whose logins skip the second factor for the user now, newest first,
        for a page where the user reviews and forgets them. The current request's browser is
        marked ``current``. Empty while ``UCLOUD_2FA_REMEMBER_DAYS`` is 0."""
        remember = self._remember()
        return [] if remember is None else remember.browsers(user_id, _cookie())

    def forget_browser(self, user_id: Any, browser_id: Any) -> bool:
        """Forget one remembered browser of the user: its next login asks for a code again.
        Sends ``browsers_forgotten``; whether it was a browser of the user's.

        :param browser_id: the ``id`` of a :class:`~flask_ucloud_2fa.RememberedBrowser`.
        :raises ValueError: ``browser_id`` is not a whole number.
        """
        remember = self._remember()
        return False if remember is None else remember.forget(user_id, browser_id)

    def forget_browsers(self, user_id: Any) -> int:
        """Forget every remembered browser of the user; call it when their password changes
        (disabling 2FA, an administrator's reset and a new setup do it themselves). Sends
        ``browsers_forgotten`` when there were any; how many there were."""
        remember = self._remember()
        return 0 if remember is None else remember.forget_all(user_id)

    def _remember(self) -> Remember | None:
        """The app's remembered browsers; ``None`` when its models have none."""
        if self.models.RememberedBrowser is None:
            return None
        days = app_state().settings.remember_days
        return Remember(RememberedRows(self._store()), days, self.clock, self._emit)

    def _memory(self, remember: bool) -> BrowserMemory:
        """What remembers the browser of a login answer, if ``remember`` and it is on."""
        memory = self._remember() if remember else None
        days = 0 if memory is None else memory.days
        return BrowserMemory(memory if days > 0 else None, days)

    def _remembered_login(
        self, user_id: Any, methods: list[str], state: dict[str, Any]
    ) -> ResponseReturnValue | None:
        """The completed login of a browser remembered for the user, without a challenge and
        with the first factor's ``methods`` alone (never ``otp``); ``None`` when this is no
        such browser."""
        value = _cookie()
        if value is None or not wants_html():
            return None
        remember = self._remember()
        if remember is None or not remember.recognise(user_id, value):
            return None
        service = self._service()
        methods = without_second_factor(methods)
        result = service.finish_login(user_id, methods, state, self._run_login_completed)
        response = current_app.make_response(result)
        response.headers["Cache-Control"] = "no-store"  # a completed login carries tokens
        self._emit("remembered_login", service.store.user_key(user_id), "success", kind=LOGIN)
        return response
