"""The language of the extension's pages and of the ``why`` of its errors.

Translation is optional, with Flask-Babel (the ``babel`` extra): without Flask-Babel installed,
everything stays English. With it, a request's language is the app's own when the app
initialised Flask-Babel (``flask_babel.get_locale()``, so the app's locale selector decides),
else the best match of the request's ``Accept-Language`` among the extension's catalogues
(:mod:`flask_ucloud_2fa.catalogues`). A language without a catalogue is English.

The templates translate with ``_2fa`` and ``_2fa_plural`` (and put ``_2fa_language()`` in their
``lang`` attribute): names of their own, so that an app's ``_`` keeps translating the app's
messages, also in a template of the app that includes one of the extension's.
"""

from __future__ import annotations

import gettext as stdlib_gettext
from typing import Any

from flask import current_app
from flask import has_request_context
from flask import request

from .catalogues import SOURCE_LANGUAGE
from .catalogues import available_languages
from .catalogues import catalogue
from .catalogues import language_of
from .catalogues import negotiate
from .errors import TwoFactorError


def request_locale() -> str | None:
    """The locale of the current request's messages, or ``None`` for English: outside a
    request, without Flask-Babel, or for an ``Accept-Language`` no catalogue matches."""
    if not has_request_context():
        return None
    try:
        import flask_babel
    except ImportError:  # the babel extra is not installed: English, as without translations
        return None
    if "babel" in current_app.extensions:
        locale = flask_babel.get_locale()
        return None if locale is None else str(locale)
    return negotiate(request.accept_languages, [SOURCE_LANGUAGE, *available_languages()])


def translations() -> stdlib_gettext.NullTranslations:
    """The catalogue of the current request's language."""
    return catalogue(request_locale())


def gettext(message: str, **variables: Any) -> str:
    """``message`` in the request's language, with ``%(name)s`` placeholders filled from
    ``variables`` (as Flask-Babel's ``gettext``); the templates' ``_2fa``."""
    text = translations().gettext(message)
    return text % variables if variables else text


def ngettext(singular: str, plural: str, num: int, **variables: Any) -> str:
    """The form of ``singular``/``plural`` for ``num`` in the request's language, with
    ``%(num)d`` and ``variables`` filled in; the templates' ``_2fa_plural``."""
    variables.setdefault("num", num)
    return translations().ngettext(singular, plural, num) % variables


def page_language() -> str:
    """The BCP 47 tag of the language the request's page is in (``"da"``; ``"en"`` without
    a catalogue); the templates' ``_2fa_language()``."""
    return language_of(translations())


def localized_why(error: TwoFactorError) -> str:
    """The ``why`` of ``error`` in the language of the current request, as the extension's
    JSON errors and pages say it: the extension's own messages are translated, any other
    (an app's own errors, Werkzeug's and Authlib's descriptions) stays as it is.

    For an app's own pages that show an error of the extension. English outside a request
    and without Flask-Babel installed.
    """
    return gettext(error.why)
