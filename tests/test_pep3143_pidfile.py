"""aiodaemon.pep3143's pidfile where it differs in how it is taken: its path, and lockfile's API.

The original libraries (python-daemon, pep3143daemon) take the pidfile in the
daemon; aiodaemon locks its ``PidFile`` in the caller. These tests run real
daemons with the original library and with aiodaemon, changing only the
import, and compare where the file is and what is left of it.
"""

from __future__ import annotations

import importlib.util
import os
import signal
import stat
import subprocess
from pathlib import Path

import pytest

from .support import PROGRAMS, PYTHON, clean_env, kill_quietly, read_pid, wait_gone

NOBODY = 65534


def _jail(directory: Path) -> None:
    """A chroot directory with /data and the /dev/null the original libraries need."""
    (directory / "root" / "dev").mkdir(parents=True)
    (directory / "root" / "data").mkdir()
    null = directory / "root" / "dev" / "null"
    os.mknod(null, stat.S_IFCHR | 0o666, os.makedev(1, 3))
    null.chmod(0o666)


def _pidfiles(directory: Path) -> dict[str, str]:
    """Every app.pid under ``directory``, relative path → content."""
    return {str(p.relative_to(directory)): p.read_text() for p in directory.rglob("app.pid")}


def _run_relative(directory: Path, library: str, aiodaemon: str, jail: str) -> dict[str, object]:
    """Start pep3143_relative.py from DIR/caller; what is seen while it runs and after SIGTERM."""
    (directory / "caller").mkdir(parents=True)
    (directory / "wd").mkdir()
    if jail == "yes":
        _jail(directory)
    launcher = subprocess.Popen(
        [PYTHON, PROGRAMS / "pep3143_relative.py", library, aiodaemon, directory, jail],
        cwd=directory / "caller",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env=clean_env(),
    )
    pid = 0
    try:
        pid = read_pid(directory / "ready.tmp")
        assert launcher.wait(timeout=30) == 0, launcher.communicate()[0]
        running = _pidfiles(directory)
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)
    finally:
        if pid > 1:
            kill_quietly(pid)
        if launcher.poll() is None:
            launcher.kill()
        launcher.communicate()
    return {
        "running": {k: v.replace(str(pid), "<pid>") for k, v in running.items()},
        "after exit": _pidfiles(directory),
    }


@pytest.mark.parametrize("jail", ["no", pytest.param("yes", marks=pytest.mark.root)])
@pytest.mark.parametrize("library", ["python-daemon", "pep3143daemon"])
def test_relative_pidfile_is_under_the_working_directory_and_removed(
    tmp_path: Path, library: str, jail: str
) -> None:
    """A relative pidfile path lands where the original library puts it, and goes at exit."""
    if importlib.util.find_spec("pep3143daemon") is None:
        pytest.fail("pep3143daemon is missing: run `bash .ci/venv test` (it is in the test extra)")
    if jail == "yes" and os.geteuid() != 0:
        pytest.fail("this test needs root (chroot); CI runs it as root")
    seen = {
        aiodaemon: _run_relative(tmp_path / aiodaemon, library, aiodaemon, jail)
        for aiodaemon in ("no", "yes")
    }
    where = "root/data/app.pid" if jail == "yes" else "wd/app.pid"
    assert seen["no"] == {"running": {where: "<pid>\n"}, "after exit": {}}
    assert seen["yes"] == seen["no"]
