"""docs/testing.md's first example test passes as written, in a project of the user's."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from .support import PROGRAMS, REPO, clean_env, python_snippets

PAGE = REPO / "docs" / "testing.md"


@pytest.mark.timeout(300)
def test_the_first_example_passes_verbatim(tmp_path: Path) -> None:
    """The page's `test_app` against a small app.py, with the page's pyproject.toml: 1 passed."""
    (first, *_) = python_snippets(PAGE)
    assert "async def test_app()" in first
    project = tmp_path / "project"
    project.mkdir()
    shutil.copy(PROGRAMS / "docs_testing_app.py", project / "app.py")
    (config,) = re.findall(r"```toml\n(.*?)```", PAGE.read_text(), re.S)
    (project / "pyproject.toml").write_text(config)
    (project / "test_app.py").write_text(first)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider"],
        cwd=project,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
    assert "Warning" not in result.stdout + result.stderr
