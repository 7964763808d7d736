"""The OpenAPI 3.1 document of every route the extension serves, shipped in the package."""

from __future__ import annotations

import copy
import json
from functools import cache
from importlib import resources
from typing import Any

#: The prefix the shipped document's paths are written with.
DEFAULT_PREFIX = "/auth/2fa"


@cache
def _shipped() -> dict[str, Any]:
    text = resources.files(__package__).joinpath("openapi.json").read_text("utf-8")
    document: dict[str, Any] = json.loads(text)
    return document


def openapi_document(url_prefix: str = DEFAULT_PREFIX) -> dict[str, Any]:
    """The OpenAPI document with its paths under ``url_prefix`` (``UCLOUD_2FA_URL_PREFIX``)."""
    document = copy.deepcopy(_shipped())
    prefix = url_prefix.rstrip("/")
    document["paths"] = {
        prefix + path[len(DEFAULT_PREFIX) :]: operations
        for path, operations in document["paths"].items()
    }
    if prefix != DEFAULT_PREFIX:
        info = document["info"]
        info["description"] = info["description"].replace(
            f"the default UCLOUD_2FA_URL_PREFIX, {DEFAULT_PREFIX}",
            f"this app's UCLOUD_2FA_URL_PREFIX, {prefix}",
        )
    return document
