"""The CLI front end's answers to user mistakes, through the installed console script.

Each case comes from an outside audit: what a new user typed, and the one line
(and exit status) they should get back, with nothing started.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import (
    PYTHON,
    aiodaemon_cli,
    clean_env,
    install_program,
    is_alive,
    kill_quietly,
    pids_with,
    read_pid,
    wait_gone,
)


@pytest.fixture
def app_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory holding the programs; commands run from there; its daemons die with it."""
    install_program("cli_app", tmp_path, "app.py")
    install_program("cli_noguard", tmp_path, "noguard.py")
    yield tmp_path
    for pid in pids_with(str(tmp_path)):
        kill_quietly(pid)
    for name in ("app.pid", "ng.pid"):
        text = (tmp_path / name).read_text().strip() if (tmp_path / name).exists() else ""
        if text.isdigit() and int(text) > 1:
            # Only a daemon started by this test holds a pidfile in tmp_path.
            kill_quietly(int(text))


def cli(*args: str | os.PathLike[str], cwd: Path) -> subprocess.CompletedProcess[str]:
    """Run ``aiodaemon ARGS`` from ``cwd`` to completion."""
    return aiodaemon_cli(*args, cwd=cwd)


def one_line(text: str) -> str:
    """The only line of ``text``; fails if there are more (a traceback, say)."""
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# --- a TARGET that calls aiodaemon.run() when imported ------------------------------


@pytest.mark.parametrize("command", ["start", "run", "restart"])
def test_target_calling_run_at_import_is_refused(app_dir: Path, command: str) -> None:
    """TARGET calling aiodaemon.run() at import: one line naming the fix, exit 2, nothing runs."""
    pidfile = app_dir / "app.pid"
    result = cli(command, "noguard:main", "--pidfile", pidfile, cwd=app_dir)
    line = one_line(result.stderr)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert line.startswith("aiodaemon: TARGET noguard calls aiodaemon.run() when imported")
    assert f"{app_dir / 'noguard.py'}:" in line
    assert line.endswith('put that call under `if __name__ == "__main__":`')
    # Neither the command line's daemon nor the module's own one started.
    assert not pidfile.exists()
    assert not (app_dir / "ng.pid").exists()
    assert not (app_dir / "started").exists()
    assert not [pid for pid in pids_with(str(app_dir)) if pid != os.getpid()]


def test_unguarded_program_still_runs_as_a_script(app_dir: Path) -> None:
    """The same program run as `python noguard.py` starts its daemon as written."""
    started = subprocess.run(
        [PYTHON, str(app_dir / "noguard.py")],
        cwd=app_dir,
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=45,
        stdin=subprocess.DEVNULL,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    pid = read_pid(app_dir / "ng.pid")
    assert is_alive(pid)
    assert (app_dir / "started").read_text() == str(pid)
    assert cli("stop", "--pidfile", app_dir / "ng.pid", cwd=app_dir).returncode == 0
    wait_gone(pid)
