"""Step-up: views that need a login made with the second factor (RFC 9470)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING
from typing import Any
from typing import TypeVar

from authlib.integrations.flask_oauth2 import current_token

from .config import app_state

if TYPE_CHECKING:
    from .extension import TwoFactor

F = TypeVar("F", bound=Callable[..., Any])


def attribute_loader(name: str, hook: str) -> Callable[[Any], Any]:
    """A hook's default: the attribute ``name`` of a validated token, or an error that names
    the hook that replaces it."""

    def load(token: Any) -> Any:
        try:
            return getattr(token, name)
        except AttributeError:
            raise RuntimeError(
                f"The bearer token has no {name!r} attribute. Register a function that returns"
                f" it from a validated token with '@two_factor.{hook}'."
            ) from None

    return load


def check_current_token(two_factor: TwoFactor) -> None:
    """Check the token the resource protector validated for this request.

    :raises InsufficientUserAuthentication: its user has 2FA and its login did not use it.
    :raises RuntimeError: no token was validated: the decorators are in the wrong order.
    """
    if not current_token:
        raise RuntimeError(
            "'second_factor_required' found no validated token: put it below the resource"
            " protector's decorator, as in @require_oauth() then @second_factor_required."
        )
    two_factor.check_second_factor(current_token)


def second_factor_required(view: F) -> F:
    """Decorate a view protected by the resource protector (put it below
    ``@require_oauth()``): a user with connected 2FA must present a token whose login used the
    second factor (``"otp"`` in its ``amr``), else 401 ``INSUFFICIENT_USER_AUTHENTICATION``.

    The extension is the current app's, found at request time, as Flask-Login's
    ``login_required`` finds its login manager.
    """

    @functools.wraps(view)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        check_current_token(app_state().extension)
        return view(*args, **kwargs)

    return wrapper  # type: ignore[return-value]
