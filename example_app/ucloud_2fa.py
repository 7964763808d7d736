"""Flask-UCloud-2FA wired into the app: the extension and what the app tells it.

The extension uses the app's ``db`` and resource protector; the app tells it how to name a
token's user in authenticator apps and what finishing a login means (a browser session for the
login page, bearer tokens for the JSON login). ``create_app`` calls ``two_factor.init_app``; the
login views hand a checked password to ``two_factor.login(user.id)``, and the settings pages
call the facade (``start_setup``, ``confirm_setup``, ``disable``, ...).

Only the JSON login's tokens may manage the second factor: they carry the scope
:data:`.models.FIRST_PARTY_SCOPE`, which ``create_app`` names in
``UCLOUD_2FA_MANAGEMENT_SCOPE``, and OAuth clients can never get it. Disabling and resetting
2FA end the user's other logins (:mod:`.revocation`).
"""

from __future__ import annotations

from flask import Response
from flask import current_app
from flask import jsonify
from flask import redirect
from flask.typing import ResponseReturnValue

from flask_ucloud_2fa import LoginCompleted
from flask_ucloud_2fa import TwoFactor

from .extensions import db
from .extensions import require_oauth
from .models import NewTokens
from .models import Token
from .models import User
from .session import log_in
from .session import safe_next

# user_table: the 2FA rows of a user have a foreign key to user.id with ON DELETE CASCADE, so
# deleting a user deletes their 2FA (SQLite enforces it with PRAGMA foreign_keys=ON).
two_factor = TwoFactor(db=db, resource_protector=require_oauth, user_table="user")

# The token's SELECT also loads its user's 2FA state: status and step-up checks need no query.
two_factor.load_with_token(Token)


@two_factor.account_name_loader
def account_name(token: Token) -> str:
    """The name authenticator apps show next to the issuer."""
    return token.user.username


@two_factor.login_completed
def finish_login(login: LoginCompleted) -> ResponseReturnValue:
    """Every factor succeeded: the only place the app authenticates anyone. The login page
    (``state={"browser": True, ...}``) gets a session, the JSON login bearer tokens."""
    if login.state.get("browser"):
        log_in(db.get_or_404(User, login.user_id), login.methods, login.auth_time)
        return redirect(safe_next(login.state.get("next")))
    lifetime = current_app.config["ACCESS_TOKEN_LIFETIME"]
    new = Token.for_login(int(login.user_id), login.methods, login.auth_time, lifetime)
    db.session.add(new.row)  # not committed: the extension commits it with the spent challenge
    return token_answer(new, lifetime)


def token_answer(new: NewTokens, lifetime: int) -> Response:
    """The JSON login's and refresh's answer, in the shape UCloud's web client reads: it keeps
    ``accessToken`` and ``csrfToken`` (``setTokens``). No cookie: the refresh token travels in
    the body only, so a login posted by another site's form logs no browser in."""
    response = jsonify(
        accessToken=new.access_token,
        csrfToken=new.csrf_token,
        refreshToken=new.refresh_token,
        expiresAt=(new.row.issued_at + lifetime) * 1000,
    )
    response.headers["Cache-Control"] = "no-store"  # tokens must not sit in caches
    return response
