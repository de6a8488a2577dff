"""How an upgrade starts the program again, and what it says when the program does not start."""

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
    install_program,
    program,
    python,
    read_json_lines,
    read_pid,
    wait_for,
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


def test_a_successor_that_exits_before_calling_aiodaemon_is_named_once(
    tmp_path: Path, files: tuple[Path, Path]
) -> None:
    """New code that exits 0 before it calls aiodaemon: the error names its pid once."""
    pidfile, log = files
    app = install_program("upgrade_app", tmp_path, "upgrade_app.py")
    started = python([app], env=_env(pidfile, log), cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    old = read_pid(pidfile)
    app.write_text("import sys\n\nsys.exit(0)\n")
    upgraded = aiodaemon_cli("upgrade", "--pidfile", pidfile, "--timeout", "20")
    assert upgraded.returncode == 1
    [failed] = wait_for(
        lambda: [r for r in read_json_lines(log) if r["event"] == "upgrade failed"],
        what="the upgrade failed record",
    )
    new = failed["successor"]
    assert upgraded.stderr == (
        f"aiodaemon: upgrade failed: successor (pid {new}) exited with status 0 before it was "
        "ready; it ended without taking the hand-over: a program that failed before calling "
        "aiodaemon, or one whose aiodaemon predates upgrades (0.1.0: use 'aiodaemon restart')\n"
    )
    assert read_pid(pidfile) == old


def test_a_typed_interpreter_in_front_of_a_script_naming_it_is_run_again(
    tmp_path: Path, files: tuple[Path, Path]
) -> None:
    """``python app.py`` where app.py (0644) starts with ``#!`` that python: upgraded, not run.

    systemd's ``ExecStart=`` names the interpreter so: the #! line matching it
    did not mean the kernel ran the script, which may not be executed (exit 1,
    "Permission denied", and the daemon unchanged before).
    """
    pidfile, log = files
    app = tmp_path / "upgrade_app.py"
    app.write_text(f"#!{PYTHON}\n" + program("upgrade_app").read_text())
    app.chmod(0o644)
    started = python([app], env=_env(pidfile, log), cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    old = read_pid(pidfile)
    upgraded = aiodaemon_cli("upgrade", "--pidfile", pidfile, "--timeout", "20")
    assert upgraded.returncode == 0, upgraded.stderr
    new = read_pid(pidfile)
    assert new != old
    assert wait_for(lambda: [r for r in read_json_lines(log) if r["event"] == "upgrade took over"])
