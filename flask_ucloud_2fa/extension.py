"""The :class:`TwoFactor` extension: configuration, the integrator's hooks, the blueprint."""

from __future__ import annotations

import functools
import logging
import time
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from dataclasses import field
from typing import Any
from typing import TypeVar

from authlib.oauth2 import OAuth2Error
from flask import Flask
from flask import current_app
from flask import g
from flask import has_request_context
from flask import request
from flask.typing import ResponseReturnValue
from werkzeug.exceptions import HTTPException
from werkzeug.exceptions import default_exceptions

from . import signals
from .challenges import ChallengeService
from .challenges import CompletedLogin
from .challenges import Limits
from .crypto import SecretBox
from .crypto import derive_key
from .crypto import parse_keys
from .errors import InsufficientUserAuthentication
from .errors import TokenRefused
from .errors import TwoFactorError
from .errors import Unauthorized
from .errors import error_response
from .errors import http_error_response
from .login import login_step
from .models import Models
from .models import bind_models
from .models import connected_property

F = TypeVar("F", bound=Callable[..., Any])

EXTENSION_KEY = "ucloud_2fa"
#: The attribute :meth:`TwoFactor.load_with_token` adds to the integrator's token model.
CONNECTED_ATTRIBUTE = "ucloud_2fa_connected"

logger = logging.getLogger("flask_ucloud_2fa")
#: One record per decision: ``event``, ``user_id``, ``outcome``, ``client_address``, never a
#: secret or a code.
audit_logger = logging.getLogger("flask_ucloud_2fa.audit")

DEFAULTS: dict[str, Any] = {
    "UCLOUD_2FA_ISSUER": None,
    "UCLOUD_2FA_URL_PREFIX": "/auth/2fa",
    "UCLOUD_2FA_CHALLENGE_LIFETIME": 600,
    "UCLOUD_2FA_MAX_ATTEMPTS": 5,
    "UCLOUD_2FA_BACKOFF_AFTER": 5,
    "UCLOUD_2FA_BACKOFF_MAX": 60,
    "UCLOUD_2FA_LOCKOUT_AFTER": 100,
    "UCLOUD_2FA_LOCKOUT_DURATION": 3600,
    "UCLOUD_2FA_RECOVERY_CODES": 10,
    "UCLOUD_2FA_ENCRYPTION_KEYS": None,
    "UCLOUD_2FA_LOGIN_URL": "/",
}


@dataclass(frozen=True)
class Settings:
    """The ``UCLOUD_2FA_*`` configuration of one app, read once in :meth:`TwoFactor.init_app`."""

    issuer: str
    url_prefix: str
    challenge_lifetime: int
    limits: Limits
    recovery_code_count: int
    login_url: str
    box: SecretBox = field(repr=False)

    @classmethod
    def from_config(cls, app: Flask) -> Settings:
        """:raises ValueError: a value that cannot work, with what to change."""
        config = app.config
        issuer = config["UCLOUD_2FA_ISSUER"] or app.name
        if ":" in issuer:
            raise ValueError(
                f"UCLOUD_2FA_ISSUER {issuer!r} contains ':', which authenticator apps read as the"
                " end of the issuer. Choose a name without it."
            )
        numbers = {
            key: int(config[f"UCLOUD_2FA_{key}"])
            for key in (
                "CHALLENGE_LIFETIME",
                "MAX_ATTEMPTS",
                "BACKOFF_AFTER",
                "BACKOFF_MAX",
                "LOCKOUT_AFTER",
                "LOCKOUT_DURATION",
                "RECOVERY_CODES",
            )
        }
        for key, value in numbers.items():
            if value <= 0:
                raise ValueError(f"UCLOUD_2FA_{key} must be positive, not {value}.")
        return cls(
            issuer=issuer,
            url_prefix=config["UCLOUD_2FA_URL_PREFIX"],
            challenge_lifetime=numbers["CHALLENGE_LIFETIME"],
            limits=Limits(
                max_attempts=numbers["MAX_ATTEMPTS"],
                backoff_after=numbers["BACKOFF_AFTER"],
                backoff_max=numbers["BACKOFF_MAX"],
                lockout_after=numbers["LOCKOUT_AFTER"],
                lockout_duration=numbers["LOCKOUT_DURATION"],
            ),
            recovery_code_count=numbers["RECOVERY_CODES"],
            login_url=config["UCLOUD_2FA_LOGIN_URL"],
            box=SecretBox(_encryption_keys(app)),
        )


def _encryption_keys(app: Flask) -> list[bytes]:
    configured = app.config["UCLOUD_2FA_ENCRYPTION_KEYS"]
    if configured:
        return parse_keys(configured)
    if not app.config.get("SECRET_KEY"):
        raise RuntimeError(
            "Flask-UCloud-2FA encrypts TOTP secrets and needs a key: set"
            " UCLOUD_2FA_ENCRYPTION_KEYS to a list of Fernet keys (make one with"
            ' python -c "from cryptography.fernet import Fernet;'
            ' print(Fernet.generate_key().decode())"), or at least SECRET_KEY.'
        )
    logger.warning(
        "UCLOUD_2FA_ENCRYPTION_KEYS is not set: TOTP secrets are encrypted under a key derived"
        " from SECRET_KEY, so changing SECRET_KEY makes them unreadable. Set"
        " UCLOUD_2FA_ENCRYPTION_KEYS for production."
    )
    return [derive_key(app.config["SECRET_KEY"], "flask-ucloud-2fa secrets")]


def _answer_routing_errors_in_json(app: Flask, code: int, prefix: str) -> None:
    """Answer ``code`` in UCloud's JSON shape for paths under ``prefix``.

    A wrong method (``GET /auth/2fa/challenge``) or an unknown path under the prefix fails in
    routing, before a blueprint is chosen, so the blueprint's own handler never sees it. Other
    paths keep the app's handler for ``code``, if it registered one first, or Flask's page.
    """
    previous = app.error_handler_spec[None][code].get(default_exceptions[code])
    prefix = prefix.rstrip("/")

    def handle(error: HTTPException) -> ResponseReturnValue:
        path = request.path
        if path == prefix or path.startswith(prefix + "/"):
            return http_error_response(error)
        if previous is not None:
            response: ResponseReturnValue = current_app.ensure_sync(previous)(error)
            return response
        return error

    app.register_error_handler(code, handle)


def _attribute_loader(name: str, hook: str) -> Callable[[Any], Any]:
    def load(token: Any) -> Any:
        try:
            return getattr(token, name)
        except AttributeError:
            raise RuntimeError(
                f"The bearer token has no {name!r} attribute. Register a function that returns"
                f" it from a validated token with '@two_factor.{hook}'."
            ) from None

    return load


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
        #: The models bound to ``db``: ``Credential``, ``Challenge`` and ``RecoveryCode``.
        self.models: Models = bind_models(db)
        self._settings: weakref.WeakKeyDictionary[Flask, Settings] = weakref.WeakKeyDictionary()
        self._login_completed: Callable[[CompletedLogin], ResponseReturnValue] | None = None
        self._user_id_loader: Callable[[Any], Any] = _attribute_loader("user_id", "user_id_loader")
        self._methods_loader: Callable[[Any], Any] = _attribute_loader(
            "amr", "token_methods_loader"
        )
        self._account_name_loader: Callable[[Any], str] | None = None
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read the ``UCLOUD_2FA_*`` config of ``app`` and register the routes on it.

        :raises RuntimeError: the extension is already registered on ``app``, or no key to
            encrypt secrets with is configured.
        :raises ValueError: a configuration value that cannot work.
        """
        if EXTENSION_KEY in app.extensions:
            raise RuntimeError(
                "Flask-UCloud-2FA is already registered on this app. Call 'init_app' once per"
                " app, or use 'TwoFactor(app, ...)' without calling 'init_app' again."
            )
        for key, value in DEFAULTS.items():
            app.config.setdefault(key, value)
        settings = Settings.from_config(app)
        self._settings[app] = settings
        app.extensions[EXTENSION_KEY] = self

        from .cli import cli
        from .views import blueprint

        app.register_blueprint(blueprint, url_prefix=settings.url_prefix)
        # Also for errors raised in the app's own views: the login step, step-up checks.
        app.register_error_handler(TwoFactorError, error_response)
        for code in (404, 405):
            _answer_routing_errors_in_json(app, code, settings.url_prefix)
        app.cli.add_command(cli)

    # -- hooks the integrator registers ---------------------------------------------------

    def login_completed(
        self, f: Callable[[CompletedLogin], ResponseReturnValue]
    ) -> Callable[[CompletedLogin], ResponseReturnValue]:
        """Register what finishing a login means: issue tokens, set a session.

        Called with a :class:`CompletedLogin` exactly once per login, after every factor
        succeeded; its return value is the response of the login.

        The hook runs inside the transaction that spends the challenge, and the extension
        commits after it: add what it writes (a token row) to ``db.session`` and leave the
        commit to the extension. The login's rows and the spent challenge are then stored
        together, in one commit, or not at all; if the hook raises, the challenge stays
        answerable. (A hook that commits on its own works too, at the price of a second
        commit.)
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

    def token_methods_loader(self, f: Callable[[Any], Any]) -> Callable[[Any], Any]:
        """Register how to get a token's ``amr`` values (default ``token.amr``: a list or a
        space-separated string), for :meth:`second_factor_required`."""
        self._methods_loader = f
        return f

    def load_with_token(self, token_model: Any, user_id: Any = None) -> None:
        """Load each token's 2FA state in the token's own ``SELECT``, in one round trip.

        Call it once, after defining the token model your resource protector's validator
        loads. The model gains a ``ucloud_2fa_connected`` column property (a correlated
        subquery on the credential table's unique index), so ``GET /status`` and
        :meth:`second_factor_required` answer from the validated token without a query of
        their own. Without it they run one ``SELECT`` each.

        .. code-block:: python

            class Token(db.Model, OAuth2TokenMixin): ...

            two_factor.load_with_token(Token)

        :param token_model: the token model, a mapped class on the same ``db``.
        :param user_id: the column of ``token_model`` with the id :meth:`user_id_loader`
            returns; ``token_model.user_id`` by default.
        :raises RuntimeError: ``token_model`` has no ``user_id`` column and none was given.
        """
        if user_id is None:
            user_id = getattr(token_model, "user_id", None)
            if user_id is None:
                raise RuntimeError(
                    f"{token_model.__name__} has no 'user_id' column: pass the column that holds"
                    " the user id, as in two_factor.load_with_token(Token, Token.owner_id)."
                )
        setattr(token_model, CONNECTED_ATTRIBUTE, connected_property(self.models, user_id))

    # -- the login step and step-up -----------------------------------------------------------

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

    def second_factor_required(self, view: F) -> F:
        """Decorate a view protected by the resource protector (put it below
        ``@require_oauth()``): a user with connected 2FA must present a token whose login
        used the second factor (``"otp"`` in its ``amr``), else 401
        ``insufficient_user_authentication`` (RFC 9470)."""

        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            token = g.get("authlib_server_oauth2_token")
            if token is None:
                raise RuntimeError(
                    "'second_factor_required' found no validated token: put it below the"
                    " resource protector's decorator, as in @require_oauth() then"
                    " @two_factor.second_factor_required."
                )
            self.check_second_factor(token)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def check_second_factor(self, token: Any) -> None:
        """Refuse a token whose login skipped the second factor its user has.

        :param token: a token the resource protector validated.
        :raises InsufficientUserAuthentication: the token's user has 2FA connected and the
            token's login did not use it.
        """
        methods = self._methods_loader(token)
        if isinstance(methods, str):
            methods = methods.split()
        if "otp" in methods:
            return
        if self.is_connected(token):
            raise InsufficientUserAuthentication()

    def is_connected(self, token: Any) -> bool:
        """Whether a validated token's user has connected 2FA: read from the token when
        :meth:`load_with_token` made it carry the state, else one query."""
        if hasattr(type(token), CONNECTED_ATTRIBUTE):
            return bool(getattr(token, CONNECTED_ATTRIBUTE))
        return self.service().is_connected(self.user_id(token))

    # -- used by the views, the login step and the CLI ------------------------------------------

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
            box=settings.box,
            issuer=settings.issuer,
            challenge_lifetime=settings.challenge_lifetime,
            limits=settings.limits,
            recovery_code_count=settings.recovery_code_count,
            clock=self.clock,
            emit=self.emit,
        )

    def emit(self, event: str, user_id: str, outcome: str, **data: Any) -> None:
        """Send the signal of ``event`` and write its audit record."""
        address = request.remote_addr if has_request_context() else None
        signals.EVENTS[event].send(
            current_app._get_current_object(),  # type: ignore[attr-defined]
            user_id=user_id,
            outcome=outcome,
            client_address=address,
            **data,
        )
        audit_logger.info(
            "%s user_id=%s outcome=%s client_address=%s",
            event,
            user_id,
            outcome,
            address,
            extra={
                "event": event,
                "user_id": user_id,
                "outcome": outcome,
                "client_address": address,
                "details": data,
            },
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
