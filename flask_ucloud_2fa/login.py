"""The login step: what the integrator's login view calls once the first factor succeeded."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from typing import TYPE_CHECKING
from typing import Any

from flask import jsonify
from flask import redirect
from flask import request
from flask import url_for
from flask.typing import ResponseReturnValue

from .challenges import CompletedLogin

if TYPE_CHECKING:
    from .extension import TwoFactor

#: The cookie binding a browser's login challenge to that browser.
BINDING_COOKIE = "ucloud_2fa_browser"


def wants_html() -> bool:
    """Whether the request is a browser's: it prefers HTML to JSON (curl's ``*/*`` does not)."""
    best = request.accept_mimetypes.best_match(["application/json", "text/html"])
    return best == "text/html"


def csrf_token(binding: str, challenge_id: str) -> str:
    """The challenge form's CSRF token: only the browser holding ``binding`` can make it."""
    message = f"ucloud-2fa-form:{challenge_id}".encode()
    return hmac.new(binding.encode("utf-8"), message, hashlib.sha256).hexdigest()


def login_step(
    two_factor: TwoFactor, user_id: str, methods: list[str], state: dict[str, Any]
) -> ResponseReturnValue:
    """A login challenge for a user with connected 2FA; otherwise the completed login.

    JSON clients get UCloud's ``{"2fa": "<challengeId>"}``; browsers are redirected to the
    challenge page with a cookie that binds the challenge to them. No token, no session,
    nothing that authenticates the user exists until the challenge is answered.
    """
    browser = wants_html()
    binding = secrets.token_urlsafe(32) if browser else None
    service = two_factor.service()
    challenge_id = service.begin_login(user_id, methods, state, binding)
    if challenge_id is None:
        login = CompletedLogin(
            user_id=user_id, methods=list(methods), auth_time=int(two_factor.clock()), state=state
        )
        return service.finish_login(login, two_factor.complete_login)
    if binding is None:
        return jsonify({"2fa": challenge_id})
    settings = two_factor.settings
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
