"""A workdir closed to the user the daemon drops to: refused at start, not found at an upgrade."""

from __future__ import annotations

import json
import os
import pwd
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import install_program, python

NOBODY = pwd.getpwnam("nobody")


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory nobody can traverse, with a run directory nobody owns."""
    path = Path(tempfile.mkdtemp(prefix="aiodaemon-workdir-"))
    path.chmod(0o755)
    (path / "run").mkdir()
    os.chown(path / "run", NOBODY.pw_uid, NOBODY.pw_gid)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.mark.root
def test_a_workdir_closed_to_the_user_fails_the_start(base: Path) -> None:
    """Entered as root, closed to nobody: one line naming the option, the user and the directory."""
    closed = base / "closed"
    closed.mkdir(mode=0o700)
    pidfile = base / "run" / "d.pid"
    options = {"pidfile": str(pidfile), "user": "nobody", "workdir": str(closed)}
    script = install_program("priv_daemon", base, "daemon_app.py")
    result = python([script, json.dumps(options), str(base / "run" / "report.json")], cwd=base)
    assert result.returncode == 1
    assert result.stderr == f"aiodaemon: workdir {closed}: nobody cannot enter it\n"
    assert not pidfile.exists()
    assert not (base / "run" / "report.json").exists()
