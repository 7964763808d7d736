"""Bearer and refresh tokens, stored only as hashes: checking them, refreshing them, storing
the ones the token endpoint issues, and revoking a user's.

The database keeps :func:`.models.hash_token` of each token; a token is looked up by the hash
of what the client sent. The plaintext exists only in the response that issues it.

Access tokens live ``ACCESS_TOKEN_LIFETIME`` seconds, refresh tokens
``REFRESH_TOKEN_LIFETIME`` seconds from their issue; each refresh gives a new pair and
revokes the old one.

Token families (OAuth 2.0 Security BCP, RFC 9700 sections 4.14.2 and 2.1.1): the tokens of one
login or one authorization code, through all their refreshes, share a ``family_id``. A
refresh token presented again after it was used, or an authorization code exchanged again,
revokes every access and refresh token of its family, and is logged on the
``example_app.audit`` logger: one of the two presenters is not who the tokens were issued to.
"""

from __future__ import annotations

import logging
import time
from typing import Any

from authlib.oauth2 import OAuth2Request
from authlib.oauth2.rfc6749 import InvalidGrantError
from authlib.oauth2.rfc6749 import grants
from authlib.oauth2.rfc6750 import BearerTokenValidator
from flask import current_app
from sqlalchemy import delete
from sqlalchemy import update

from .extensions import db
from .models import NewTokens
from .models import OAuth2AuthorizationCode
from .models import Token
from .models import User
from .models import hash_token

audit = logging.getLogger("example_app.audit")


def now() -> int:
    """The time of the token rows, in Unix seconds."""
    return int(time.time())


def by_access_token(access_token: str) -> Token | None:
    """The token row of a bearer token, whatever its state."""
    token: Token | None = db.session.execute(
        db.select(Token).filter_by(access_token=hash_token(access_token))
    ).scalar_one_or_none()
    return token


def by_refresh_token(refresh_token: str) -> Token | None:
    """The token row of a refresh token that is neither revoked nor too old, else ``None``.

    A revoked one is a replay: its family is revoked (:func:`revoke_family`).
    """
    token: Token | None = db.session.execute(
        db.select(Token).filter_by(refresh_token=hash_token(refresh_token))
    ).scalar_one_or_none()
    if token is None:
        return None
    if token.refresh_token_revoked_at:
        revoke_family(token.family_id, "refresh token replayed", client_id=token.client_id)
        return None
    lifetime: int = current_app.config["REFRESH_TOKEN_LIFETIME"]
    if token.issued_at + lifetime < now():
        return None
    return token


class HashedBearerTokenValidator(BearerTokenValidator):  # type: ignore[misc]
    """Authlib's bearer token check, looking the token up by its hash. Authlib then refuses
    an expired or revoked one (``invalid_token``)."""

    def authenticate_token(self, token_string: str) -> Token | None:
        return by_access_token(token_string)


class RefreshTokenGrant(grants.RefreshTokenGrant):  # type: ignore[misc]
    """A refresh token gives a new access and refresh token, with the ``amr`` and
    ``auth_time`` of the original login; the old pair stops working."""

    TOKEN_ENDPOINT_AUTH_METHODS = ["none"]
    INCLUDE_NEW_REFRESH_TOKEN = True

    def authenticate_refresh_token(self, refresh_token: str) -> Token | None:
        return by_refresh_token(refresh_token)

    def authenticate_user(self, refresh_token: Token) -> User:
        return refresh_token.user

    def revoke_old_credential(self, refresh_token: Token) -> None:
        """Nothing to do: :func:`save_token` revoked it in the new token's transaction."""


def revoke_family(family_id: str, reason: str, *, client_id: str) -> int:
    """Revoke every live access and refresh token of the family, commit, and log it on the
    audit logger; the number of token rows revoked."""
    revoked_at = now()
    revoked = 0
    for column in (Token.access_token_revoked_at, Token.refresh_token_revoked_at):
        result = db.session.execute(
            update(Token)
            .where(Token.family_id == family_id, column == 0)
            .values({column: revoked_at})
            .execution_options(synchronize_session=False)
        )
        revoked = max(revoked, result.rowcount)
    db.session.commit()
    audit.warning(
        "%s: token family revoked",
        reason,
        extra={"family_id": family_id, "client_id": client_id, "revoked_tokens": revoked},
    )
    return revoked


def revoke_if_code_replayed(code: str, client_id: str) -> None:
    """A code exchanged before: revoke every token issued from it (RFC 6749 section 4.1.2)."""
    family_id = hash_token(code)
    issued = db.session.execute(
        db.select(Token.id).filter_by(family_id=family_id, client_id=client_id).limit(1)
    ).first()
    if issued is not None:
        revoke_family(family_id, "authorization code replayed", client_id=client_id)


def rotate(old: Token, lifetime: int) -> NewTokens:
    """A new pair of the app's own tokens in ``old``'s family, ``old`` revoked; committed.

    :raises InvalidGrantError: a concurrent refresh used ``old`` first.
    """
    used = db.session.execute(
        update(Token)
        .where(Token.id == old.id, Token.refresh_token_revoked_at == 0)
        .values(refresh_token_revoked_at=now())
        .execution_options(synchronize_session=False)
    )
    if used.rowcount != 1:
        db.session.rollback()
        revoke_family(old.family_id, "refresh token replayed", client_id=old.client_id)
        raise InvalidGrantError("The grant was used already.")
    methods = old.amr.split()
    new = Token.for_login(old.user_id, methods, old.auth_time, lifetime, family_id=old.family_id)
    db.session.add(new.row)
    db.session.commit()
    return new


def save_token(token: dict[str, Any], request: OAuth2Request) -> None:
    """Store the hashes of a new token and, in the same transaction, use up what it was issued
    for: the authorization code is deleted, the refresh token revoked. ``token`` (the
    plaintexts) goes to the client untouched.

    :raises InvalidGrantError: a concurrent request used it up first; the database decides,
        so of two workers exchanging one code at the same moment only one succeeds.
    """
    issued_at = now()
    code: OAuth2AuthorizationCode | None = request.authorization_code
    old: Token | None = request.refresh_token
    if code is not None:
        used = db.session.execute(
            delete(OAuth2AuthorizationCode)
            .where(OAuth2AuthorizationCode.id == code.id)
            .execution_options(synchronize_session=False)
        )
        # Kept as read: the ID token is made from it after this commit.
        db.session.expunge(code)
        source: OAuth2AuthorizationCode | Token = code
        family_id = code.family_id
    elif old is not None:
        used = db.session.execute(
            update(Token)
            .where(Token.id == old.id, Token.refresh_token_revoked_at == 0)
            .values(refresh_token_revoked_at=issued_at)
            .execution_options(synchronize_session=False)
        )
        source = old
        family_id = old.family_id
    else:
        raise RuntimeError("save_token knows the authorization code and refresh token grants.")
    if used.rowcount != 1:
        db.session.rollback()
        revoke_family(family_id, "grant replayed", client_id=request.client.get_client_id())
        raise InvalidGrantError("The grant was used already.")
    hashed = dict(token)
    hashed["access_token"] = hash_token(token["access_token"])
    if token.get("refresh_token"):
        hashed["refresh_token"] = hash_token(token["refresh_token"])
    db.session.add(
        Token(
            client_id=request.client.get_client_id(),
            user_id=request.user.id,
            issued_at=issued_at,
            amr=source.amr,
            auth_time=source.auth_time,
            family_id=family_id,
            **hashed,
        )
    )
    db.session.commit()


def revoke_tokens(user_id: int, *, keep: int | None = None) -> None:
    """Revoke every live token pair of the user but the row ``keep``; not committed.

    A row with either of its tokens revoked is dead already: Authlib refuses its access token
    (``is_revoked``) and :func:`by_refresh_token` its refresh token.
    """
    revoked_at = now()
    live = [
        Token.user_id == user_id,
        Token.access_token_revoked_at == 0,
        Token.refresh_token_revoked_at == 0,
    ]
    if keep is not None:
        live.append(Token.id != keep)
    db.session.execute(
        update(Token)
        .where(*live)
        .values(access_token_revoked_at=revoked_at, refresh_token_revoked_at=revoked_at)
        .execution_options(synchronize_session=False)
    )
