"""The one build step setup.cfg cannot say: the message catalogues are compiled.

The sources of the extension's translations are the ``.po`` files under
``flask_ucloud_2fa/translations/``; the package reads the ``.mo`` files compiled from them
(``flask_ucloud_2fa/catalogues.py``). Neither the repository nor the sdist holds a ``.mo`` file:
building the package compiles them into the wheel, with Babel (a build requirement in
``pyproject.toml``), and an editable install (``make install``) into the source tree.
"""

from __future__ import annotations

from pathlib import Path

from setuptools import setup
from setuptools.command.build_py import build_py

ROOT = Path(__file__).resolve().parent
#: The extension's catalogues, relative to the root (as in the wheel).
CATALOGUES = "flask_ucloud_2fa/translations/*/LC_MESSAGES/*.po"


def compile_catalogue(po_file: Path, mo_file: Path) -> None:
    """Compile ``po_file`` into ``mo_file``, leaving out fuzzy entries (as ``pybabel compile``
    does): a translation nobody confirmed is not shown."""
    from babel.messages.mofile import write_mo
    from babel.messages.pofile import read_po

    with po_file.open("rb") as source:
        catalog = read_po(source, locale=po_file.parents[1].name, domain=po_file.stem)
    mo_file.parent.mkdir(parents=True, exist_ok=True)
    with mo_file.open("wb") as target:
        write_mo(target, catalog)


class BuildPyWithCatalogues(build_py):
    """``build_py``, then the catalogues compiled beside the package's modules."""

    def run(self) -> None:
        super().run()
        # An editable install imports the package from the source tree.
        target = ROOT if self.editable_mode else Path(self.build_lib)
        for po_file in sorted(ROOT.glob(CATALOGUES)):
            relative = po_file.relative_to(ROOT).with_suffix(".mo")
            compile_catalogue(po_file, target / relative)


setup(cmdclass={"build_py": BuildPyWithCatalogues})
