"""``restart`` never drops a socket the running daemon serves: real daemons, real ports."""

from __future__ import annotations

import os
import shlex
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import (
    aiodaemon_cli,
    free_port,
    install_program,
    is_alive,
    kill_pidfile_holder,
    proc_state,
    read_pid,
    start_installed,
    wait_for,
    wait_gone,
)


@pytest.fixture
def app_dir(tmp_path: Path) -> Iterator[Path]:
    """A directory holding an echo program as app.py; its daemon is killed at the end."""
    install_program("plain_echo", tmp_path, "app.py")
    yield tmp_path
    kill_pidfile_holder(tmp_path / "app.pid")


def echoes(port: int) -> bool:
    """Whether 127.0.0.1:``port`` answers ``hi`` with ``hi``."""
    with socket.create_connection(("127.0.0.1", port), timeout=5.0) as sock:
        sock.sendall(b"hi")
        return sock.recv(16) == b"hi"


def restart(app_dir: Path, *options: str) -> tuple[int, str, str]:
    """``aiodaemon restart app:main --pidfile APP_DIR/app.pid OPTIONS``: status, stdout, stderr."""
    pidfile = app_dir / "app.pid"
    result = aiodaemon_cli("restart", "app:main", "--pidfile", pidfile, *options, cwd=app_dir)
    return result.returncode, result.stdout, result.stderr


def test_restart_without_the_listen_option_keeps_the_daemon(app_dir: Path) -> None:
    """restart given only TARGET says which --listen it would drop, and stops nothing."""
    port = free_port()
    listen = f"echo=127.0.0.1:{port}"
    pid = start_installed(app_dir, "--listen", listen)
    code, out, err = restart(app_dir)
    assert code == 1
    assert out == ""
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert "not restarted" in lines[0]
    assert f"--listen {listen}" in lines[0]
    assert "stop, then start, to drop it on purpose" in lines[0]
    assert is_alive(pid)
    assert read_pid(app_dir / "app.pid") == pid
    assert echoes(port)


def test_restart_with_the_listen_option_it_names_restarts(app_dir: Path) -> None:
    """The --listen the refusal names, copied onto the command line, restarts the daemon."""
    port = free_port()
    old = start_installed(app_dir, "--listen", f"echo=127.0.0.1:{port}")
    _, _, err = restart(app_dir)
    named = err.split("serves ", 1)[1].split(", which", 1)[0]
    code, out, err = restart(app_dir, *shlex.split(named))
    assert code == 0, err
    new = int(out)
    wait_gone(old)
    assert read_pid(app_dir / "app.pid") == new
    assert echoes(port)


def test_restart_names_every_dropped_socket_and_the_health_flag(app_dir: Path) -> None:
    """Two sockets dropped (one the health endpoint): both named, --health as such."""
    echo, health = free_port(), free_port()
    pid = start_installed(
        app_dir, "--listen", f"echo=127.0.0.1:{echo}", "--health", f"127.0.0.1:{health}"
    )
    code, _, err = restart(app_dir, "--listen", f"echo=127.0.0.1:{echo}")
    assert code == 1
    assert f"--health 127.0.0.1:{health}" in err
    assert "--listen echo" not in err  # kept: given again
    assert is_alive(pid)
    code, _, err = restart(app_dir)
    assert code == 1
    assert f"--listen echo=127.0.0.1:{echo} --health 127.0.0.1:{health}" in err
    assert "drop them on purpose" in err
    assert is_alive(pid)


def test_restart_of_a_daemon_without_control_socket_restarts_as_before(app_dir: Path) -> None:
    """No control socket to ask: restart stops it and starts the program as given."""
    port = free_port()
    old = start_installed(app_dir, "--listen", f"echo=127.0.0.1:{port}", "--no-control")
    code, out, err = restart(app_dir, "--no-control")
    assert code == 0, err
    wait_gone(old)
    assert read_pid(app_dir / "app.pid") == int(out)


def test_restart_names_a_listen_socket_called_health_as_such(app_dir: Path) -> None:
    """A listen= socket named "health" (no --health) is kept with --listen, not --health."""
    port = free_port()
    pid = start_installed(app_dir, "--listen", f"health=127.0.0.1:{port}")
    code, _, err = restart(app_dir)
    assert code == 1
    assert f"serves --listen health=127.0.0.1:{port}, which" in err
    assert "--health" not in err
    assert is_alive(pid)


def test_restart_of_a_suspended_daemon_still_keeps_the_socket_it_serves(app_dir: Path) -> None:
    """SIGSTOPped: continued and asked, so the --listen it would drop is named; nothing stopped.

    Its question timed out (5 s, whatever --timeout said), and the restart went
    on, dropping the socket.
    """
    port = free_port()
    listen = f"echo=127.0.0.1:{port}"
    pid = start_installed(app_dir, "--listen", listen)
    os.kill(pid, signal.SIGSTOP)
    wait_for(lambda: proc_state(pid) == "T", 10, "the daemon to be stopped")
    try:
        code, out, err = restart(app_dir, "--timeout", "1")
    finally:
        os.kill(pid, signal.SIGCONT)
    assert (code, out) == (1, ""), err
    [line] = err.splitlines()
    assert f"not restarted: pid {pid} serves --listen {listen}" in line
    assert line.endswith(f" (pid {pid} was suspended (SIGSTOP), and was continued to be asked)")
    assert read_pid(app_dir / "app.pid") == pid
    assert echoes(port)
