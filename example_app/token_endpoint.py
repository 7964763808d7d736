"""The token endpoint's answers to failures, as RFC 6749 section 5.2 has them where Authlib's
defaults differ: a client that fails to authenticate through the ``Authorization`` header gets
401 with ``WWW-Authenticate`` (Authlib answers 400 when ``client_secret_basic`` is not among
the grant's methods, as for the public demo client), and a request without ``grant_type`` is
``invalid_request`` (Authlib answers ``unsupported_grant_type``)."""

from __future__ import annotations

from authlib.integrations.flask_oauth2 import AuthorizationServer
from authlib.oauth2 import OAuth2Request
from authlib.oauth2.rfc6749 import InvalidClientError
from authlib.oauth2.rfc6749 import InvalidRequestError
from flask import request

from .models import OAuth2Client


class Server(AuthorizationServer):
    """Authlib's server, with RFC 6749 section 5.2 for clients that authenticate with the
    ``Authorization`` header: their failure is a 401 with ``WWW-Authenticate``."""

    def authenticate_client(
        self, request: OAuth2Request, methods: list[str], endpoint: str = "token"
    ) -> OAuth2Client:
        try:
            client: OAuth2Client = super().authenticate_client(request, methods, endpoint)
        except InvalidClientError as error:
            if request.headers.get("Authorization"):
                error.status_code = 401
            raise
        return client


def missing_grant_type() -> InvalidRequestError | None:
    """The error of a token request without ``grant_type``, else ``None``."""
    if request.form.get("grant_type"):
        return None
    return InvalidRequestError("Missing 'grant_type' parameter.")
