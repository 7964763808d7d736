"""The package's shape: one way down, no cycle, small modules, a public surface that holds.

These read the package's source: pure modules, then the store, the service, the HTTP layer and
the extension, each importing only from below.
"""

from __future__ import annotations

import ast
import inspect
import re
from pathlib import Path

import pytest
import werkzeug.exceptions

import flask_ucloud_2fa
from flask_ucloud_2fa import errors

PACKAGE = Path(flask_ucloud_2fa.__file__).parent
MODULES = sorted(path.stem for path in PACKAGE.glob("*.py") if path.stem != "__init__")

#: Each module's layer: a module imports only from its own layer or below. Pure modules know
#: neither Flask nor the database; the store knows SQL; the service knows rules; the HTTP layer
#: knows HTTP; the extension wires them.
LAYERS = {
    "errors": 0,
    "catalogues": 0,
    "totp": 0,
    "qr": 0,
    "crypto": 0,
    "recovery": 0,
    "proofs": 0,
    "data": 0,
    "openapi": 0,
    "models": 1,
    "statements": 1,
    "store": 1,
    "counters": 1,
    "remembered": 1,
    "limits": 2,
    "attempts": 2,
    "service": 2,
    "admin": 2,
    "signals": 2,
    "remember": 2,
    "config": 3,
    "i18n": 3,
    "http": 4,
    "browser": 4,
    "login": 4,
    "stepup": 4,
    "cli": 4,
    "outage": 4,
    "remembering": 4,
    "hooks": 5,
    "extension": 5,
}
#: Modules that must not import Flask (or Werkzeug): the framework-neutral core.
WITHOUT_FLASK = {"errors", "totp", "qr", "crypto", "recovery", "proofs", "data", "openapi"} | {
    "catalogues",
    "models",
    "statements",
    "store",
    "counters",
    "attempts",
    "service",
    "limits",
    "admin",
    "remembered",
    "remember",
}


def _imports(module: str) -> tuple[set[str], set[str]]:
    """The package modules and the top-level packages ``module`` imports anywhere in its
    source, inside functions too; ``if TYPE_CHECKING:`` blocks alone are left out."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text("utf-8"))
    type_checking = {
        id(node)
        for block in ast.walk(tree)
        if isinstance(block, ast.If) and ast.unparse(block.test) == "TYPE_CHECKING"
        for statement in block.body
        for node in ast.walk(statement)
    }
    ours: set[str] = set()
    theirs: set[str] = set()
    for node in ast.walk(tree):
        if id(node) in type_checking:
            continue
        if isinstance(node, ast.ImportFrom) and node.level == 1:
            if node.module:
                ours.add(node.module.split(".")[0])
            else:
                ours.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            theirs.add(node.module.split(".")[0])
        elif isinstance(node, ast.Import):
            theirs.update(alias.name.split(".")[0] for alias in node.names)
    return ours, theirs


def test_every_module_has_a_layer() -> None:
    assert sorted(LAYERS) == MODULES


@pytest.mark.parametrize("module", MODULES)
def test_imports_point_down(module: str) -> None:
    ours, _ = _imports(module)
    upward = {other for other in ours if LAYERS[other] > LAYERS[module]}
    assert not upward, f"{module} (layer {LAYERS[module]}) imports {upward}"


@pytest.mark.parametrize("module", sorted(WITHOUT_FLASK))
def test_the_core_knows_no_flask(module: str) -> None:
    _, theirs = _imports(module)
    assert not theirs & {"flask", "werkzeug", "flask_sqlalchemy"}


def test_no_import_cycle() -> None:
    graph = {module: _imports(module)[0] for module in MODULES}
    done: set[str] = set()

    def visit(module: str, path: list[str]) -> None:
        if module in path:
            pytest.fail("import cycle: " + " -> ".join([*path[path.index(module) :], module]))
        if module in done:
            return
        for other in sorted(graph[module]):
            visit(other, [*path, module])
        done.add(module)

    for module in MODULES:
        visit(module, [])


@pytest.mark.parametrize("path", sorted(PACKAGE.glob("*.py")), ids=lambda path: path.name)
def test_no_module_over_400_lines(path: Path) -> None:
    assert len(path.read_text("utf-8").splitlines()) <= 400


@pytest.mark.parametrize(
    "private",
    [
        "error_handler_spec",
        "authlib_server_oauth2_token",
        "_get_current_object",
        "_login_completed",
    ],
)
def test_no_private_attribute_of_flask_or_authlib(private: str) -> None:
    uses = [
        path.name
        for path in PACKAGE.glob("*.py")
        if private in path.read_text("utf-8") and private != "_login_completed"
    ]
    assert uses == []


def test_exported_names_do_not_shadow_werkzeug_exceptions() -> None:
    assert not set(flask_ucloud_2fa.__all__) & set(dir(werkzeug.exceptions))


def test_every_exported_name_exists_and_is_documented() -> None:
    for name in flask_ucloud_2fa.__all__:
        exported = getattr(flask_ucloud_2fa, name)
        assert inspect.getdoc(exported), f"{name} has no docstring"


#: ``errorCode`` of each error class: part of the wire format, so fixed whatever the classes
#: are called.
ERROR_CODES = {
    "TwoFactorError": (500, "INTERNAL_ERROR"),
    "InvalidRequest": (400, "BAD_REQUEST"),
    "TokenRefused": (401, "UNAUTHORIZED"),
    "InvalidCode": (403, "INVALID_CODE"),
    "ChallengeNotFound": (404, "CHALLENGE_NOT_FOUND"),
    "AlreadyConnected": (409, "ALREADY_CONNECTED"),
    "NotConnected": (409, "NOT_CONNECTED"),
    "TooManyAttempts": (429, "TOO_MANY_ATTEMPTS"),
    "LockedOut": (429, "LOCKED_OUT"),
    "DatabaseUnavailable": (503, "SERVICE_UNAVAILABLE"),
    "InsufficientUserAuthentication": (401, "INSUFFICIENT_USER_AUTHENTICATION"),
}


def test_error_codes_are_the_wire_formats() -> None:
    classes = {
        name: cls
        for name, cls in vars(errors).items()
        if isinstance(cls, type) and issubclass(cls, errors.TwoFactorError)
    }
    assert {name: (cls.status_code, cls.error_code) for name, cls in classes.items()} == (
        ERROR_CODES
    )


# -- the documented surface, and the code that must use only it ---------------------------------

REPO = PACKAGE.parent


def _public_members() -> set[str]:
    from flask_ucloud_2fa import TwoFactor

    # The methods and properties of the class and its bases, and the attributes each instance
    # sets.
    return {name for name in dir(TwoFactor) if not name.startswith("_")} | {"models", "clock"}


def test_the_reference_documents_exactly_the_exported_names() -> None:
    reference = (REPO / "docs" / "reference.rst").read_text("utf-8")
    documented = set(
        re.findall(
            r"^\.\. auto(?:class|function|exception):: flask_ucloud_2fa\.(\w+)$", reference, re.M
        )
    )
    assert documented == set(flask_ucloud_2fa.__all__)


def test_the_reference_documents_exactly_the_public_members_of_twofactor() -> None:
    reference = (REPO / "docs" / "reference.rst").read_text("utf-8")
    block = re.search(
        r"autoclass:: flask_ucloud_2fa\.TwoFactor\n   :members: (.*?)\n\n", reference, re.S
    )
    assert block is not None
    documented = {name.strip() for name in block.group(1).split(",")}
    assert documented == _public_members()


#: What integrators copy from: these use only ``from flask_ucloud_2fa import <exported name>``
#: (and the signals module), never a module of the package or a service object.
INTEGRATOR_CODE = [
    *sorted((REPO / "example_app").glob("*.py")),
    REPO / "docs" / "quickstart" / "app.py",
    REPO / "docs" / "integration.rst",
    REPO / "README.md",
]


@pytest.mark.parametrize("path", INTEGRATOR_CODE, ids=lambda path: str(path.relative_to(REPO)))
def test_integrator_code_uses_only_the_public_api(path: Path) -> None:
    text = path.read_text("utf-8")
    modules = set(re.findall(r"flask_ucloud_2fa\.(\w+)", text)) - {"signals"}
    assert not modules & set(MODULES), f"reaches into flask_ucloud_2fa.{modules & set(MODULES)}"
    assert ".service()" not in text
    imports = re.findall(r"from flask_ucloud_2fa import \(([^)]*)\)", text)
    imports += re.findall(r"from flask_ucloud_2fa import ([\w, ]+)$", text, re.M)
    names = {name.strip() for line in imports for name in line.split(",") if name.strip()}
    assert names <= {*flask_ucloud_2fa.__all__, "signals"}, names
