"""Sphinx configuration of the Flask-UCloud-2FA documentation (``make docs``)."""

from __future__ import annotations

import importlib.util
import os
import sys
import warnings

from sqlalchemy.exc import SAWarning

sys.path.insert(0, os.path.abspath(".."))

# autodoc reads every attribute of the model mixins, which are not mapped classes themselves.
warnings.filterwarnings("ignore", "Unmanaged access of declarative attribute", SAWarning)

project = "Flask-UCloud-2FA"
author = "Flask-UCloud-2FA contributors"
copyright = "2026, Flask-UCloud-2FA contributors"
release = "0.1.0.dev0"
version = "0.1"

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
