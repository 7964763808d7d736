"""What a stranger reads stands on its own: the README, the docs and the changelog.

Every relative link of ``README.md``, ``CHANGES.rst`` and ``docs/*.rst`` leads to a file of the
repository; no user-facing file points outside the repository or cites a tracker's issue
numbers; the README's code is an excerpt of the runnable quickstart app; and the code that
``docs/quickstart.rst`` and ``docs/api.rst`` show is in the page itself (a code host renders no
``literalinclude``), equal to the file it is a copy of, which the tests run
(``test_docs_build.py``) or record (``test_docs_examples.py``).

A copy is a comment, ``.. copy of PATH`` (relative to ``docs/``) with the block's Sphinx options
indented under it, then a ``code-block`` without options: a code host drops a ``code-block``
whose options plain docutils does not know, so ``docs/conf.py`` moves them onto the block for
Sphinx only. After a deliberate change of such a file, ``UCLOUD_2FA_RECORD_EXAMPLES=1`` rewrites
the copies from their files, as it rewrites the recordings; then review the diff.
"""

from __future__ import annotations

import ast
import html
import os
import re
from pathlib import Path

import pytest
from docutils.core import publish_string
from docutils.writers.html5_polyglot import Writer

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
RECORD = os.environ.get("UCLOUD_2FA_RECORD_EXAMPLES") == "1"
QUICKSTART_APP = DOCS / "quickstart" / "app.py"

#: The files people read, and the folders whose every text file they may read.
USER_FACING_FILES = ["README.md", "CHANGES.rst", "LICENSE", "setup.cfg", "pyproject.toml"]
USER_FACING_FILES += ["Makefile", "MANIFEST.in"]
USER_FACING_FOLDERS = ["docs", "example_app", "flask_ucloud_2fa", "bench"]
#: Folders that hold what a run made, not the repository's files.
MADE_BY_A_RUN = {"_build", "__pycache__", "instance"}
#: Files the docs name that ``make bench`` and ``make docs`` write.
GENERATED = {"bench/results.json", "docs/_build/html"}

OUTSIDE_THE_REPOSITORY = re.compile(r"\.\./shared|shared/spec")
ISSUE_NUMBER = re.compile(r"\b(?:issue|ticket|bug)s?\s*(?:#|no\.?\s*)?\d+\b", re.IGNORECASE)
#: ``#12`` in prose (not a colour, not a URL fragment).
HASH_NUMBER = re.compile(r"(?<![\w&/#])#\d{1,5}\b(?![0-9a-fA-F])")

MARKDOWN_LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)|<([^<>\s]+)>")
RST_DIRECTIVE_PATH = re.compile(
    r"\.\. (?:image|figure|graphviz|include|literalinclude):: (\S+)", re.MULTILINE
)
RST_LINK = re.compile(r"`[^`<]*<([^<>`]+)>`_")
RST_DOWNLOAD = re.compile(r":download:`(?:[^`<]*<)?([^<>`]+)>?`")
#: A path of the repository named in the text: ``tests/...``, ``docs/...`` and so on.
REPOSITORY_PATH = re.compile(
    r"(?:``|`)((?:tests|docs|example_app|flask_ucloud_2fa|bench|\.ci)/[^`\s<>*]*)"
)
COPY = re.compile(
    r"^\.\. copy of (?P<path>\S+)\n(?P<options>(?:   :[^\n]*\n)*)\n"
    r"\.\. code-block:: \S+\n\n"
    r"(?P<code>(?:(?:   [^\n]*)?\n)*?)"
    r"(?=\S|\n*\Z)",
    re.MULTILINE,
)


def _is_url(target: str) -> bool:
    return re.match(r"[a-z][a-z0-9+.-]*:", target) is not None or target.startswith("#")


def _links(path: Path) -> list[tuple[Path, str]]:
    """The files ``path`` links to or names, each with the text that names it."""
    text = path.read_text()
    found: list[tuple[Path, str]] = []
    if path.suffix == ".md":
        targets = [link or autolink for link, autolink in MARKDOWN_LINK.findall(text)]
        found += [(path.parent / t.split("#")[0], t) for t in targets if not _is_url(t)]
    else:
        targets = RST_DIRECTIVE_PATH.findall(text) + RST_DOWNLOAD.findall(text)
        targets += [t for t in RST_LINK.findall(text) if not t.endswith("_")]
        found += [(path.parent / t.split("#")[0], t) for t in targets if not _is_url(t)]
    for named in REPOSITORY_PATH.findall(text):
        if named.rstrip("/") not in GENERATED:
            found.append((ROOT / named, named))
    return found


@pytest.mark.parametrize(
    "page",
    ["README.md", "CHANGES.rst", *sorted(f"docs/{page.name}" for page in DOCS.glob("*.rst"))],
)
def test_every_relative_link_leads_to_a_file_of_the_repository(page: str) -> None:
    links = _links(ROOT / page)
    missing = [text for target, text in links if not target.exists()]
    assert not missing, f"{page} links to files that do not exist: {missing}"
    outside = [text for target, text in links if ROOT not in target.resolve().parents]
    assert not outside, f"{page} links outside the repository: {outside}"


def test_the_readme_links_to_the_docs_it_names() -> None:
    linked = {text for _, text in _links(ROOT / "README.md")}
    assert {"docs/quickstart.rst", "docs/api.rst", "docs/quickstart/app.py"} <= linked


def _user_facing_text_files() -> list[Path]:
    files = [ROOT / name for name in USER_FACING_FILES]
    for folder in USER_FACING_FOLDERS:
        files += [
            path
            for path in (ROOT / folder).rglob("*")
            if path.is_file() and not MADE_BY_A_RUN & set(path.relative_to(ROOT).parts)
        ]
    texts = []
    for path in sorted(files):
        try:
            path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # images and other binary files
        texts.append(path)
    return texts


def test_no_user_facing_file_points_outside_the_repository_or_cites_an_issue() -> None:
    files = _user_facing_text_files()
    assert ROOT / "README.md" in files and ROOT / "example_app" / "demo.py" in files
    offences = []
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
            found = OUTSIDE_THE_REPOSITORY.search(line) or ISSUE_NUMBER.search(line)
            if found is None and path.suffix in (".md", ".rst"):
                found = HASH_NUMBER.search(line)
            if found is not None:
                offences.append(f"{path.relative_to(ROOT)}:{number}: {found[0]!r}")
    assert not offences, "user-facing files refer to what strangers cannot see:\n" + "\n".join(
        offences
    )


def test_the_readme_code_is_an_excerpt_of_the_runnable_quickstart_app() -> None:
    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"(.*)\n\n```python\n(.*?)```", readme, flags=re.DOTALL)
    assert len(blocks) == 1, "one Python example in the README"
    before, code = blocks[0]
    ast.parse(code)
    introduction = " ".join(before.split("\n\n")[-1].split())
    assert "An excerpt of [docs/quickstart/app.py](docs/quickstart/app.py)" in introduction
    assert "`...` marks what is left out" in introduction
    app_lines = QUICKSTART_APP.read_text().splitlines()
    excerpt = [
        line for line in code.splitlines() if line.strip() and not line.strip().startswith("...")
    ]
    assert len(excerpt) >= 15
    position = 0
    for line in excerpt:
        assert line in app_lines[position:], (
            f"the README's line {line!r} is not the next such line of docs/quickstart/app.py"
        )
        position = app_lines.index(line, position) + 1
    assert "    return two_factor.login(user.id)" in "\n".join(excerpt)


def _copies(page: Path) -> list[re.Match[str]]:
    text = page.read_text()
    copies = list(COPY.finditer(text))
    assert len(copies) == text.count("\n.. copy of "), (
        f"docs/{page.name}: a copy is '.. copy of PATH', its options indented under it, a blank"
        " line, then '.. code-block:: LANGUAGE' without options (a code host drops those)"
    )
    return copies


def _code_of(copy: re.Match[str]) -> str:
    lines = copy["code"].rstrip("\n").split("\n")
    return "\n".join(line[3:] for line in lines) + "\n"


def _as_block(text: str) -> str:
    return "".join(f"   {line}\n" if line else "\n" for line in text.rstrip("\n").split("\n"))


def _rewrite_copies(page: Path) -> None:
    """Replace each copy on ``page`` with the current text of its file."""
    text = page.read_text()
    for copy in reversed(_copies(page)):
        blank_lines_after = len(copy["code"]) - len(copy["code"].rstrip("\n")) - 1
        code = _as_block((DOCS / copy["path"]).read_text()) + "\n" * blank_lines_after
        text = text[: copy.start("code")] + code + text[copy.end("code") :]
    page.write_text(text)


@pytest.mark.parametrize(
    ("page", "sources"),
    [
        ("quickstart.rst", ["quickstart/app.py"]),
        (
            "api.rst",
            sorted(
                f"examples/{path.name}"
                for path in (DOCS / "examples").iterdir()
                if path.suffix in (".sh", ".py", ".ts", ".json")
            ),
        ),
    ],
)
def test_pages_show_their_code_inline_equal_to_its_file(page: str, sources: list[str]) -> None:
    path = DOCS / page
    if RECORD:
        _rewrite_copies(path)
    assert ".. literalinclude::" not in path.read_text(), (
        f"docs/{page}: a code host shows nothing for literalinclude; copy the code in"
    )
    copies = _copies(path)
    assert sorted(copy["path"] for copy in copies) == sources
    for copy in copies:
        assert _code_of(copy) == (DOCS / copy["path"]).read_text(), (
            f"the copy of docs/{copy['path']} in docs/{page} differs from the file: run the"
            " tests with UCLOUD_2FA_RECORD_EXAMPLES=1 and review the diff"
        )


def _shown_by_a_code_host(page: Path) -> list[str]:
    """The code blocks of ``page`` as plain docutils renders it, as code hosts do: without
    Sphinx, so its roles and directives are errors, which are left out."""
    rendered = publish_string(
        page.read_text(),
        writer=Writer(),
        settings_overrides={"report_level": 5, "halt_level": 5, "syntax_highlight": "none"},
    ).decode()
    blocks = re.findall(r'<pre class="code[^"]*"><code>(.*?)</code></pre>', rendered, re.DOTALL)
    return [html.unescape(block) for block in blocks]


@pytest.mark.parametrize("page", ["quickstart.rst", "api.rst"])
def test_a_code_host_shows_every_copied_file(page: str) -> None:
    shown = _shown_by_a_code_host(DOCS / page)
    for copy in _copies(DOCS / page):
        assert (DOCS / copy["path"]).read_text().rstrip("\n") in shown, (
            f"a code host does not show the copy of docs/{copy['path']} in docs/{page}"
        )


def _line_numbers(ranges: str) -> set[int]:
    numbers: set[int] = set()
    for part in ranges.split(","):
        first, _, last = part.strip().partition("-")
        numbers.update(range(int(first), int(last or first) + 1))
    return numbers


def test_the_quickstart_emphasizes_every_line_of_the_2fa_wiring() -> None:
    (copy,) = _copies(DOCS / "quickstart.rst")
    options = re.search(r":emphasize-lines: (.+)", copy["options"])
    assert options is not None
    emphasized = _line_numbers(options[1])
    lines = QUICKSTART_APP.read_text().splitlines()
    assert max(emphasized) <= len(lines)
    wiring = {
        number
        for number, line in enumerate(lines, start=1)
        if "two_factor" in line or "TwoFactor(" in line
    }
    assert any("return two_factor.login(user.id)" in lines[n - 1] for n in wiring)
    assert wiring <= emphasized, [lines[n - 1] for n in sorted(wiring - emphasized)]
