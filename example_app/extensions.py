"""The app's extension objects, made once and bound to each app in ``create_app``."""

from __future__ import annotations

from authlib.integrations.flask_oauth2 import ResourceProtector
from flask_sqlalchemy import SQLAlchemy

db = SQLAlchemy()
#: Checks the bearer tokens of the API routes, the extension's JSON routes among them.
require_oauth = ResourceProtector()
