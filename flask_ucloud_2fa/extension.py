"""The :class:`TwoFactor` extension: the integrator's hooks and the facade; wiring, no rules."""

from __future__ import annotations

import functools
import time
import weakref
from collections.abc import Callable
from typing import Any
from typing import TypeVar
from typing import cast

from flask import Flask
from flask.typing import ResponseReturnValue

from . import admin
from . import attempts
from . import browser  # noqa: F401 - puts the challenge page on the blueprint
from . import signals
from .attempts import PasswordAttempt
from .cli import cli
from .config import DEFAULTS
from .config import EXTENSION_KEY
from .config import AppState
from .config import Settings
from .config import app_state
from .counters import Counters
from .data import CreatedCredentials
from .data import CredentialStatus
from .data import SetupConfirmed
from .errors import InsufficientUserAuthentication
from .hooks import CONNECTED_ATTRIBUTE
from .hooks import Hooks
from .http import acquire_token
from .http import blueprint
from .http import routing_error
from .login import login_step
from .models import LOGIN
from .models import SETUP
from .models import TwoFactorModels
from .models import models_of
from .outage import register_error_handlers
from .proofs import Proof
from .remembering import RememberedBrowsers
from .remembering import check_models
from .service import TwoFactorService
from .stepup import check_current_token
from .store import Store

F = TypeVar("F", bound=Callable[..., Any])

_MISSING = object()


class TwoFactor(Hooks, RememberedBrowsers):
    """UCloud-compatible TOTP two-factor authentication for a Flask auth server: its routes,
    the login step, and the facade for the integrator's own pages and administration.

    :param app: the app to initialise now, or ``None`` to call :meth:`init_app` later.
    :param db: the integrator's Flask-SQLAlchemy ``db``; the extension's models are defined on
        it at once, so ``db.create_all()`` and migrations include them.
    :param resource_protector: the integrator's Authlib ``ResourceProtector``, which validates
        bearer tokens for the extension's routes.
    :param scopes: scopes a token must carry to use the extension's routes, or ``None``.
    :param clock: the current time in Unix seconds; tests pass a fake one.
    :param user_table: the integrator's user table, ``"user"`` (its ``id``) or
        ``"user.uid"``: the extension's rows then refer to it by a foreign key with
        ``ON DELETE CASCADE``, typed like its key, so deleting a user deletes their 2FA.
        ``None`` stores user ids as text; call :meth:`reset` when a user is deleted.
    :param models: the integrator's own models (subclasses of the mixins), instead of the
        default ones; not with ``user_table``.
    """

    def __init__(
        self,
        app: Flask | None = None,
        *,
        db: Any,
        resource_protector: Any,
        scopes: list[str] | None = None,
        clock: Callable[[], float] = time.time,
        user_table: str | None = None,
        models: TwoFactorModels | None = None,
    ) -> None:
        self._db = db
        self._resource_protector = resource_protector
        self._scopes = scopes
        #: The current time in Unix seconds; a test may put a fake clock here.
        self.clock = clock
        #: The models of the extension's rows: ``Credential``, ``Challenge``, ``RecoveryCode``.
        self.models: TwoFactorModels = models_of(db, user_table, models)
        super().__init__()
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
        check_models(settings, self.models)
        app.extensions[EXTENSION_KEY] = AppState(self, settings, weakref.ref(app))
        app.register_blueprint(blueprint, url_prefix=settings.url_prefix)
        register_error_handlers(app)  # also for the app's own views: the login step, ...
        prefix = settings.url_prefix.rstrip("/")
        app.before_request(lambda: routing_error(prefix))
        app.cli.add_command(cli)

    # -- the login step and answers ---------------------------------------------------------

    def login(
        self,
        user_id: Any,
        *,
        methods: list[str] | None = None,
        state: dict[str, Any] | None = None,
        ignore_remembered: bool = False,
    ) -> ResponseReturnValue:
        """The login step: call it from the login view once the first factor succeeded.

        A user with connected 2FA gets a login challenge (``{"2fa": "<challengeId>"}``, or a
        redirect to the challenge page for a browser) and nothing else; the ``login_completed``
        hook runs once the challenge is answered. Any other user's login completes at once
        through the same hook.

        :param user_id: the id of the user who passed the first factor.
        :param methods: the ``amr`` values of the first factor, ``["pwd"]`` by default.
        :param state: JSON-serialisable data handed back to the hook, such as where to go next.
        :param ignore_remembered: ask for a code even in a remembered browser, whose logins
            otherwise complete at once with ``methods`` as they are (no ``otp``): for a
            re-authentication that must use the second factor.
        """
        methods, state = methods or ["pwd"], state or {}
        if not ignore_remembered and (done := self._remembered_login(user_id, methods, state)):
            return done
        return login_step(
            self._service(),
            app_state().settings,
            self._run_login_completed,
            user_id,
            methods,
            state,
        )

    def answer_login(
        self,
        challenge_id: str,
        proof: Proof,
        *,
        browser_binding: str | None = None,
        remember: bool = False,
    ) -> ResponseReturnValue:
        """Answer a login challenge; the ``login_completed`` hook's response.

        :param browser_binding: the binding cookie of the browser a browser's login began in.
        :param remember: remember this browser, if ``UCLOUD_2FA_REMEMBER_DAYS`` is on and the
            proof is a TOTP code: the response gets its cookie.
        :raises ChallengeNotFound: unknown, expired, used or burned, or a setup challenge.
        :raises InvalidCode: wrong or used code (with ``remaining_attempts``).
        :raises TooManyAttempts: the user is backing off or locked out.
        """
        memory = self._memory(remember)
        result = self._service().answer(
            challenge_id,
            proof,
            kind=LOGIN,
            setup_user=None,
            login_completed=memory.wrap(self._run_login_completed),
            browser_binding=browser_binding,
        )
        return memory.respond(cast("ResponseReturnValue", result))  # a login always has one

    def answer_challenge(
        self, challenge_id: str, proof: Proof
    ) -> ResponseReturnValue | SetupConfirmed:
        """Answer any challenge, as ``POST /auth/2fa/challenge`` does: a login challenge
        completes the login (the hook's response); a setup challenge is confirmed for the user
        of the request's bearer token (a :class:`SetupConfirmed`, with the first recovery
        codes when ``UCLOUD_2FA_RECOVERY_CODES_AT_SETUP`` is on).

        :raises TokenRefused: a setup challenge, and no acceptable bearer token.
        :raises InvalidCode: wrong or used code (with ``remaining_attempts``; for a setup, with
            ``clock_drift_seconds`` when the device's clock seems off).
        """
        return self._service().answer(
            challenge_id,
            proof,
            kind=None,
            setup_user=lambda: self.token_user_id(self.request_token(manage=True)),
            login_completed=self._run_login_completed,
            setup_recovery_codes=app_state().settings.recovery_codes_at_setup,
        )

    # -- setup, recovery codes, disabling ---------------------------------------------------

    def start_setup(self, user_id: Any, account_name: str) -> CreatedCredentials:
        """Start a setup: a new pending secret, its QR code, and the challenge that confirms
        it. A pending setup of the user is replaced.

        :param account_name: the name authenticator apps show next to the issuer.
        :raises AlreadyConnected: the user has connected 2FA, which stays untouched.
        """
        created = self._service().start_setup(user_id, account_name)
        self.forget_browsers(user_id)  # a new credential: no browser of an earlier one counts
        return created

    def confirm_setup(self, challenge_id: str, proof: Proof, *, user_id: Any) -> list[str]:
        """Confirm the setup ``challenge_id`` of ``user_id`` with the first code of the app;
        the user's 2FA is then connected, with a first set of recovery codes made in the same
        transaction.

        :returns: the first recovery codes (:data:`UCLOUD_2FA_RECOVERY_CODES` of them), stored
            only hashed: show them to the user now, once.
        :raises ChallengeNotFound: unknown, expired or burned, another user's, or not a setup.
        :raises InvalidCode: wrong code (with ``remaining_attempts``, and
            ``clock_drift_seconds`` when the code is that of a time step up to ten minutes
            away: the device's clock seems off).
        :raises InvalidRequest: a recovery code instead of a TOTP code.
        """
        confirmed = self._service().answer(
            challenge_id,
            proof,
            kind=SETUP,
            setup_user=lambda: user_id,
            login_completed=self._run_login_completed,
            setup_recovery_codes=True,
        )
        return cast("SetupConfirmed", confirmed).recovery_codes  # a setup challenge's answer

    def regenerate_recovery_codes(self, user_id: Any, proof: Proof) -> list[str]:
        """New recovery codes, for a second-factor proof; the earlier ones stop working.

        :raises NotConnected: the user has no connected 2FA.
        :raises InvalidCode: a wrong proof.
        """
        return self._service().regenerate_recovery_codes(user_id, proof)

    def disable(self, user_id: Any, proof: Proof) -> None:
        """Turn the user's 2FA off, for a second-factor proof.

        :raises NotConnected: the user has no connected 2FA.
        :raises InvalidCode: a wrong proof.
        """
        self._service().disable(user_id, proof)

    def is_connected(self, user_id: Any = None, *, token: Any = None) -> bool:
        """Whether a user has connected 2FA, by id or by a validated ``token`` (no query when
        :meth:`load_with_token` made the token carry it).

        :raises ValueError: neither or both were given.
        """
        if (user_id is None) == (token is None):
            raise ValueError("Pass either a user id or token=..., not both and not neither.")
        if token is not None:
            carried = getattr(token, CONNECTED_ATTRIBUTE, _MISSING)
            if carried is not _MISSING:
                return bool(carried)
            user_id = self.token_user_id(token)
        store = self._store()
        return store.is_connected(store.user_key(user_id))

    # -- step-up ------------------------------------------------------------------------------

    def second_factor_required(self, view: F) -> F:
        """:func:`flask_ucloud_2fa.second_factor_required`, with this extension."""

        @functools.wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            check_current_token(self)
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    def check_second_factor(self, token: Any) -> None:
        """Refuse a token whose login skipped the second factor its user has.

        :raises InsufficientUserAuthentication: the token's user has 2FA connected and the
            token's login did not use it.
        """
        methods = self._methods_loader(token)
        if isinstance(methods, str):
            methods = methods.split()
        if "otp" not in methods and self.is_connected(token=token):
            raise InsufficientUserAuthentication()

    # -- the first factor ---------------------------------------------------------------------

    def limit_password_attempt(self, username: str, address: str | None) -> PasswordAttempt:
        """Reserve one password attempt before checking the password, with the second factor's
        database-backed limits: a back-off for the user at this address, and budgets for the
        address and for the user (see :ref:`password-limits`). Call
        :meth:`~PasswordAttempt.succeeded` when the password is right; otherwise the attempt
        stays counted as a failure.

        :param username: the account the attempt names, as the app looks it up (count unknown
            names too, or the answers tell which names exist).
        :param address: the client's address, ``request.remote_addr`` (behind a proxy, after
            Werkzeug's ``ProxyFix``).
        :raises TooManyAttempts: not now; nothing is counted (429 with ``Retry-After``).
        :raises RuntimeError: the app's own ``models=`` have no ``AttemptCounter``.
        """
        model = self.models.AttemptCounter
        if model is None:
            raise RuntimeError(
                "Flask-UCloud-2FA counts password attempts in an AttemptCounter model: pass"
                " TwoFactorModels(..., AttemptCounter=...), a subclass of AttemptCounterMixin."
            )
        counters = Counters(self._store(), model)
        limits = app_state().settings.password_limits
        return attempts.reserve(counters, limits, username, address, self.clock)

    # -- administration -----------------------------------------------------------------------

    def status(self, user_id: Any) -> CredentialStatus | None:
        """The user's 2FA as an administrator sees it (never the secret), or ``None``."""
        return admin.status(self._store(), user_id, self.clock(), app_state().settings.limits)

    def reset(self, user_id: Any) -> bool:
        """Remove everything of the user's 2FA without a proof: an administrator's reset, or
        a deleted user's data when the users live elsewhere than ``user_table``. Sends the
        ``reset`` signal; whether there was anything to remove."""
        return admin.reset(self._store(), user_id, self._emit)

    def rotate_keys(self) -> int:
        """Re-encrypt every secret under the first of ``UCLOUD_2FA_ENCRYPTION_KEYS``; how many.

        :raises UnreadableSecret: a secret no configured key decrypts."""
        return admin.rotate_keys(self._store(), app_state().settings.box)

    # -- bearer tokens, for the JSON routes ---------------------------------------------------

    def request_token(self, *, manage: bool = False) -> Any:
        """The request's bearer token, validated by the resource protector.

        :param manage: the token is to manage the second factor (setup, disabling, recovery
            codes): it must also carry ``UCLOUD_2FA_MANAGEMENT_SCOPE``, when one is set.
        :raises TokenRefused: no token, or one the protector refused (403
            ``INSUFFICIENT_SCOPE`` without the scopes).
        """
        scopes, scope = self._scopes, app_state().settings.management_scope
        if manage and scope:  # every alternative the protector accepts, with the scope
            scopes = [f"{alternative} {scope}" for alternative in scopes] if scopes else [scope]
        return acquire_token(self._resource_protector, scopes)

    def token_user_id(self, token: Any) -> Any:
        """The user id of a validated token (the ``user_id_loader`` hook)."""
        return self._user_id_loader(token)

    def token_account_name(self, token: Any) -> str:
        """The account name of a validated token's user (the ``account_name_loader`` hook)."""
        if self._account_name_loader is None:
            raise RuntimeError(
                "Flask-UCloud-2FA needs the account name shown in authenticator apps. Register"
                " one with '@two_factor.account_name_loader', a function taking the token."
            )
        return self._account_name_loader(token)

    # -- wiring -------------------------------------------------------------------------------

    def _store(self) -> Store:
        settings = app_state().settings  # an app without init_app is told what to do
        return Store(self._db.session, self.models, settings.statement_timeout)

    def _service(self) -> TwoFactorService:
        settings = app_state().settings
        return TwoFactorService(
            store=Store(self._db.session, self.models, settings.statement_timeout),
            box=settings.box,
            issuer=settings.issuer,
            challenge_lifetime=settings.challenge_lifetime,
            limits=settings.limits,
            recovery_code_count=settings.recovery_code_count,
            clock=self.clock,
            emit=self._emit,
        )

    def _emit(self, event: str, user_id: Any, outcome: str, **data: Any) -> None:
        app = app_state().app()
        if app is not None:
            signals.send(app, event, user_id, outcome, **data)
