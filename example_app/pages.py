"""Server-rendered pages for people: log in, set up 2FA, log out.

Who is logged in is Flask-Login's ``current_user``; the login itself is made in one place,
:func:`.session.log_in`, after every factor succeeded. Every state-changing form here carries a
per-session CSRF token (:func:`csrf_token`), checked before any view runs.

``GET /login?prompt=login`` asks a logged-in browser to log in again without logging it out
(the authorization server's ``prompt=login`` and ``max_age`` lead here): the session stays as
it is until the new login, through the 2FA login step, replaces it.

For a user with 2FA, making new recovery codes and turning 2FA off need a session whose login
used the second factor (``"otp"`` in its ``amr``), beside the code the form asks for: a
session from before 2FA was turned on, or an attacker's session from a stolen password, cannot
lock the user out. Such a session gets the settings page again with a 403 and a link to log in
again with a code; it stays logged in.
"""

from __future__ import annotations

import hmac
import secrets
from typing import Any

from flask import Blueprint
from flask import Response
from flask import flash
from flask import redirect
from flask import render_template
from flask import request
from flask import session
from flask import url_for
from flask.typing import ResponseReturnValue
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user
from flask_login import login_required

from flask_ucloud_2fa import AlreadyConnected
from flask_ucloud_2fa import ChallengeNotFound
from flask_ucloud_2fa import InvalidCode
from flask_ucloud_2fa import TooManyAttempts
from flask_ucloud_2fa import TwoFactorError
from flask_ucloud_2fa import localized_why
from flask_ucloud_2fa import proof_from_form

from .enrolment import clock_drift_hint
from .enrolment import recovery_codes_page
from .passwords import authenticate
from .session import current_login
from .session import local_path
from .session import log_out
from .ucloud_2fa import two_factor

pages = Blueprint("pages", __name__)

#: The session key and the form field of the CSRF token.
CSRF_KEY = "csrf_token"
#: Longer than any challenge id the extension makes; bounds the work per request.
MAX_CHALLENGE_ID_LENGTH = 128

SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
SECURITY_HEADERS = {
    # Secrets, QR codes, recovery codes and CSRF tokens must not sit in caches.
    "Cache-Control": "no-store",
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": (
        "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'none';"
        " object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
    ),
}


# -- CSRF ------------------------------------------------------------------------------------


def csrf_token() -> str:
    """The session's CSRF token, made on first use; put it in every form that posts."""
    token = session.get(CSRF_KEY)
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        session[CSRF_KEY] = token
    return token


def csrf_problem() -> Response | None:
    """A 400 page when a state-changing request lacks the session's CSRF token, else ``None``.

    Other blueprints of the app can call it from their own ``before_request``.
    """
    if request.method in SAFE_METHODS:
        return None
    expected = session.get(CSRF_KEY)
    sent = request.form.get(CSRF_KEY, "")
    if isinstance(expected, str) and hmac.compare_digest(
        sent.encode("utf-8"), expected.encode("utf-8")
    ):
        return None
    return error_page(
        _(
            "This form has expired or did not come from this site. Go back, reload the page"
            " and try again."
        ),
        400,
    )


@pages.before_request
def _check_csrf() -> Response | None:
    return csrf_problem()


@pages.app_context_processor
def _template_helpers() -> dict[str, Any]:
    # Not named csrf_token: the extension's challenge template has a variable of that name.
    return {"form_csrf_token": csrf_token}


@pages.after_request
def _security_headers(response: Response) -> Response:
    for name, value in SECURITY_HEADERS.items():
        response.headers.setdefault(name, value)
    return response


# -- log in, log out ---------------------------------------------------------------------------


@pages.get("/")
def index() -> ResponseReturnValue:
    return redirect(url_for("pages.settings"))


@pages.route("/login", methods=["GET", "POST"])
def login() -> ResponseReturnValue:
    """The password form; a correct password goes through the extension's login step, which
    asks users with 2FA for a code before the login is made."""
    next_url = local_path(request.form.get("next") or request.args.get("next"))
    if request.method == "GET":
        if not current_user.is_authenticated:
            return _login_page(next_url)
        if request.args.get("prompt") == "login":  # asked to log in again: ask, keep the session
            return _login_page(next_url, current_user.username, notice=_LOG_IN_AGAIN)
        return redirect(next_url or url_for("pages.settings"))
    username = request.form.get("username", "")
    password = request.form.get("password", "")
    if not username or not password:
        return _login_page(next_url, username, _("Enter your username and password."), 400)
    try:
        user_id = authenticate(username, password)
    except TooManyAttempts as refused:
        response = _login_page(next_url, username, localized_why(refused), 429)
        response.headers["Retry-After"] = str(refused.retry_after)
        return response
    if user_id is None:
        return _login_page(next_url, username, _("Incorrect username or password."), 401)
    if current_user.is_authenticated and current_user.id != user_id:
        # Whoever was logged in before is not any more, also while the second factor is
        # pending. (The CSRF token stays, so the login form still works after going back.)
        # The same user logging in again keeps the session until the new login replaces it.
        log_out()
    return two_factor.login(
        user_id,
        state={"browser": True, "next": next_url or url_for("pages.settings")},
        # Asked to log in again (to use the second factor): a remembered browser asks too.
        ignore_remembered=_logging_in_again(),
    )


def _logging_in_again() -> bool:
    """Whether the login form was asked for with ``prompt=login`` (its form carries it)."""
    return (request.form.get("prompt") or request.args.get("prompt")) == "login"


@pages.post("/logout")
def logout() -> ResponseReturnValue:
    log_out()
    session.clear()
    flash(_("You are logged out."), "notice")
    return redirect(url_for("pages.login"))


# -- settings and 2FA --------------------------------------------------------------------------


@pages.get("/settings")
@login_required
def settings() -> ResponseReturnValue:
    return _settings_page()


@pages.post("/settings/2fa/setup")
@login_required
def setup() -> ResponseReturnValue:
    """A new pending secret: its QR code and the secret are shown on this page only."""
    try:
        created = two_factor.start_setup(current_user.id, current_user.username)
    except AlreadyConnected:
        return _settings_page(_("Two-factor authentication is already connected."), 409)
    return _setup_page(
        created.challenge_id,
        qr_code=created.qr_code_b64_data,
        secret=created.secret,
        otp_auth_uri=created.otp_auth_uri,
    )


@pages.post("/settings/2fa/confirm")
@login_required
def confirm_setup() -> ResponseReturnValue:
    """Confirm a setup with the first code of the app; then 2FA is connected, and the first
    recovery codes are shown, once. A code of a phone whose clock is off says so."""
    challenge_id = request.form.get("challengeId", "")
    if not 0 < len(challenge_id) <= MAX_CHALLENGE_ID_LENGTH:
        return _settings_page(_START_AGAIN, 404)
    proof = proof_from_form(request.form.get("code", ""))
    if proof is None or proof.code is None:  # a setup is confirmed with the app's code
        return _setup_page(challenge_id, problem=_ENTER_SIX_DIGITS, status=400)
    try:
        codes = two_factor.confirm_setup(challenge_id, proof, user_id=current_user.id)
    except InvalidCode as wrong:
        drift = clock_drift_hint(wrong.clock_drift_seconds)
        if wrong.remaining_attempts == 0:
            problem = _(
                "That code is not right, and this setup has no attempts left. Start again."
            )
            return _settings_page(" ".join(filter(None, [problem, drift])), 403)
        problem = " ".join(filter(None, [_wrong_code(wrong.remaining_attempts), drift]))
        return _setup_page(challenge_id, problem=problem, status=403)
    except TooManyAttempts as blocked:
        return _setup_page(
            challenge_id, problem=_blocked(blocked), status=429, headers=_retry_after(blocked)
        )
    except ChallengeNotFound:  # also the form sent again by a reload of the codes' page
        connected = two_factor.is_connected(current_user.id)
        return _settings_page(_CODES_SHOWN_ONCE if connected else _START_AGAIN, 404)
    except TwoFactorError as error:
        return _setup_page(challenge_id, problem=localized_why(error), status=error.status_code)
    flash(_("Two-factor authentication is connected."), "notice")
    return _html(recovery_codes_page(codes, current_user.username, at_setup=True), 200)


@pages.post("/settings/2fa/recovery-codes")
@login_required
def recovery_codes() -> ResponseReturnValue:
    """New recovery codes for a second-factor proof, shown once; the earlier ones stop
    working."""
    if _second_factor_missing():
        return _settings_page(_USE_THE_SECOND_FACTOR, 403)
    proof = proof_from_form(request.form.get("code", ""))
    if proof is None:
        return _settings_page(_ENTER_PROOF, 400)
    try:
        codes = two_factor.regenerate_recovery_codes(current_user.id, proof)
    except TwoFactorError as error:
        return _proof_refused(error)
    return recovery_codes_page(codes, current_user.username, at_setup=False)


@pages.post("/settings/2fa/disable")
@login_required
def disable() -> ResponseReturnValue:
    """Turn 2FA off, for a second-factor proof. The user's other sessions and tokens end
    (:mod:`.revocation`); this session stays."""
    if _second_factor_missing():
        return _settings_page(_USE_THE_SECOND_FACTOR, 403)
    proof = proof_from_form(request.form.get("code", ""))
    if proof is None:
        return _settings_page(_ENTER_PROOF, 400)
    try:
        two_factor.disable(current_user.id, proof)
    except TwoFactorError as error:
        return _proof_refused(error)
    flash(_("Two-factor authentication is off."), "notice")
    return redirect(url_for("pages.settings"))


def _second_factor_missing() -> bool:
    """Whether the user has 2FA and this session's login did not use it."""
    login = current_login()
    used = login is not None and "otp" in login.methods
    return not used and two_factor.is_connected(current_user.id)


# -- answers -----------------------------------------------------------------------------------

# Translated when shown, in the language of the request (Flask-Babel's lazy strings).
_START_AGAIN = _l("This setup has expired or was replaced by a newer one. Start again.")
_CODES_SHOWN_ONCE = _l(
    "Two-factor authentication is already connected, and recovery codes are shown only once."
    " If you did not save them, make new ones."
)
_ENTER_SIX_DIGITS = _l("Enter the six digits your authenticator app shows.")
_ENTER_PROOF = _l(
    "Enter the six digits your authenticator app shows, or one of your recovery codes."
)
_LOG_IN_AGAIN = _l("Enter your password again to continue.")
_USE_THE_SECOND_FACTOR = _l(
    "This session was not logged in with a code from your authenticator app. Log in again"
    " with a code to make new recovery codes or to turn two-factor authentication off."
)


def _wrong_code(remaining: int | None) -> str:
    if remaining is None:
        return _("That code is not right. Try the code your app shows now.")
    return ngettext(
        "That code is not right. Try the code your app shows now (%(num)d attempt left).",
        "That code is not right. Try the code your app shows now (%(num)d attempts left).",
        remaining,
    )


def _blocked(error: TooManyAttempts) -> str:
    if error.error_code == "LOCKED_OUT":
        return localized_why(error)
    return _(
        "Too many wrong codes. Wait %(seconds)s seconds, then try again.",
        seconds=error.retry_after,
    )


def _retry_after(error: TwoFactorError) -> dict[str, str]:
    """The ``Retry-After`` header of a failure that started or is in a back-off."""
    if isinstance(error, (InvalidCode, TooManyAttempts)) and error.retry_after is not None:
        return {"Retry-After": str(error.retry_after)}
    return {}


def _proof_refused(error: TwoFactorError) -> Response:
    """The settings page again, saying why a second-factor proof was refused."""
    if isinstance(error, InvalidCode):
        why = _("That code is not right. Try the code your app shows now, or a recovery code.")
    elif isinstance(error, TooManyAttempts):
        why = _blocked(error)
    else:
        why = localized_why(error)
    return _settings_page(why, error.status_code, _retry_after(error))


# -- rendering ---------------------------------------------------------------------------------


def _html(html: str, status: int, headers: dict[str, str] | None = None) -> Response:
    response = Response(html, status=status, mimetype="text/html")
    response.headers.update(headers or {})
    return response


def _login_page(
    next_url: str | None,
    username: str = "",
    problem: str | None = None,
    status: int = 200,
    *,
    notice: str | None = None,
) -> Response:
    return _html(
        render_template(
            "login.html",
            next_url=next_url,
            username=username,
            problem=problem,
            notice=notice,
            prompt="login" if _logging_in_again() else None,
        ),
        status,
    )


def _settings_page(
    problem: str | None = None, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    connected = two_factor.is_connected(current_user.id)
    login = current_login()
    return _html(
        render_template(
            "settings.html",
            user=current_user,
            connected=connected,
            second_factor=login is not None and "otp" in login.methods,
            problem=problem,
        ),
        status,
        headers,
    )


def _setup_page(
    challenge_id: str,
    *,
    qr_code: str | None = None,
    secret: str | None = None,
    otp_auth_uri: str | None = None,
    problem: str | None = None,
    status: int = 200,
    headers: dict[str, str] | None = None,
) -> Response:
    return _html(
        render_template(
            "setup.html",
            challenge_id=challenge_id,
            qr_code=qr_code,
            secret=secret,
            otp_auth_uri=otp_auth_uri,
            problem=problem,
        ),
        status,
        headers,
    )


def error_page(problem: str, status: int) -> Response:
    """The error page, with ``problem`` for people."""
    return _html(render_template("error.html", problem=problem), status)
