"""The app's languages: English, Danish and German, chosen by the browser's
``Accept-Language``.

Flask-Babel translates the app's own pages from its catalogues (domain ``messages``, in
``example_app/translations/``). The extension has catalogues of its own and, because Flask-Babel
is initialised here, asks ``flask_babel.get_locale()``: the selector below chooses the language
of the extension's challenge page and JSON errors too. After changing a message, ``make
messages`` extracts and merges them, and ``make install`` compiles them.
"""

from __future__ import annotations

from flask import Flask
from flask import request
from flask_babel import get_locale

from .extensions import babel

#: The languages of the app's catalogues, English (the language it is written in) first.
LANGUAGES = ("en", "da", "de")


def select_locale() -> str | None:
    """The first of :data:`LANGUAGES` the browser accepts, in its order of preference: each
    accepted tag whole, then its language alone (``da-DK``, then ``da``); ``None``, so the
    default locale (English), when none is one of them."""
    for tag, quality in sorted(request.accept_languages, key=lambda pair: -pair[1]):
        tag = tag.lower().replace("_", "-")
        for candidate in (tag, tag.split("-")[0]):
            if quality > 0 and candidate in LANGUAGES:
                return candidate
    return None


def page_language() -> str:
    """The BCP 47 tag of the request's language, for ``<html lang>``."""
    return str(get_locale() or LANGUAGES[0]).replace("_", "-")


def init_i18n(app: Flask) -> None:
    """Flask-Babel on ``app``, with :func:`select_locale`; ``page_language()`` in templates.

    ``{% trans %}`` blocks are trimmed (``pybabel extract`` trims them too, see
    ``example_app/babel.cfg``), so a paragraph may wrap in the template.
    """
    babel.init_app(app, locale_selector=select_locale)
    app.jinja_env.policies["ext.i18n.trimmed"] = True
    app.add_template_global(page_language)
