"""The login step: what the integrator's login view calls once the first factor succeeded."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask import current_app
from flask import jsonify
from flask.typing import ResponseReturnValue

from .browser import new_binding
from .browser import redirect_to_challenge
from .browser import wants_html
from .config import Settings
from .data import LoginCompleted
from .service import TwoFactorService


def login_step(
    service: TwoFactorService,
    settings: Settings,
    login_completed: Callable[[LoginCompleted], ResponseReturnValue],
    user_id: Any,
    methods: list[str],
    state: dict[str, Any],
) -> ResponseReturnValue:
    """A login challenge for a user with connected 2FA; otherwise the completed login.

    JSON clients get UCloud's ``{"2fa": "<challengeId>"}``; browsers are redirected to the
    challenge page with a cookie that binds the challenge to them. No token, no session,
    nothing that authenticates the user exists until the challenge is answered.
    """
    binding = new_binding() if wants_html() else None
    challenge_id = service.begin_login(user_id, methods, state, binding)
    if challenge_id is None:
        result = service.finish_login(user_id, methods, state, login_completed)
        response = current_app.make_response(result)
    elif binding is None:
        response = jsonify({"2fa": challenge_id})
    else:
        response = current_app.make_response(
            redirect_to_challenge(challenge_id, binding, settings)
        )
    # A completed login carries tokens; a challenge id is half a login.
    response.headers["Cache-Control"] = "no-store"
    return response
