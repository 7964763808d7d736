"""The HTML challenge page where a browser answers its login challenge, its cookie and CSRF."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING
from typing import Any

from flask import Response
from flask import current_app
from flask import redirect
from flask import render_template
from flask import request
from flask import url_for
from werkzeug.wrappers import Response as BaseResponse

from .config import Settings
from .config import app_state
from .errors import ChallengeNotFound
from .errors import DatabaseUnavailable
from .errors import InvalidCode
from .errors import TooManyAttempts
from .http import blueprint
from .http import bound_body
from .i18n import localized_why
from .proofs import is_challenge_id
from .proofs import proof_from_form

if TYPE_CHECKING:
    from .extension import TwoFactor

#: The cookie binding a browser's login challenge to that browser.
BINDING_COOKIE = "ucloud_2fa_browser"


def wants_html() -> bool:
    """Whether the request is a browser's: it prefers HTML to JSON (curl's ``*/*`` does not)."""
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def new_binding() -> str:
    """A new secret for the binding cookie."""
    return secrets.token_urlsafe(32)


def csrf_token(binding: str, challenge_id: str) -> str:
    """The challenge form's CSRF token: only the browser holding ``binding`` can make it."""
    message = f"ucloud-2fa-form:{challenge_id}".encode()
    return hmac.new(binding.encode("utf-8"), message, hashlib.sha256).hexdigest()


def redirect_to_challenge(challenge_id: str, binding: str, settings: Settings) -> BaseResponse:
    """The browser's way to its challenge page, with the cookie that binds the challenge to
    it (``HttpOnly``, ``SameSite=Lax``, ``Secure`` over HTTPS, only under the prefix)."""
    response = redirect(url_for("ucloud_2fa.challenge_page", challengeId=challenge_id))
    response.set_cookie(
        BINDING_COOKIE,
        binding,
        max_age=settings.challenge_lifetime,
        path=settings.url_prefix,
        secure=request.is_secure,
        httponly=True,
        samesite="Lax",
    )
    return response


@blueprint.get("")
def challenge_page() -> Response:
    """``GET /auth/2fa?challengeId=...``: the page where a browser answers its login
    challenge. Override ``ucloud_2fa/challenge.html`` in the app's templates to restyle it."""
    challenge_id = request.args.get("challengeId", "")
    binding = request.cookies.get(BINDING_COOKIE)
    if not is_challenge_id(challenge_id) or binding is None:
        return _page("", None, "expired", 404)
    return _page(challenge_id, binding, None, 200)


@blueprint.post("/challenge/form")
def answer_challenge_form() -> Response:
    """The challenge page's form: on success the integrator's login-completion response
    (usually a redirect), else the page again with what went wrong."""
    bound_body()
    challenge_id = request.form.get("challengeId", "")
    binding = request.cookies.get(BINDING_COOKIE)
    if binding is None or not is_challenge_id(challenge_id):  # no login began here, or ended
        return _page("", None, "expired", 404)
    sent = request.form.get("csrfToken", "").encode("utf-8", "surrogatepass")
    if not hmac.compare_digest(sent, csrf_token(binding, challenge_id).encode("ascii")):
        return _page(challenge_id, None, "expired", 403)
    typed = request.form.get("recoveryCode", "").strip() or request.form.get(
        "verificationCode", ""
    )
    proof = proof_from_form(typed)
    if proof is None:
        return _page(challenge_id, binding, "malformed", 400)
    two_factor: TwoFactor = app_state().extension
    try:
        result = two_factor.answer_login(
            challenge_id, proof, browser_binding=binding, remember=_remember_ticked()
        )
    except InvalidCode as wrong:
        if wrong.remaining_attempts == 0:
            return _page(challenge_id, None, "expired", 403)
        return _page(
            challenge_id, binding, "wrong", 403, remaining_attempts=wrong.remaining_attempts
        )
    except TooManyAttempts as blocked:
        page = _page(challenge_id, binding, "blocked", 429, retry_after=blocked.retry_after)
        page.headers["Retry-After"] = str(blocked.retry_after)
        return page
    except ChallengeNotFound:
        return _page(challenge_id, None, "expired", 404)
    response = current_app.make_response(result)
    response.delete_cookie(BINDING_COOKIE, path=app_state().settings.url_prefix)
    return response


def unavailable_page(error: DatabaseUnavailable) -> Response:
    """A browser's page while the database is unavailable (``ucloud_2fa/unavailable.html``),
    with ``Retry-After``. It is rendered without the app's context processors, which may read
    the database (Flask-Login's ``current_user`` does); the login's challenge stays answerable,
    so going back to the challenge page later finishes it."""
    template = current_app.jinja_env.get_or_select_template("ucloud_2fa/unavailable.html")
    html = template.render(why=localized_why(error), retry_after=error.retry_after)
    page = Response(html, status=503, mimetype="text/html")
    page.headers["Retry-After"] = str(error.retry_after)
    return page


def _page(
    challenge_id: str, binding: str | None, failure: str | None, status: int, **context: Any
) -> Response:
    """The challenge page; without ``binding`` it offers only the way back to the login."""
    html = render_template(
        "ucloud_2fa/challenge.html",
        challenge_id=challenge_id,
        csrf_token=None if binding is None else csrf_token(binding, challenge_id),
        failure=failure,
        login_url=app_state().settings.login_url,
        remember_days=app_state().settings.remember_days,
        remember=_remember_ticked(),
        **context,
    )
    return Response(html, status=status, mimetype="text/html")


def _remember_ticked() -> bool:
    """Whether the form's "Remember this browser" box was ticked (kept on a page again)."""
    return request.method == "POST" and request.form.get("rememberBrowser") == "yes"
