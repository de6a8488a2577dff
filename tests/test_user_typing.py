"""Users' own programs type-check against aiodaemon under mypy --strict and pyright --strict."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from .support import REPO, clean_env, mypy_strict, python_snippets

#: Programs written as users write theirs (see its __init__.py).
PROGRAMS = Path(__file__).parent / "typechecked"


#: The pages whose first Python block is a whole program (the others show fragments).
WHOLE_PROGRAMS = ("README.md", "docs/index.md", "docs/tutorial.md", "docs/logging.md")


def user_programs() -> dict[str, str]:
    """File name -> code: tests/typechecked's programs and the examples users copy."""
    examples = REPO / "examples"
    files = [*PROGRAMS.glob("[!_]*.py"), *examples.glob("*.py")]
    sources = {path.name: path.read_text() for path in sorted(files)}
    sources["kubernetes_app.py"] = (examples / "kubernetes" / "app.py").read_text()
    for page in WHOLE_PROGRAMS:
        program = python_snippets(REPO / page)[0]
        assert "aiodaemon.run(" in program, f"{page}'s first block is no longer its program"
        sources[f"page_{Path(page).stem.lower()}.py"] = program
    tutorial = python_snippets(REPO / "docs" / "tutorial.md")
    (worker,) = [block for block in tutorial if "finish_current_job" in block]
    sources["page_tutorial_worker.py"] = worker
    return sources


def pyright_strict(directory: Path, sources: dict[str, str]) -> subprocess.Popen[str]:
    """Start ``pyright --strict`` on ``sources`` in ``directory``: the checkout on its path.

    An unneeded ``# type: ignore`` is an error, as mypy --strict makes it.
    """
    directory.mkdir()
    for name, code in sources.items():
        (directory / name).write_text(code)
    config = {
        "typeCheckingMode": "strict",
        "pythonVersion": "3.11",
        "extraPaths": [str(REPO)],
        "reportUnnecessaryTypeIgnoreComment": "error",
    }
    (directory / "pyrightconfig.json").write_text(json.dumps(config))
    return subprocess.Popen(
        [sys.executable, "-m", "pyright", "--pythonpath", sys.executable, *sources],
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        # No version check on the network at each run.
        env=clean_env({"PYRIGHT_PYTHON_IGNORE_WARNINGS": "1"}),
        cwd=directory,
    )


# Two checkers, cold, on a busy machine: more than the suite's 60 s.
@pytest.mark.timeout(300)
def test_user_programs_pass_both_checkers_and_their_mistakes_fail(tmp_path: Path) -> None:
    """Our user programs, examples and docs pass mypy and pyright --strict; marked mistakes fail."""
    sources = user_programs()
    assert len(sources) >= 10
    pyright = pyright_strict(tmp_path / "pyright", sources)
    try:
        (tmp_path / "mypy").mkdir()
        mypy = mypy_strict(tmp_path / "mypy", sources)
        pyright_output, _ = pyright.communicate(timeout=240)
    finally:
        pyright.kill()
        pyright.wait()
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr
    assert pyright.returncode == 0, pyright_output
