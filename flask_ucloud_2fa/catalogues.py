"""The extension's own message catalogues: the marker for messages written in Python, and the
compiled catalogues shipped in the package.

The messages live in the domain ``flask_ucloud_2fa``, apart from an app's own (``messages``),
under ``flask_ucloud_2fa/translations/<language>/LC_MESSAGES/``: the ``.po`` files are the
sources, the ``.mo`` files are compiled from them by the build and by ``make install``. A
catalogue is read with the standard library's :mod:`gettext`, so reading one needs no Flask and
no Babel; which language a request gets is the HTTP layer's choice
(:mod:`flask_ucloud_2fa.i18n`).
"""

from __future__ import annotations

import functools
import gettext
from collections.abc import Iterable
from pathlib import Path

#: The gettext domain of the extension's messages: the name of its ``.po`` and ``.mo`` files.
DOMAIN = "flask_ucloud_2fa"
#: The folder of the catalogues, one subfolder per language.
DIRECTORY = Path(__file__).parent / "translations"
#: The language the messages are written in, which needs no catalogue.
SOURCE_LANGUAGE = "en"


def N_(message: str) -> str:
    """Mark ``message`` for extraction and return it unchanged.

    Messages that are made before the request's language is known (an error's ``why``) are
    marked with it, and translated when they are shown.
    """
    return message


@functools.lru_cache(maxsize=1)
def available_languages() -> tuple[str, ...]:
    """The languages with a compiled catalogue, sorted (``("da", "de")``)."""
    if not DIRECTORY.is_dir():
        return ()
    return tuple(
        sorted(
            folder.name
            for folder in DIRECTORY.iterdir()
            if (folder / "LC_MESSAGES" / f"{DOMAIN}.mo").is_file()
        )
    )


def negotiate(accepted: Iterable[tuple[str, float]], languages: Iterable[str]) -> str | None:
    """The first of ``languages`` (``"da"``, ...) the client accepts, by its preferences: each
    accepted tag from the most wanted, whole and then its language alone (``da-DK``, ``da``);
    ``*`` is the source language. ``None`` when nothing matches (RFC 4647's lookup).

    :param accepted: ``(tag, quality)`` pairs, as Werkzeug parses ``Accept-Language``.
    """
    offered = {language.lower(): language for language in languages}
    for tag, quality in sorted(accepted, key=lambda pair: -pair[1]):
        if quality <= 0:
            continue
        if tag == "*":
            return SOURCE_LANGUAGE
        tag = tag.lower().replace("_", "-")
        for candidate in (tag, tag.split("-")[0]):
            if candidate in offered:
                return offered[candidate]
    return None


@functools.lru_cache(maxsize=32)
def catalogue(locale: str | None) -> gettext.NullTranslations:
    """The compiled catalogue for ``locale`` (``"da"``, ``"de_AT"``: a territory falls back to
    its language), or one that leaves every message in English when there is none.

    :param locale: a locale name as Babel writes them, or ``None`` for English.
    """
    if locale is None or locale.split("_")[0] == SOURCE_LANGUAGE:
        return gettext.NullTranslations()
    return gettext.translation(DOMAIN, DIRECTORY, languages=[locale], fallback=True)


def language_of(translations: gettext.NullTranslations) -> str:
    """The BCP 47 tag of the language ``translations`` translate into (``"da"``, ``"de-AT"``),
    for a page's ``lang`` attribute; ``"en"`` for no catalogue."""
    language = translations.info().get("language") or SOURCE_LANGUAGE
    return language.replace("_", "-")
