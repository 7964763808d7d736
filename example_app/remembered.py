"""The settings page's remembered browsers: the ones whose logins skip the code ("Remember
this browser" on the challenge page, ``UCLOUD_2FA_REMEMBER_DAYS``), listed with a button to
forget each, or all.

Forgetting needs only the session: it takes away a shortcut, so even a session whose login
skipped the code may do it. The login page's ``prompt=login`` (asking for a login again, to
use the second factor) ignores the remembered browser: see :func:`.pages.login`.
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint
from flask import Response
from flask import current_app
from flask import flash
from flask import redirect
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_login import current_user
from flask_login import login_required

from flask_ucloud_2fa import RememberedBrowser

from .pages import csrf_problem
from .ucloud_2fa import two_factor

remembered = Blueprint("remembered", __name__)


@remembered.before_request
def _check_csrf() -> Response | None:
    return csrf_problem()


@remembered.app_context_processor
def _template_helpers() -> dict[str, Any]:
    return {"remembered_browsers": _remembered_browsers, "remember_days": _remember_days}


def _remembered_browsers() -> list[RememberedBrowser]:
    """The logged-in user's remembered browsers, for the settings page."""
    return two_factor.remembered_browsers(current_user.id)


def _remember_days() -> int:
    return int(current_app.config["UCLOUD_2FA_REMEMBER_DAYS"])


@remembered.post("/settings/browsers/<int:browser_id>/forget")
@login_required
def forget(browser_id: int) -> ResponseReturnValue:
    """Forget one remembered browser of the user: its next login asks for a code."""
    if two_factor.forget_browser(current_user.id, browser_id):
        flash(_("That browser is forgotten: its next login asks for a code."), "notice")
    else:
        flash(_("That browser was already forgotten."), "notice")
    return redirect(url_for("pages.settings"))


@remembered.post("/settings/browsers/forget")
@login_required
def forget_all() -> ResponseReturnValue:
    """Forget every remembered browser of the user."""
    two_factor.forget_browsers(current_user.id)
    flash(_("Every remembered browser is forgotten: their next logins ask for a code."), "notice")
    return redirect(url_for("pages.settings"))
