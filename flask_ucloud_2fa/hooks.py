"""The integrator's hooks: how a login finishes and what a token says, registered on
:class:`~flask_ucloud_2fa.TwoFactor` (its base class, so the facade stays one class)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flask.typing import ResponseReturnValue

from .data import LoginCompleted
from .models import TwoFactorModels
from .models import connected_property
from .stepup import attribute_loader

#: The attribute :meth:`Hooks.load_with_token` adds to the integrator's token model.
CONNECTED_ATTRIBUTE = "ucloud_2fa_connected"


class Hooks:
    """The hooks of :class:`~flask_ucloud_2fa.TwoFactor`, with their defaults."""

    models: TwoFactorModels

    def __init__(self) -> None:
        self._login_completed: Callable[[LoginCompleted], ResponseReturnValue] | None = None
        self._user_id_loader = attribute_loader("user_id", "user_id_loader")
        self._methods_loader = attribute_loader("amr", "token_methods_loader")
        self._account_name_loader: Callable[[Any], str] | None = None

    def login_completed(
        self, f: Callable[[LoginCompleted], ResponseReturnValue]
    ) -> Callable[[LoginCompleted], ResponseReturnValue]:
        """Register what finishing a login means: issue tokens, set a session.

        Called with a :class:`LoginCompleted` exactly once per login, after every factor
        succeeded; its return value is the response of the login.

        It runs inside the transaction that spends the challenge: add what it writes (a token
        row) to ``db.session`` and leave the commit to the extension, so the login's rows and
        the spent challenge are stored together or not at all. If it raises, the challenge
        stays answerable.
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

        Call it once, after defining the token model your resource protector loads. It gains a
        ``ucloud_2fa_connected`` column property (a correlated subquery on the credential's
        unique index), so status and step-up checks need no query of their own.

        :param token_model: the token model, a mapped class on the same ``db``.
        :param user_id: the column of ``token_model`` with the id :meth:`user_id_loader`
            returns; ``token_model.user_id`` by default.
        :raises RuntimeError: ``token_model`` has no ``user_id`` column and none was given.
        """
        setattr(
            token_model, CONNECTED_ATTRIBUTE, connected_property(self.models, token_model, user_id)
        )

    def _run_login_completed(self, login: LoginCompleted) -> ResponseReturnValue:
        if self._login_completed is None:
            raise RuntimeError(
                "Flask-UCloud-2FA does not know how to finish a login. Register a function that"
                " issues the tokens or sets the session with '@two_factor.login_completed'."
            )
        return self._login_completed(login)
