"""``restart`` tries the addresses its new daemon would bind before it stops the old one."""

from __future__ import annotations

import socket
from contextlib import ExitStack
from pathlib import Path

from .support import (
    aiodaemon_cli,
    free_port,
    is_alive,
    read_pid,
    start_installed,
    wait_gone,
)
from .test_restart_sockets import app_dir, echoes, restart  # noqa: F401  (fixture)


def _assert_refused_in_use(err: str, address: str, directory: Path, pid: int) -> None:
    """The start's own bind error for name ``b``, and the old daemon still the one running."""
    assert err.splitlines() == [
        f"aiodaemon: --listen b: cannot bind {address}: Address already in use"
    ]
    assert is_alive(pid)
    assert read_pid(directory / "app.pid") == pid


def test_restart_onto_a_port_another_program_holds_keeps_the_daemon(app_dir: Path) -> None:  # noqa: F811
    """A port held by another program: the start's bind error, exit 1, the old daemon serving."""
    port = free_port()
    pid = start_installed(app_dir, "--listen", f"echo=127.0.0.1:{port}")
    with socket.socket() as other:
        # As most servers bind: SO_REUSEADDR does not let a second listener in.
        other.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        other.bind(("127.0.0.1", 0))
        other.listen()
        taken = other.getsockname()[1]
        code, out, err = restart(
            app_dir, "--listen", f"echo=127.0.0.1:{port}", "--listen", f"b=127.0.0.1:{taken}"
        )
    assert (code, out) == (1, ""), err
    _assert_refused_in_use(err, f"127.0.0.1:{taken}", app_dir, pid)
    assert echoes(port)


def test_restart_onto_a_unix_path_another_program_serves_keeps_the_daemon(app_dir: Path) -> None:  # noqa: F811
    """A unix path another program listens on is refused before the stop, its socket untouched."""
    pid = start_installed(app_dir)
    path = app_dir / "b.sock"
    with socket.socket(socket.AF_UNIX) as other:
        other.bind(str(path))
        other.listen()
        code, _, err = restart(app_dir, "--listen", f"b=unix:{path}")
        assert path.is_socket()
    assert code == 1, err
    _assert_refused_in_use(err, f"unix:{path}", app_dir, pid)


def test_restart_keeps_its_own_port_and_binds_new_ones(app_dir: Path) -> None:  # noqa: F811
    """The old daemon's own port is not tried (it is freed by the stop); new ports bind after."""
    port, added = free_port(), free_port()
    old = start_installed(app_dir, "--listen", f"echo=127.0.0.1:{port}")
    code, out, err = restart(
        app_dir, "--listen", f"echo=127.0.0.1:{port}", "--listen", f"b=127.0.0.1:{added}"
    )
    assert code == 0, err
    new = int(out)
    wait_gone(old)
    assert read_pid(app_dir / "app.pid") == new
    assert echoes(port)
    # The test bind closed without a trace: the new daemon listens there (its backlog takes us).
    with socket.create_connection(("127.0.0.1", added), timeout=5.0):
        pass


def _start_line(directory: Path, *options: str) -> tuple[int, str]:
    """What ``start`` of another daemon with ``options`` says: its status and stderr."""
    result = aiodaemon_cli(
        "start", "app:main", "--pidfile", directory / "other.pid", *options, cwd=directory
    )
    return result.returncode, result.stderr


def test_restart_onto_a_regular_file_at_a_unix_path_keeps_the_daemon(app_dir: Path) -> None:  # noqa: F811
    """A regular file at the unix path: refused before the stop, as start refuses it."""
    pid = start_installed(app_dir)
    path = app_dir / "b.sock"
    path.write_text("data\n")
    code, out, err = restart(app_dir, "--listen", f"b=unix:{path}")
    line = (
        f"aiodaemon: --listen b: cannot bind unix:{path}:"
        " file exists and is a regular file, not a socket"
    )
    assert (code, out, err.splitlines()) == (1, "", [line])
    assert _start_line(app_dir, "--listen", f"b=unix:{path}") == (code, err)
    assert is_alive(pid)
    assert read_pid(app_dir / "app.pid") == pid
    assert path.read_text() == "data\n"


def test_restart_onto_a_unix_listener_with_a_full_backlog_keeps_the_daemon(app_dir: Path) -> None:  # noqa: F811
    """A live listener whose backlog is full (no connect gets in) is in use, as start says."""
    pid = start_installed(app_dir)
    path = app_dir / "b.sock"
    with ExitStack() as stack:
        other = stack.enter_context(socket.socket(socket.AF_UNIX))
        other.bind(str(path))
        other.listen(0)
        while True:  # filled until the kernel refuses one more at once
            client = stack.enter_context(socket.socket(socket.AF_UNIX))
            client.setblocking(False)
            try:
                client.connect(str(path))
            except BlockingIOError:
                break
        code, _, err = restart(app_dir, "--listen", f"b=unix:{path}")
        assert _start_line(app_dir, "--listen", f"b=unix:{path}") == (code, err)
        assert path.is_socket()
    assert code == 1, err
    _assert_refused_in_use(err, f"unix:{path}", app_dir, pid)


def test_restart_keeps_its_own_unix_path(app_dir: Path) -> None:  # noqa: F811
    """The unix path the old daemon serves is not in the way: the new daemon serves it."""
    path = app_dir / "b.sock"
    old = start_installed(app_dir, "--listen", f"b=unix:{path}")
    code, out, err = restart(app_dir, "--listen", f"b=unix:{path}")
    assert code == 0, err
    new = int(out)
    wait_gone(old)
    assert read_pid(app_dir / "app.pid") == new
    with socket.socket(socket.AF_UNIX) as client:
        client.settimeout(5.0)
        client.connect(str(path))


def test_restart_of_a_daemon_without_control_socket_judges_unix_paths(app_dir: Path) -> None:  # noqa: F811
    """Not told what it serves: its own live socket is no obstacle, a regular file is."""
    own, planted = app_dir / "own.sock", app_dir / "b.sock"
    old = start_installed(app_dir, "--no-control", "--listen", f"a=unix:{own}")
    planted.write_text("data\n")
    options = ("--no-control", "--listen", f"a=unix:{own}", "--listen", f"b=unix:{planted}")
    code, out, err = restart(app_dir, *options)
    assert (code, out) == (1, ""), err
    assert err.splitlines()[-1].startswith(f"aiodaemon: --listen b: cannot bind unix:{planted}:")
    assert is_alive(old)
    planted.unlink()
    code, out, err = restart(app_dir, *options)
    assert code == 0, err
    wait_gone(old)
    assert read_pid(app_dir / "app.pid") == int(out)
    assert own.is_socket()
    assert planted.is_socket()
