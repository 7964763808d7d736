"""Sphinx configuration of the Flask-UCloud-2FA documentation (``make docs``)."""

from __future__ import annotations

import importlib.util
import os
import re
import sys
import warnings
from typing import Any

from sqlalchemy.exc import SAWarning

sys.path.insert(0, os.path.abspath(".."))

import flask_ucloud_2fa  # noqa: E402 - importable from the line above

# autodoc reads every attribute of the model mixins, which are not mapped classes themselves.
warnings.filterwarnings("ignore", "Unmanaged access of declarative attribute", SAWarning)

project = "Flask-UCloud-2FA"
author = "The Flask-UCloud-2FA contributors"
copyright = "2026, The Flask-UCloud-2FA contributors"
release = flask_ucloud_2fa.__version__
version = ".".join(release.split(".")[:2])

extensions = [
    "sphinx.ext.autodoc",
    "sphinx.ext.intersphinx",
    "sphinx.ext.graphviz",
    "sphinx.ext.viewcode",
]

# No network at build time: intersphinx inventories are not fetched (see intersphinx_mapping),
# diagrams are rendered by the local Graphviz ``dot``.
intersphinx_mapping: dict[str, tuple[str, str | None]] = {}
graphviz_output_format = "svg"

autodoc_member_order = "bysource"
autodoc_typehints = "description"
autodoc_default_options = {"members": True, "show-inheritance": True}
nitpicky = False

exclude_patterns = ["_build", "examples", "diagrams"]
templates_path: list[str] = []
html_static_path = ["_static"]
html_title = "Flask-UCloud-2FA"

html_theme = "furo" if importlib.util.find_spec("furo") else "alabaster"

#: A code block copied from a file of the repository (``tests/example_app/
#: test_user_facing_files.py`` keeps it equal to the file): the comment ``.. copy of PATH``, with
#: the block's Sphinx options indented under it, then a ``code-block`` without options. A code
#: host drops a ``code-block`` whose options docutils does not know (``:caption:``,
#: ``:emphasize-lines:``), so the page keeps them in the comment, which the code host hides, and
#: Sphinx moves them back onto the block here.
COPY = re.compile(
    r"^\.\. copy of \S+\n(?P<options>(?:   :[^\n]*\n)*)\n(?P<block>\.\. code-block:: \S+\n)", re.M
)


def _options_onto_copies(app: Any, docname: str, source: list[str]) -> None:
    source[0] = COPY.sub(lambda copy: copy["block"] + copy["options"], source[0])


def setup(app: Any) -> None:
    app.connect("source-read", _options_onto_copies)
