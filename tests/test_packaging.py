"""The package as it is published: its metadata declares what it imports, the demo extra holds
what the example app imports and no development tool, the license is the declared one, and the
version has one source and stays a development version until a release.

The built sdist and wheel themselves are checked by ``.ci/package``: ``twine check --strict``,
the wheel alone in a clean venv (``.ci/smoke.py``), the sdist's own tests.
"""

from __future__ import annotations

import ast
import configparser
import re
import sys
from importlib import metadata
from pathlib import Path

import flask_ucloud_2fa

ROOT = Path(__file__).resolve().parents[1]
#: What a development install brings and a user's or the demo's must not.
DEVELOPMENT_TOOLS = {"pytest", "pytest-flask", "hypothesis", "schemathesis", "playwright"}
DEVELOPMENT_TOOLS |= {"axe-playwright-python"}
DEVELOPMENT_TOOLS |= {"sphinx", "furo", "mypy", "ruff", "bandit", "gunicorn", "build", "twine"}


def canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def setup_cfg() -> configparser.ConfigParser:
    parser = configparser.ConfigParser()
    parser.read(ROOT / "setup.cfg")
    return parser


def requirement_names(lines: str) -> set[str]:
    """The distributions a setup.cfg list of requirements names."""
    return {
        canonical(re.split(r"[\s\[<>=!~;]", line.strip(), maxsplit=1)[0])
        for line in lines.splitlines()
        if line.strip() and not line.strip().startswith("#")
    }


def runtime() -> set[str]:
    return requirement_names(setup_cfg()["options"]["install_requires"])


def extra(name: str) -> set[str]:
    return requirement_names(setup_cfg()["options.extras_require"][name])


def imported_distributions(folder: Path) -> set[str]:
    """The installed distributions that the modules of ``folder`` import, at any depth."""
    modules: set[str] = set()
    for path in folder.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                modules.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules.add(node.module.split(".")[0])
    modules -= set(sys.stdlib_module_names) | {"__future__", "flask_ucloud_2fa", "example_app"}
    providers = metadata.packages_distributions()
    unknown = modules - set(providers)
    assert not unknown, f"{folder.name} imports modules no installed distribution provides"
    return {canonical(dist) for module in modules for dist in providers[module]}


def test_every_package_the_extension_imports_is_a_runtime_dependency() -> None:
    # Flask-Babel is optional: imported where it is used, an ImportError meaning English.
    imported = imported_distributions(ROOT / "flask_ucloud_2fa") - extra("babel")
    assert {"flask", "blinker", "pyotp"} <= imported
    assert imported <= runtime(), f"undeclared: {sorted(imported - runtime())}"


def test_the_babel_extra_is_flask_babel_with_a_lower_bound_only() -> None:
    lines = setup_cfg()["options.extras_require"]["babel"].split()
    assert lines == ["Flask-Babel>=4.0"]
    assert "flask-babel" in imported_distributions(ROOT / "flask_ucloud_2fa")
    assert extra("babel") <= extra("demo") & extra("dev")


def test_the_demo_extra_is_what_the_example_app_imports_besides_the_runtime() -> None:
    imported = imported_distributions(ROOT / "example_app")
    assert extra("demo") == imported - runtime()
    assert {"flask-login", "joserfc"} <= extra("demo")
    assert not extra("demo") & DEVELOPMENT_TOOLS


def test_the_dev_extra_holds_the_demo_and_the_packaging_tools() -> None:
    assert extra("demo") | {"build", "twine"} <= extra("dev")


def test_the_license_is_the_declared_bsd_3_clause_license() -> None:
    declared = setup_cfg()["metadata"]
    assert declared["license"] == "BSD-3-Clause"
    assert declared["license_files"] == "LICENSE"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License\n\nCopyright (c) 2026, The Flask-UCloud-2FA")
    assert "Neither the name of the copyright holder nor the names of its" in text


def test_the_version_has_one_source_and_is_a_development_version() -> None:
    assert setup_cfg()["metadata"]["version"] == "attr: flask_ucloud_2fa.__version__"
    assert re.fullmatch(r"\d+\.\d+\.\d+\.dev\d+", flask_ucloud_2fa.__version__)
