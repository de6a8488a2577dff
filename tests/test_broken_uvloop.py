"""A uvloop that is installed but cannot load (a build for another libc or Python).

``uvloop=True`` requires it: the start is refused in one line, exit 2 (as
when it is not installed), before anything is acquired; the default
(``uvloop=None``) runs on asyncio's loop, and says so: every ImportError read
as "not installed", and the daemon ran on asyncio's loop without a word.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from tests.support import (
    REPO,
    aiodaemon_cli,
    install_program,
    python,
    read_json_lines,
    wait_gone,
)

WHY = "loop.cpython-311-x86_64-linux-gnu.so: undefined symbol: uv_foo"
WARNING = (
    f"aiodaemon: warning: uvloop is installed but cannot be loaded ({WHY});"
    " running on asyncio's loop\n"
)

PROGRAM = """\
import sys, aiodaemon
async def main(ctx):
    import asyncio
    kinds = [c.__module__ for c in type(asyncio.get_running_loop()).__mro__]
    print(next(k for k in kinds if k.split(".")[0] in ("asyncio", "uvloop")))
aiodaemon.run(main, detach=False, pidfile=sys.argv[1], uvloop={uvloop})
"""


@pytest.fixture
def broken_uvloop(tmp_path: Path) -> dict[str, str]:
    """An environment whose ``import uvloop`` fails as a mismatched binary does."""
    package = tmp_path / "site" / "uvloop"
    package.mkdir(parents=True)
    (package / "__init__.py").write_text(f"raise ImportError({WHY!r})\n")
    return {"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(REPO)])}


def test_required_uvloop_that_cannot_load_refuses_the_start(
    tmp_path: Path, broken_uvloop: dict[str, str]
) -> None:
    pidfile = tmp_path / "d.pid"
    result = python(["-c", PROGRAM.format(uvloop=True), pidfile], env=broken_uvloop)
    assert result.returncode == 2, result.stderr
    assert result.stderr == f"aiodaemon: uvloop: uvloop=True but uvloop cannot be loaded: {WHY}\n"
    assert result.stdout == ""
    assert not pidfile.exists()
    assert not Path(f"{pidfile}.ctl").exists()


def test_the_default_runs_on_asyncio_instead(tmp_path: Path, broken_uvloop: dict[str, str]) -> None:
    pidfile = tmp_path / "d.pid"
    result = python(["-c", PROGRAM.format(uvloop=None), pidfile], env=broken_uvloop)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "asyncio.unix_events\n"
    # The log follows on stderr, in the foreground.
    assert result.stderr.startswith(WARNING)
    assert not pidfile.exists()


def test_a_detached_start_warns_on_the_terminal(
    tmp_path: Path, broken_uvloop: dict[str, str]
) -> None:
    """`aiodaemon start`: the warning on the terminal, the log's ``starting`` names asyncio."""
    pidfile, log = tmp_path / "d.pid", tmp_path / "d.jsonl"
    install_program("cli_app", tmp_path, "app.py")
    started = aiodaemon_cli(
        "start",
        "app:main",
        "--pidfile",
        pidfile,
        "--log-file",
        log,
        cwd=tmp_path,
        env=broken_uvloop,
    )
    assert started.returncode == 0, started.stderr
    assert started.stderr == WARNING
    pid = int(started.stdout)
    assert read_json_lines(log)[0]["loop"] == "asyncio"
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)
