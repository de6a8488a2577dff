"""What ``reload`` and ``status`` say when they cannot ask, or when nothing of the program ran."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import aiodaemon_cli, install_program, kill_pidfile_holder, start_installed, wait_for

HINT = "started with --control? pass it here too"


@pytest.fixture
def app_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory for app.py; the daemon holding its app.pid is killed at the end."""
    yield tmp_path
    kill_pidfile_holder(tmp_path / "app.pid")


def test_reload_without_the_control_option_says_to_pass_it(app_dir: Path) -> None:
    """A daemon started with --control elsewhere: reload without it says how to see the result."""
    install_program("cli_app", app_dir, "app.py")
    pid = start_installed(app_dir, "--control", app_dir / "app.sock")
    result = aiodaemon_cli("reload", "--pidfile", app_dir / "app.pid", cwd=app_dir)
    assert result.returncode == 0
    line = result.stderr.strip()
    assert f"reload requested (pid {pid}, SIGHUP)" in line
    assert line.endswith(f"so the result is not known ({HINT})")
    wait_for(lambda: (app_dir / "reloads").exists())
    given = aiodaemon_cli(
        "reload", "--pidfile", app_dir / "app.pid", "--control", app_dir / "app.sock", cwd=app_dir
    )
    assert given.returncode == 0
    assert given.stderr.strip() == f"aiodaemon: reloaded (pid {pid})"


def test_status_without_the_control_option_says_to_pass_it(app_dir: Path) -> None:
    """status of such a daemon still says running (exit 0), and on stderr how to learn more."""
    install_program("cli_app", app_dir, "app.py")
    pid = start_installed(app_dir, "--control", app_dir / "app.sock")
    result = aiodaemon_cli("status", "--pidfile", app_dir / "app.pid", cwd=app_dir)
    assert result.returncode == 0
    assert result.stdout.strip() == f"running (pid {pid}, pidfile {app_dir / 'app.pid'})"
    assert HINT in result.stderr


def test_status_of_a_daemon_with_its_control_socket_has_no_hint(app_dir: Path) -> None:
    """The daemon serves the default control socket: status asks it, and says nothing more."""
    install_program("cli_app", app_dir, "app.py")
    start_installed(app_dir)
    result = aiodaemon_cli("status", "--pidfile", app_dir / "app.pid", cwd=app_dir)
    assert result.returncode == 0
    assert result.stderr == ""


def test_reload_without_reload_hooks_says_nothing_of_the_program_ran(app_dir: Path) -> None:
    """A program with no reload hooks: "reloaded", and that only the log files were reopened."""
    install_program("plain_echo", app_dir, "app.py")
    pid = start_installed(app_dir, "--log-file", app_dir / "app.jsonl")
    result = aiodaemon_cli("reload", "--pidfile", app_dir / "app.pid", cwd=app_dir)
    assert result.returncode == 0
    assert result.stderr.strip() == (
        f"aiodaemon: reloaded (pid {pid}; no reload hooks; log files reopened)"
    )
