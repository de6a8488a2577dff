"""How an upgrade starts the program again: one read from stdin cannot be, and says so."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import (
    PYTHON,
    aiodaemon_cli,
    children,
    clean_env,
    program,
    read_json_lines,
    read_pid,
)


@pytest.fixture
def files(tmp_path: Path) -> Iterator[tuple[Path, Path]]:
    """The pidfile and log of ``upgrade_app`` runs; any daemon still running is stopped after."""
    pidfile, log = tmp_path / "app.pid", tmp_path / "app.log"
    yield pidfile, log
    if pidfile.exists():
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
        assert stopped.returncode == 0, stopped.stderr


def _env(pidfile: Path, log: Path) -> dict[str, str]:
    return {"APP_PIDFILE": str(pidfile), "APP_LOG": str(log)}


@pytest.mark.parametrize("options", [["-"], ["-X", "utf8"]], ids=["dash", "no-script"])
def test_upgrade_of_a_program_read_from_stdin_is_refused(
    tmp_path: Path, files: tuple[Path, Path], options: list[str]
) -> None:
    """``python - < app.py``: refused at once, nothing started, the daemon serves on."""
    pidfile, log = files
    started = subprocess.run(
        [PYTHON, *options],
        input=program("upgrade_app").read_text(),
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(_env(pidfile, log)),
        timeout=45,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    old = read_pid(pidfile)
    upgraded = aiodaemon_cli("upgrade", "--pidfile", pidfile, "--timeout", "20")
    assert upgraded.returncode == 1
    assert upgraded.stderr == (
        "aiodaemon: upgrade failed: cannot upgrade: the program was read from stdin; use restart\n"
    )
    assert upgraded.stdout == ""
    assert read_pid(pidfile) == old
    assert children(old) == []
    events = [r["event"] for r in read_json_lines(log) if r["pid"] == old]
    assert "upgrade started" not in events
    assert aiodaemon_cli("status", "--pidfile", pidfile).stdout.startswith(f"running (pid {old},")
