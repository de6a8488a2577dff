"""docs/testing.md's example tests pass as written, in a project of the user's."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from .support import PROGRAMS, REPO, clean_env, python_snippets

PAGE = REPO / "docs" / "testing.md"


def run_in_project(tmp_path: Path, program: str, test: str) -> subprocess.CompletedProcess[str]:
    """pytest run on ``test`` beside ``program`` as ``app.py`` and the page's pyproject.toml."""
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(PROGRAMS / program, project / "app.py")
    (config,) = re.findall(r"```toml\n(.*?)```", PAGE.read_text(), re.S)
    (project / "pyproject.toml").write_text(config)
    (project / "test_app.py").write_text(test)
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )


@pytest.mark.timeout(300)
def test_the_first_example_passes_verbatim(tmp_path: Path) -> None:
    """The page's `test_app` against a small app.py, with the page's pyproject.toml: 1 passed."""
    (first, *_) = python_snippets(PAGE)
    assert "async def test_app()" in first
    result = run_in_project(tmp_path, "docs_testing_app.py", first)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "Warning" not in result.stdout + result.stderr


@pytest.mark.timeout(300)
def test_the_after_the_block_example_passes_verbatim(tmp_path: Path) -> None:
    """`test_closes_the_database`, copied as a file of its own, runs and passes.

    It once lacked pytest-asyncio's mark: pytest failed it with "async def
    functions are not natively supported" before it started anything.
    """
    (example,) = [s for s in python_snippets(PAGE) if "def test_closes_the_database" in s]
    result = run_in_project(tmp_path, "docs_testing_db_app.py", example)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout


@pytest.mark.timeout(300)
def test_the_example_without_pytest_runs_verbatim(tmp_path: Path) -> None:
    """`smoke_test()` beside a copy of examples/greeter.py prints the pid and the real port."""
    (example,) = [s for s in python_snippets(PAGE) if "async def smoke_test()" in s]
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(REPO / "examples" / "greeter.py", project / "greeter.py")
    (project / "smoke.py").write_text(example)
    result = subprocess.run(
        [sys.executable, "smoke.py"],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    printed = re.fullmatch(r"ready: (\d+) \('127\.0\.0\.1', (\d+)\)\n", result.stdout)
    assert printed is not None, result.stdout
    assert int(printed[2]) > 0


def test_the_pytest_asyncio_named_for_the_examples_runs_them() -> None:
    """The install line and the test extra ask for the pytest-asyncio the examples need.

    The examples use ``loop_scope`` and ``asyncio_default_fixture_loop_scope``,
    new in pytest-asyncio 0.24: under 0.23, which both once allowed, the shared
    fixture failed with ``TypeError: fixture() got an unexpected keyword
    argument 'loop_scope'`` and the pyproject.toml with ``Unknown config option``.
    """
    page = PAGE.read_text()
    assert 'loop_scope="module"' in page
    assert "asyncio_default_fixture_loop_scope" in page
    (install,) = re.findall(r"```sh\n(pip install .*?)\n```", page)
    assert '"pytest-asyncio>=0.24"' in install.split()
    extras = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    requirements = [r for r in extras["optional-dependencies"]["test"] if "asyncio" in r]
    assert requirements == ["pytest-asyncio>=0.24"]
