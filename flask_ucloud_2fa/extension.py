"""The :class:`TwoFactor` extension: configuration, the integrator's hooks, the blueprint."""

from __future__ import annotations

import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from typing import TypeVar

from authlib.oauth2 import OAuth2Error
from authlib.oauth2.rfc6749 import MissingAuthorizationError
from flask import Flask
from flask import current_app
from flask.typing import ResponseReturnValue

from .challenges import ChallengeService
from .challenges import CompletedLogin
from .errors import TokenRefused
from .errors import Unauthorized
from .login import login_step
from .models import Models
from .models import bind_models

F = TypeVar("F", bound=Callable[..., Any])

EXTENSION_KEY = "ucloud_2fa"


@dataclass(frozen=True)
class Settings:
    """The ``UCLOUD_2FA_*`` configuration of one app, read once in :meth:`TwoFactor.init_app`."""

    issuer: str
    url_prefix: str
    challenge_lifetime: int
    max_attempts: int

    @classmethod
    def from_config(cls, app: Flask) -> Settings:
        config = app.config
        issuer = config["UCLOUD_2FA_ISSUER"] or app.name
        if ":" in issuer:
            raise ValueError(
                f"UCLOUD_2FA_ISSUER {issuer!r} contains ':', which authenticator apps read as the"
                " end of the issuer. Choose a name without it."
            )
        lifetime = int(config["UCLOUD_2FA_CHALLENGE_LIFETIME"])
        max_attempts = int(config["UCLOUD_2FA_MAX_ATTEMPTS"])
        if lifetime <= 0 or max_attempts <= 0:
            raise ValueError(
                "UCLOUD_2FA_CHALLENGE_LIFETIME and UCLOUD_2FA_MAX_ATTEMPTS must be positive."
            )
        return cls(
            issuer=issuer,
            url_prefix=config["UCLOUD_2FA_URL_PREFIX"],
            challenge_lifetime=lifetime,
            max_attempts=max_attempts,
        )


def _token_user_id(token: Any) -> Any:
    try:
        return token.user_id
    except AttributeError:
        raise RuntimeError(
            "The bearer token has no 'user_id' attribute. Register a loader that returns the"
            " user id of a validated token with '@two_factor.user_id_loader'."
        ) from None


class TwoFactor:
    """UCloud-compatible TOTP two-factor authentication for a Flask auth server.

    .. code-block:: python

        db = SQLAlchemy()
        require_oauth = ResourceProtector()
        two_factor = TwoFactor(db=db, resource_protector=require_oauth)
        two_factor.init_app(app)

    :param app: the app to initialise now, or ``None`` to call :meth:`init_app` later.
    :param db: the integrator's Flask-SQLAlchemy ``db``; the extension's models are defined on
        it at once, so ``db.create_all()`` and migrations include them.
    :param resource_protector: the integrator's Authlib ``ResourceProtector``, which validates
        bearer tokens for the extension's routes.
    :param scopes: scopes a token must carry to use the extension's routes, or ``None``.
    :param clock: the current time in Unix seconds; tests pass a fake one.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        db: Any,
        resource_protector: Any,
        scopes: list[str] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.db = db
        self.resource_protector = resource_protector
        self.scopes = scopes
        self.clock = clock
        #: The models bound to ``db``: ``models.Credential`` and ``models.Challenge``.
        self.models: Models = bind_models(db)
        self._settings: weakref.WeakKeyDictionary[Flask, Settings] = weakref.WeakKeyDictionary()
        self._login_completed: Callable[[CompletedLogin], ResponseReturnValue] | None = None
        self._user_id_loader: Callable[[Any], Any] = _token_user_id
        self._account_name_loader: Callable[[Any], str] | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read the ``UCLOUD_2FA_*`` config of ``app`` and register the routes on it.

        :raises RuntimeError: the extension is already registered on ``app``.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "Flask-UCloud-2FA is already registered on this app. Call 'init_app' once per"
                " app, or use 'TwoFactor(app, ...)' without calling 'init_app' again."
            )
        app.config.setdefault("UCLOUD_2FA_ISSUER", None)
        app.config.setdefault("UCLOUD_2FA_URL_PREFIX", "/auth/2fa")
        app.config.setdefault("UCLOUD_2FA_CHALLENGE_LIFETIME", 600)
        app.config.setdefault("UCLOUD_2FA_MAX_ATTEMPTS", 5)
        settings = Settings.from_config(app)
        self._settings[app] = settings
        app.extensions[EXTENSION_KEY] = self

        from .views import blueprint

        app.register_blueprint(blueprint, url_prefix=settings.url_prefix)

    # -- hooks the integrator registers ---------------------------------------------------

    def login_completed(
        self, f: Callable[[CompletedLogin], ResponseReturnValue]
    ) -> Callable[[CompletedLogin], ResponseReturnValue]:
        """Register what finishing a login means: issue tokens, set a session.

        Called with a :class:`CompletedLogin` exactly once per login, after every factor
        succeeded; its return value is the response of the login.
        """
        self._login_completed = f
        return f

    def user_id_loader(self, f: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Register how to get the user id from a validated token (default ``token.user_id``)."""
        self._user_id_loader = f
        return f

    def account_name_loader(self, f: Callable[[Any], str]) -> Callable[[Any], str]:
        """Register how to get the account name shown in authenticator apps from a token."""
        self._account_name_loader = f
        return f

    # -- the login step ---------------------------------------------------------------------

    def login(
        self,
        user_id: Any,
        *,
        methods: list[str] | None = None,
        state: dict[str, Any] | None = None,
    ) -> ResponseReturnValue:
        """The login step: call it from the login view once the first factor succeeded.

        A user with connected 2FA gets a login challenge (``{"2fa": "<challengeId>"}``) and
        nothing else; the ``login_completed`` hook runs once the challenge is answered. Any other
        user's login completes at once through the same hook.

        :param user_id: the id of the user who passed the first factor.
        :param methods: the ``amr`` values of the first factor, ``["pwd"]`` by default.
        :param state: JSON-serialisable data handed back to the hook, such as where to go next.
        """
        return login_step(self, str(user_id), methods or ["pwd"], state or {})

    # -- used by the views and the login step -------------------------------------------------

    @property
    def settings(self) -> Settings:
        """The settings of the current app."""
        return self._settings[current_app._get_current_object()]  # type: ignore[attr-defined]

    def service(self) -> ChallengeService:
        """The service layer, on the integrator's session, for the current app."""
        settings = self.settings
        return ChallengeService(
            session=self.db.session,
            models=self.models,
            issuer=settings.issuer,
            challenge_lifetime=settings.challenge_lifetime,
            max_attempts=settings.max_attempts,
            clock=self.clock,
        )

    def acquire_token(self) -> Any:
        """The request's validated bearer token, through the integrator's resource protector.

        :raises TokenRefused: no token, or one the protector refused; carries Authlib's
            ``WWW-Authenticate`` header.
        """
        try:
            return self.resource_protector.acquire_token(self.scopes)
        except OAuth2Error as error:
            raise TokenRefused(
                status_code=error.status_code,
                error_code=str(error.error).upper(),
                why=error.description or Unauthorized.why,
                headers=dict(error.get_headers()),
                missing=isinstance(error, MissingAuthorizationError),
            ) from None

    def user_id(self, token: Any) -> str:
        """The user id of a validated token, as text."""
        return str(self._user_id_loader(token))

    def account_name(self, token: Any) -> str:
        """The account name of a validated token's user, for the otpauth URI."""
        if self._account_name_loader is None:
            raise RuntimeError(
                "Flask-UCloud-2FA needs the account name shown in authenticator apps. Register"
                " one with '@two_factor.account_name_loader', a function taking the token."
            )
        return self._account_name_loader(token)

    def complete_login(self, login: CompletedLogin) -> ResponseReturnValue:
        """Run the integrator's ``login_completed`` hook."""
        if self._login_completed is None:
            raise RuntimeError(
                "Flask-UCloud-2FA does not know how to finish a login. Register a function that"
                " issues the tokens or sets the session with '@two_factor.login_completed'."
            )
        return self._login_completed(login)
