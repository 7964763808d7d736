"""The app's extension objects, made once and bound to each app in ``create_app``."""

from __future__ import annotations

from authlib.integrations.flask_oauth2 import ResourceProtector
from flask_babel import Babel
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
#: Checks the bearer tokens of the API routes, the extension's JSON routes among them.
require_oauth = ResourceProtector()
#: The app's translations, and the language of the extension's pages and errors (.i18n).
babel = Babel()
