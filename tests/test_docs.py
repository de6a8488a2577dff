"""The documentation: the site builds without a warning, and its reference tables match the code."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aiodaemon._config import OPTION_NAMES, parse_options
from aiodaemon.exceptions import ExitCode

from .support import REPO, python_snippets

DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))
MARKDOWN = [REPO / "README.md", REPO / "CHANGELOG.md", *PAGES]


def table_rows(page: Path, heading: str) -> list[list[str]]:
    """The body rows of the first Markdown table under ``heading``, cells stripped."""
    text = page.read_text()
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    rows = []
    for line in text[start:].splitlines():
        if line.startswith("#"):
            break
        if line.startswith("|") and not re.fullmatch(r"\|[-|: ]+\|", line):
            rows.append([cell.strip() for cell in line.strip().strip("|").split("|")])
    return rows[1:]  # without the header row


def test_site_builds_in_strict_mode(tmp_path: Path) -> None:
    """`mkdocs build --strict` (what `nox -s docs` runs) finishes without a warning."""
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        pytest.fail("mkdocs is not installed: run `bash .ci/venv test` (the test extra has it)")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    reference = (tmp_path / "site" / "reference" / "index.html").read_text()
    assert "Context" in reference


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: p.name)
def test_python_snippets_compile(page: Path) -> None:
    """Every ```python block of the README and the docs is valid Python."""
    for number, block in enumerate(python_snippets(page)):
        compile(block, f"{page.name} snippet {number}", "exec")


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: p.name)
def test_links_stay_inside_the_repository(page: Path) -> None:
    """No Markdown link points outside the repository (users only have what it ships)."""
    for target in re.findall(r"\]\(([^)\s]+)\)", page.read_text()):
        if re.match(r"[a-z]+:", target) or target.startswith("#"):
            continue
        path = (page.parent / target.split("#", 1)[0]).resolve()
        assert path.is_relative_to(REPO), f"{page.name} links outside the repository: {target}"
        assert path.exists(), f"{page.name} links to a missing file: {target}"


def test_every_page_is_in_the_navigation() -> None:
    """Each docs page is reachable from the site's navigation."""
    nav = (REPO / "mkdocs.yml").read_text().split("\nnav:", 1)[1]
    for page in PAGES:
        assert f" {page.name}" in nav, f"{page.name} is not in mkdocs.yml's nav"


def documented_options() -> dict[str, str]:
    """Option name -> the default as written in docs/options.md."""
    rows = table_rows(DOCS / "options.md", "## Options")
    return {row[0].strip("`"): row[2].strip("`") for row in rows}


def test_options_table_lists_every_option() -> None:
    """docs/options.md has a row for every option run() accepts, and for no other."""
    assert set(documented_options()) == set(OPTION_NAMES)


def test_documented_defaults_are_the_real_ones() -> None:
    """Passing each documented default explicitly changes nothing."""
    baseline = parse_options({})
    for name, default in documented_options().items():
        value: Any = ast.literal_eval(default)
        assert parse_options({name: value}) == baseline, f"{name}: documented default {default}"


def test_exit_code_table_lists_every_exit_code() -> None:
    """Every aiodaemon.ExitCode member is documented with its number."""
    rows = table_rows(
        DOCS / "options.md", "### Of a daemon (and of `run`, and of `start` when the start fails)"
    )
    documented = {row[1].strip("`"): row[0] for row in rows if row[1]}
    assert documented == {code.name: str(code.value) for code in ExitCode}


def test_every_public_name_is_in_the_api_reference() -> None:
    """Each name in aiodaemon.__all__ has an entry in docs/reference.md."""
    import aiodaemon

    reference = (DOCS / "reference.md").read_text()
    missing = [
        name
        for name in aiodaemon.__all__
        if not name.startswith("__") and f"::: aiodaemon.{name}\n" not in reference
    ]
    assert not missing, f"not in the API reference: {missing}"


def test_signal_table_lists_the_signals_the_framework_owns() -> None:
    """docs/options.md's signal table names every signal on_signal refuses as the framework's."""
    import signal

    from aiodaemon._signal_handlers import REFUSED

    rows = table_rows(DOCS / "options.md", "## Signals")
    documented = {name for row in rows for name in re.findall(r"\bSIG[A-Z0-9]+\b", row[0])}
    owned = {
        signal.Signals(number).name
        for number, reason in REFUSED.items()
        if "cannot be" not in reason  # SIGKILL, SIGSTOP and faults: nobody's to own
    }
    assert documented == owned
