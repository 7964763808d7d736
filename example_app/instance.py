"""Keys kept in the instance folder, for a checkout that runs without configured keys."""

from __future__ import annotations

import os
from collections.abc import Callable

from flask import Flask


def instance_key(app: Flask, name: str, generate: Callable[[], str]) -> str:
    """A key kept in the instance folder, made on first use, so it survives restarts and is
    shared by every worker of one checkout."""
    path = os.path.join(app.instance_path, name)
    if not os.path.exists(path):
        # Written whole to a file of our own, then linked into place: a worker starting at the
        # same moment sees either no key or the whole key, and the first link wins.
        draft = f"{path}.{os.getpid()}.draft"
        with open(os.open(draft, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as file:
            file.write(generate())
        try:
            os.link(draft, path)
        except FileExistsError:
            pass
        finally:
            os.unlink(draft)
    with open(path) as file:
        return file.read().strip()
