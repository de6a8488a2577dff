"""A uvloop that is installed but cannot load (a build for another libc or Python).

``uvloop=True`` requires it: the start is refused in one line, exit 1, before
anything is acquired; the default (``uvloop=None``) runs on asyncio's loop.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.support import REPO, python

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
    (package / "__init__.py").write_text(
        'raise ImportError("loop.cpython-311-x86_64-linux-gnu.so: undefined symbol: uv_foo")\n'
    )
    return {"PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(REPO)])}


def test_required_uvloop_that_cannot_load_refuses_the_start(
    tmp_path: Path, broken_uvloop: dict[str, str]
) -> None:
    pidfile = tmp_path / "d.pid"
    result = python(["-c", PROGRAM.format(uvloop=True), pidfile], env=broken_uvloop)
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        "aiodaemon: ImportError: loop.cpython-311-x86_64-linux-gnu.so: undefined symbol: uv_foo\n"
    )
    assert result.stdout == ""
    assert not pidfile.exists()
    assert not Path(f"{pidfile}.ctl").exists()


def test_the_default_runs_on_asyncio_instead(tmp_path: Path, broken_uvloop: dict[str, str]) -> None:
    pidfile = tmp_path / "d.pid"
    result = python(["-c", PROGRAM.format(uvloop=None), pidfile], env=broken_uvloop)
    assert result.returncode == 0, result.stderr
    assert result.stdout == "asyncio.unix_events\n"
    assert not pidfile.exists()
