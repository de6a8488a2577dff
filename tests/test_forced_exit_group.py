"""The daemon's own forced exit takes its process group with it, as the launcher's SIGKILL does.

A startup hook that spawned a subprocess and then would not end held the
start past the shutdown's budget: the daemon's forced exit ended it alone,
and the subprocess lived on holding the ``listen=`` socket it was given (the
next start: "Address already in use"). The start timeout's SIGKILL, by the
launcher, took the group; whichever came first decided.
"""

from __future__ import annotations

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import (
    PYTHON,
    clean_env,
    free_port,
    install_program,
    kill_pidfile_holder,
    kill_quietly,
    port_binds,
    read_pid,
    wait_for,
    wait_gone,
)


@pytest.fixture
def app_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory holding the hanging startup hook's program as app.py; nothing left at the end."""
    install_program("startup_spawns_and_hangs", tmp_path, "app.py")
    yield tmp_path
    kill_pidfile_holder(tmp_path / "app.pid")
    sleep = tmp_path / "sleep.pid"
    if sleep.exists():
        kill_quietly(int(sleep.read_text()))


def _start(app_dir: Path, port: int, shutdown_timeout: str) -> subprocess.Popen[str]:
    """``aiodaemon start`` of the program, not waited for (its startup hook never ends)."""
    options = {
        "--pidfile": str(app_dir / "app.pid"),
        "--listen": f"echo=127.0.0.1:{port}",
        "--start-timeout": "120",
        "--shutdown-timeout": shutdown_timeout,
        "--log-file": str(app_dir / "log.jsonl"),
    }
    return subprocess.Popen(
        [PYTHON, "-m", "aiodaemon", "start", "app:main", *(x for o in options.items() for x in o)],
        cwd=app_dir,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def _spawned(app_dir: Path) -> int:
    """The pid of the sleep the startup hook spawned, once it has said it."""
    path = app_dir / "sleep.pid"
    return int(wait_for(lambda: path.exists() and path.read_text(), 30, "the sleep's pid"))


def test_shutdown_budget_exceeded_during_startup_kills_the_hooks_subprocess(
    app_dir: Path,
) -> None:
    """A stop the hook ignores: the forced exit (status 4) takes the sleep; the port is free."""
    port = free_port()
    launcher = _start(app_dir, port, "1")
    sleep = _spawned(app_dir)
    daemon = read_pid(app_dir / "app.pid")
    assert not port_binds(port)  # the daemon and the sleep hold it
    kill_quietly(daemon, signal.SIGTERM)
    _, err = launcher.communicate(timeout=60)
    assert launcher.returncode == 4, err
    wait_gone(sleep)
    wait_gone(daemon)
    assert port_binds(port)
    records = (app_dir / "log.jsonl").read_text()
    assert '"event":"process group killed at exit"' in records


def test_second_stop_signal_during_startup_kills_the_hooks_subprocess(app_dir: Path) -> None:
    """The forced exit of a second SIGTERM (a long budget) takes the sleep too."""
    port = free_port()
    launcher = _start(app_dir, port, "60")
    sleep = _spawned(app_dir)
    daemon = read_pid(app_dir / "app.pid")

    def stopped() -> bool:
        # Again until it ends: one within 50 ms of the first counts as that one repeated.
        kill_quietly(daemon, signal.SIGTERM)
        return launcher.poll() is not None

    wait_for(stopped, 30, "the forced exit")
    _, err = launcher.communicate(timeout=30)
    assert launcher.returncode == 128 + signal.SIGTERM, err
    wait_gone(sleep)
    wait_gone(daemon)
    assert port_binds(port)
