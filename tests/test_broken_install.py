"""aiodaemon installed without a dependency it needs (``pip --no-deps``, a vendored copy).

Every way of starting says so in one line, exit 1, and starts nothing: the CLI
printed the ImportError's traceback, ``run()`` only ``ImportError: ...``.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import REPO, aiodaemon_cli, install_program, python

WHY = "No module named 'orjson'"
LINE = f"aiodaemon: cannot load what aiodaemon needs (reinstall it with its dependencies): {WHY}\n"


@pytest.fixture
def without_orjson(tmp_path: Path) -> dict[str, str]:
    """An environment whose ``import orjson`` fails as a missing package's does."""
    package = tmp_path / "site" / "orjson"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"raise ModuleNotFoundError({WHY!r}, name='orjson')\n")
    return {"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(REPO)])}


@pytest.mark.parametrize("command", ["start", "run"])
def test_the_command_says_the_install_is_broken_in_one_line(
    tmp_path: Path, without_orjson: dict[str, str], command: str
) -> None:
    install_program("cli_app", tmp_path, "app.py")
    pidfile = tmp_path / "app.pid"
    result = aiodaemon_cli(
        command, "app:main", "--pidfile", pidfile, cwd=tmp_path, env=without_orjson
    )
    assert (result.returncode, result.stderr, result.stdout) == (1, LINE, "")
    assert not pidfile.exists()


def test_run_says_the_same(tmp_path: Path, without_orjson: dict[str, str]) -> None:
    pidfile = tmp_path / "app.pid"
    program = (
        "import sys, aiodaemon\n"
        "async def main():\n"
        "    pass\n"
        "aiodaemon.run(main, pidfile=sys.argv[1], detach=False)\n"
    )
    result = python(["-c", program, pidfile], env=without_orjson)
    assert (result.returncode, result.stderr, result.stdout) == (1, LINE, "")
    assert not pidfile.exists()
