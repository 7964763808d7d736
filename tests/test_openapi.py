"""The shipped OpenAPI 3.1 document, and a schemathesis fuzz of the live routes against it.

Every generated request, valid or not, must get an answer the document describes, never a 500.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from hypothesis import HealthCheck
from hypothesis import assume
from hypothesis import given
from hypothesis import settings

import flask_ucloud_2fa
from flask_ucloud_2fa import openapi_document

from helpers import add_user


def test_the_document_lists_every_route_of_the_blueprint(app: Flask) -> None:
    served = {
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("ucloud_2fa.") and rule.endpoint != "ucloud_2fa.openapi"
    }
    assert set(openapi_document()["paths"]) == served


def test_the_document_follows_the_url_prefix() -> None:
    paths = set(openapi_document("/mfa/")["paths"])
    assert paths == {
        "/mfa/status",
        "/mfa",
        "/mfa/challenge",
        "/mfa/challenge/form",
        "/mfa/recovery-codes",
        "/mfa/disable",
    }


def test_the_document_says_which_prefix_its_paths_use() -> None:
    default = openapi_document()["info"]["description"]
    assert "the default UCLOUD_2FA_URL_PREFIX, /auth/2fa;" in default
    described = openapi_document("/mfa")["info"]["description"]
    assert "/auth/2fa" not in described
    assert "this app's UCLOUD_2FA_URL_PREFIX, /mfa;" in described


def test_the_document_has_the_package_version() -> None:
    assert openapi_document()["info"]["version"] == flask_ucloud_2fa.__version__


def test_the_app_serves_its_document(client: FlaskClient) -> None:
    response = client.get("/auth/2fa/openapi.json")
    assert response.status_code == 200
    assert response.json == openapi_document()
    assert response.json["openapi"] == "3.1.0"


@pytest.fixture
def fuzzed_app(make_sqlite_app: Callable[..., Flask]) -> tuple[Flask, str]:
    """The integrator app on SQLite with a user whose bearer token the fuzzer sends."""
    app = make_sqlite_app()
    return app, add_user(app, "fuzz").token


OPERATIONS = [
    (path, method.upper())
    for path, operations in openapi_document()["paths"].items()
    for method in operations
]


@pytest.mark.parametrize(("path", "method"), OPERATIONS)
def test_fuzz_the_live_routes(fuzzed_app: tuple[Flask, str], path: str, method: str) -> None:
    """Valid and invalid requests alike get an answer the document describes, never a 500."""
    app, token = fuzzed_app
    operation = schemathesis.openapi.from_wsgi("/auth/2fa/openapi.json", app)[path][method]

    @given(case=operation.as_strategy())
    @settings(
        max_examples=60,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
    )
    def fuzz(case: Any) -> None:
        # JSON Schema counts 2590.0 as an integer; the contract refuses floats (400), and no
        # schema can tell the two apart, so such bodies are not "valid data" here.
        body = case.body if isinstance(case.body, dict) else {}
        assume(not isinstance(body.get("verificationCode"), float))
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"})

    fuzz()
