"""The login step: what the integrator's login view calls once the first factor succeeded."""

from __future__ import annotations

from typing import TYPE_CHECKING
from typing import Any

from flask import jsonify
from flask.typing import ResponseReturnValue

from .challenges import CompletedLogin

if TYPE_CHECKING:
    from .extension import TwoFactor


def login_step(
    two_factor: TwoFactor, user_id: str, methods: list[str], state: dict[str, Any]
) -> ResponseReturnValue:
    """A login challenge for a user with connected 2FA; otherwise the completed login.

    The challenge answer is UCloud's ``{"2fa": "<challengeId>"}``: no token, no session, nothing
    that authenticates the user exists until the challenge is answered.
    """
    challenge_id = two_factor.service().begin_login(user_id, methods, state)
    if challenge_id is not None:
        return jsonify({"2fa": challenge_id})
    login = CompletedLogin(
        user_id=user_id, methods=list(methods), auth_time=int(two_factor.clock()), state=state
    )
    return two_factor.complete_login(login)
