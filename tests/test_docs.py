"""The documentation: the site builds without a warning, and its reference tables match the code."""

from __future__ import annotations

import ast
import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from aiodaemon._prefork._config import OPTION_NAMES, parse_options
from aiodaemon.exceptions import ExitCode

from .support import REPO, python, python_snippets, read_json_lines, require_tool, wait_for

DOCS = REPO / "docs"
PAGES = sorted(DOCS.glob("*.md"))
MARKDOWN = [REPO / "README.md", REPO / "CHANGELOG.md", *PAGES]


def json_blocks(page: Path) -> list[str]:
    """The ```json blocks of a Markdown page, in order."""
    return re.findall(r"```json\n(.*?)```", page.read_text(), re.S)


def table_rows(page: Path, heading: str) -> list[list[str]]:
    """The body rows of the first Markdown table under ``heading``, cells stripped."""
    text = page.read_text()
    start = text.index(f"\n{heading}\n") + len(heading) + 2
    rows = []
    for line in text[start:].splitlines():
        if line.startswith("#"):
            break
        if line.startswith("|") and not re.fullmatch(r"\|[-|: ]+\|", line):
            # A cell may hold an escaped pipe: `--ready startup\|manual`.
            cells = re.split(r"(?<!\\)\|", line.strip().strip("|"))
            rows.append([cell.strip() for cell in cells])
    return rows[1:]  # without the header row


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The documentation site, built once with `mkdocs build --strict` (what `nox -s docs` runs)."""
    try:
        import mkdocs  # noqa: F401
    except ImportError:
        pytest.fail("mkdocs is not installed: run `bash .ci/venv test` (the test extra has it)")
    site = tmp_path_factory.mktemp("site")
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(site)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=120,
        env={"NO_MKDOCS_2_WARNING": "1", "PATH": "/usr/bin:/bin"},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "WARNING" not in result.stderr, result.stderr
    return site


# A whole mkdocs build (allowed 120 s above) on a busy machine: more than the suite's 60 s.
@pytest.mark.timeout(300)
def test_site_builds_in_strict_mode(site: Path) -> None:
    """`mkdocs build --strict` (what `nox -s docs` runs) finishes without a warning."""
    reference = (site / "reference" / "index.html").read_text()
    assert "Context" in reference


@pytest.mark.timeout(300)
def test_the_api_reference_describes_every_name(site: Path) -> None:
    """Each `:::` entry of the API reference shows a description, and each enum its members.

    An alias (``on_startup = default_daemon.on_startup``) has no docstring of its
    own, and griffe ignores ``#:`` comments: either showed only a bare name.
    """
    import enum
    import importlib

    page = (site / "reference" / "index.html").read_text()
    blank = []
    for name in re.findall(r"^::: (\S+)$", (DOCS / "reference.md").read_text(), re.M):
        heading = page.index(f'id="{name}"')
        body = page.index('<div class="doc doc-contents first">', heading)
        own = re.split(r"<div|</div>", page[body:].split(">", 1)[1], maxsplit=1)[0]
        if "<p>" not in own:
            blank.append(name)
        module, attr = name.rsplit(".", 1)
        obj = getattr(importlib.import_module(module), attr)
        if isinstance(obj, type) and issubclass(obj, enum.Enum):
            for member in obj:
                assert f'id="{name}.{member.name}"' in page, f"{name}.{member.name} not listed"
    assert not blank, f"shown without a description: {blank}"


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
    """Each name in the __all__ of aiodaemon, aiodaemon.testing and pep3143 is in the reference."""
    import aiodaemon
    import aiodaemon.pep3143
    import aiodaemon.testing

    reference = (DOCS / "reference.md").read_text()
    missing = [
        f"{module.__name__}.{name}"
        for module in (aiodaemon, aiodaemon.testing, aiodaemon.pep3143)
        for name in module.__all__
        if not name.startswith("__") and f"::: {module.__name__}.{name}\n" not in reference
    ]
    # Aliases, named in a sentence: aiodaemon.DaemonError, python-daemon's modules.
    for alias in (
        "aiodaemon.pep3143.DaemonError",
        "aiodaemon.pep3143.pidfile",
        "aiodaemon.pep3143.daemon",
    ):
        assert f"`{alias}`" in reference
        missing.remove(alias)
    assert not missing, f"not in the API reference: {missing}"


def test_signal_table_lists_the_signals_the_framework_owns() -> None:
    """docs/options.md's signal table names every signal on_signal refuses as the framework's."""
    import signal

    from aiodaemon._run._signal_handlers import REFUSED

    rows = table_rows(DOCS / "options.md", "## Signals")
    documented = {name for row in rows for name in re.findall(r"\bSIG[A-Z0-9]+\b", row[0])}
    owned = {
        signal.Signals(number).name
        for number, reason in REFUSED.items()
        if "cannot be" not in reason  # SIGKILL, SIGSTOP and faults: nobody's to own
    }
    assert documented == owned


def test_the_logging_example_writes_the_lines_the_page_shows(tmp_path: Path) -> None:
    """docs/logging.md's program writes its records with the page's keys, values and key order."""
    page = DOCS / "logging.md"
    (program,) = [block for block in python_snippets(page) if "bind_contextvars" in block]
    shown = [json.loads(line) for line in json_blocks(page)[0].splitlines()]
    log_file = tmp_path / "shop.jsonl"
    script = tmp_path / "shop.py"
    script.write_text(program.replace("/var/log/shop/shop.jsonl", str(log_file)))
    started = python([script], cwd=tmp_path)
    assert started.returncode == 0, started.stderr

    def finished() -> list[dict[str, object]] | None:
        records = read_json_lines(log_file) if log_file.exists() else []
        return records if any(r["event"] == "exit" for r in records) else None

    written = {record["event"]: record for record in wait_for(finished, what="the exit record")}
    for expected in shown:
        actual = written[expected["event"]]
        assert list(actual) == list(expected), actual
        for key in ("timestamp", "pid"):
            del actual[key], expected[key]
        assert actual == expected


def unguarded_run_calls(source: str) -> list[int]:
    """Lines of the ``aiodaemon.run(...)`` calls made when ``source`` is imported as a module.

    A call inside a function, or under ``if __name__ == "__main__":``, does not count.
    """
    main_guard = ast.dump(ast.parse('__name__ == "__main__"', mode="eval").body)
    found: list[int] = []

    class AtImport(ast.NodeVisitor):
        def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
            pass

        def visit_AsyncFunctionDef(self, node: ast.AsyncFunctionDef) -> None:
            pass

        def visit_Lambda(self, node: ast.Lambda) -> None:
            pass

        def visit_If(self, node: ast.If) -> None:
            if ast.dump(node.test) == main_guard:
                for statement in node.orelse:
                    self.visit(statement)
            else:
                self.generic_visit(node)

        def visit_Call(self, node: ast.Call) -> None:
            function = node.func
            if (
                isinstance(function, ast.Attribute)
                and function.attr == "run"
                and isinstance(function.value, ast.Name)
                and function.value.id == "aiodaemon"
            ):
                found.append(node.lineno)
            self.generic_visit(node)

    AtImport().visit(ast.parse(source))
    return found


@pytest.mark.parametrize("page", MARKDOWN, ids=lambda p: p.name)
def test_snippets_call_run_only_under_a_main_guard(page: Path) -> None:
    """Every snippet calling aiodaemon.run() does so under `if __name__ == "__main__":`.

    The CLI (`aiodaemon start module:main`) and the testing kit import the module: an
    unguarded call would start a daemon with the module's own options at import.
    """
    for number, block in enumerate(python_snippets(page)):
        lines = unguarded_run_calls(block)
        assert not lines, f"{page.name} snippet {number}: aiodaemon.run() unguarded, line {lines}"


def test_the_guard_check_finds_an_unguarded_call() -> None:
    """The check above tells a guarded call from an unguarded one."""
    assert unguarded_run_calls("import aiodaemon\naiodaemon.run(main)\n") == [2]
    assert unguarded_run_calls('if __name__ == "__main__":\n    aiodaemon.run(main)\n') == []
    assert unguarded_run_calls("def cli():\n    aiodaemon.run(main)\n") == []
    assert unguarded_run_calls("if True:\n    aiodaemon.run(main)\n") == [2]
    assert unguarded_run_calls("def f():\n    pass\naiodaemon.run(main)\n") == [3]


def unwrapped(page: Path) -> str:
    """A page's text with every run of whitespace as one space (quotes may wrap)."""
    return " ".join(page.read_text().split())


def test_quoted_messages_are_the_ones_printed() -> None:
    """Lines the docs quote verbatim are the ones the code prints (their own tests run it)."""
    from aiodaemon._prefork._init import detach_refusal

    from .test_cli_log_warning import WARNING

    assert WARNING.strip() in unwrapped(DOCS / "production.md")
    refusal = f"aiodaemon: {detach_refusal('aiodaemon run')}"
    assert refusal in unwrapped(DOCS / "kubernetes.md")


def test_run_start_warnings_are_the_ones_printed() -> None:
    """docs/production.md quotes the warnings of a detached ``run()`` as it words them."""
    from aiodaemon._launch import start_warnings

    no_pidfile, no_log = start_warnings(4242, {})
    production = unwrapped(DOCS / "production.md")
    assert no_pidfile.removeprefix("warning: ") in production
    assert no_log.removeprefix("warning: ").split(", so")[0] in production


def test_health_bodies_are_quoted_byte_for_byte() -> None:
    """docs/kubernetes.md's probe table shows the exact JSON bodies the health endpoint sends."""
    from aiodaemon._run._health import _state_body
    from aiodaemon._run._state import State

    quoted = re.findall(r'`(\{"state":"(\w+)"\})`', (DOCS / "kubernetes.md").read_text())
    assert {state for _, state in quoted} == {"starting", "stopping"}
    for body, state in quoted:
        assert _state_body(State(state)).decode() == body


def logrotate_blocks() -> list[tuple[Path, str]]:
    """Every logrotate configuration the docs show: a fenced block with a ``postrotate``."""
    return [
        (page, block)
        for page in (REPO / "README.md", *PAGES)
        for _, block in re.findall(r"^```(\w*)\n(.*?)^```", page.read_text(), re.S | re.M)
        if "postrotate" in block
    ]


def test_one_logrotate_recipe_everywhere(tmp_path: Path) -> None:
    """Each logrotate recipe in the docs is the same safe one, and logrotate -d accepts it."""
    logrotate = require_tool("logrotate")
    blocks = logrotate_blocks()
    assert {page.name for page, _ in blocks} >= {"logging.md", "production.md"}
    recipes = set()
    for page, block in blocks:
        # pkill -L: only while a process holds the pidfile's lock, never a stale pid.
        match = re.search(r"^\s*pkill -USR1 -L -F /run/(\w+)/\1\.pid \|\| true$", block, re.M)
        assert match, f"{page.name}: {block}"
        service = match.group(1)
        recipe = re.sub(r"^# .*\n", "", block.replace(service, "NAME"))
        recipes.add(recipe)
        # As root: the docs' service accounts do not exist here.
        config = tmp_path / f"{page.stem}.conf"
        config.write_text(recipe.replace("create 0640 NAME NAME", "create 0640 root root"))
        checked = subprocess.run(
            [logrotate, "-d", "-s", str(tmp_path / "state"), str(config)],
            capture_output=True,
            text=True,
            check=False,
        )
        assert checked.returncode == 0, checked.stderr
        assert "error" not in checked.stderr, checked.stderr
    assert len(recipes) == 1, recipes
    # Recipes quoted inline (a table cell, a list item) are the same one; the
    # CHANGELOG may quote what a fix replaced.
    for page in (REPO / "README.md", *PAGES):
        for inline in re.findall(r"`postrotate ([^`]*)`", unwrapped(page)):
            assert inline.startswith("pkill -USR1 -L -F"), f"{page.name}: {inline}"
        for owner, group in re.findall(r"`create 0640 (\w+) (\w+)`", unwrapped(page)):
            assert owner == group, f"{page.name}: create 0640 {owner} {group}"
