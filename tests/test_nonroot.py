"""An ordinary user, not root, runs aiodaemon: what that user meets, as that user sees it."""

from __future__ import annotations

import os
import socket
from collections.abc import Callable
from pathlib import Path

import pytest

from .security_support import (
    User,
    arena,
    as_user,
    holding,
    intruder,
    own_dir,
    service_account,
    shared_dir,
    shared_python_as,
    stop_daemon,
)
from .support import free_privileged_port, install_program, is_alive

pytestmark = pytest.mark.root  # root only creates the user; the commands run as that user

__all__ = ["arena", "intruder", "service_account"]  # fixtures, re-exported for pytest


@pytest.fixture
def app(arena: Path, intruder: User) -> Path:
    """The user's project directory, holding the CLI example as ``app.py``."""
    project = own_dir(arena / "project", intruder)
    install_program("cli_app", project)
    return project


@pytest.mark.parametrize("command", ["start", "run"])
def test_a_workdir_the_user_cannot_enter_is_refused_before_the_fork(
    app: Path, intruder: User, command: str
) -> None:
    """Not a silent "exited before it was ready" (start) or a traceback (run): one line, exit 2."""
    closed = own_dir(app / "closed", intruder, mode=0o600)
    pidfile = app / "d.pid"
    result = shared_python_as(
        intruder, "-m", "aiodaemon", command, "app:main", "--pidfile", pidfile,
        "--workdir", closed, cwd=app,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == f"aiodaemon: --workdir: {closed}: {intruder.name} cannot enter it\n"
    assert not pidfile.exists()
    assert not (app / "started").exists()


def _leave_file(path: Path) -> None:
    """What a daemon killed in ``/tmp`` leaves: a plain file of its user's, mode 0644."""
    path.write_text("4242\n")


def _leave_socket(path: Path) -> None:
    """What a daemon killed in ``/tmp`` leaves: a socket file of its user's nobody accepts on."""
    with socket.socket(socket.AF_UNIX) as sock:
        os.fchmod(sock.fileno(), 0o600)
        sock.bind(str(path))


@pytest.mark.parametrize(
    ("flag", "leftover", "message"),
    [
        ("--pidfile", _leave_file, "--pidfile: {path} is owned by uid {uid} (another user)"
         " in a shared sticky directory; refusing to use it"),
        ("--log-file", _leave_file, "--log-file: cannot open {path}: is owned by uid {uid}"
         " (another user) in a shared sticky directory; refusing to use it"),
        ("--control", _leave_socket, "--control: cannot bind {path}: is a socket owned by uid {uid}"
         " (another user); refusing to replace it"),
        ("--listen=u=unix:", _leave_socket, "--listen u: cannot bind unix:{path}: is a socket"
         " owned by uid {uid} (another user); refusing to replace it"),
    ],
    ids=["pidfile", "log_file", "control", "listen"],
)  # fmt: skip
def test_another_users_leftover_in_tmp_is_named_not_permission_denied(
    app: Path,
    arena: Path,
    intruder: User,
    service_account: User,
    flag: str,
    leftover: Callable[[Path], None],
    message: str,
) -> None:
    """The start says whose file is in the way, as it does for root, not a bare EACCES."""
    path = shared_dir(arena / "tmp") / "app.thing"
    as_user(service_account, lambda: leftover(path))
    pidfile = app / "d.pid"
    target = [f"{flag}{path}"] if flag.endswith(":") else [flag, path]
    if flag != "--pidfile":
        target += ["--pidfile", pidfile]
    result = shared_python_as(intruder, "-m", "aiodaemon", "start", "app:main", *target, cwd=app)
    assert (result.returncode, result.stdout) == (1, "")
    expected = message.format(path=path, uid=service_account.uid)
    assert result.stderr == f"aiodaemon: {expected}\n"
    assert os.stat(path).st_uid == service_account.uid  # left as it was
    assert not pidfile.exists()
    assert not (app / "started").exists()


def test_roots_leftover_log_in_tmp_is_named(app: Path, arena: Path, intruder: User) -> None:
    """The README's command run by root, then by a user: the log file in the way names root."""
    log_file = shared_dir(arena / "tmp") / "echo.jsonl"
    _leave_file(log_file)
    result = shared_python_as(
        intruder, "-m", "aiodaemon", "start", "app:main", "--pidfile", app / "d.pid",
        "--log-file", log_file, cwd=app,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"aiodaemon: --log-file: cannot open {log_file}: Permission denied"
        " (owned by uid 0, another user)\n"
    )


def test_sudo_u_in_a_directory_closed_to_the_user_says_so(
    app: Path, arena: Path, intruder: User
) -> None:
    """`sudo -u USER aiodaemon start app:main` typed in root's home: why app.py is not found."""
    closed = arena / "root-home"
    closed.mkdir(mode=0o700)
    install_program("cli_app", closed)
    result = shared_python_as(
        intruder, "-m", "aiodaemon", "start", "app:main", "--pidfile", app / "d.pid", cwd=closed
    )
    assert (result.returncode, result.stdout) == (2, "")
    assert result.stderr == (
        f"aiodaemon: no module named 'app' (in {closed}, which {intruder.name} may not read,"
        " or sys.path)\n"
    )


def test_the_accounts_restart_keeps_a_daemon_on_a_port_only_root_binds(
    app: Path, intruder: User
) -> None:
    """Root started it on a port < 1024 as the user: the user's restart is refused (4)."""
    port = free_privileged_port()
    pidfile = app / "d.pid"
    options = ["app:main", "--user", intruder.name, "--pidfile", str(pidfile)]
    options += ["--listen", f"http=127.0.0.1:{port}"]
    started = shared_python_as(None, "-m", "aiodaemon", "start", *options, cwd=app)
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout)
    try:
        result = shared_python_as(intruder, "-m", "aiodaemon", "restart", *options, cwd=app)
        assert (result.returncode, result.stdout) == (4, "")
        assert result.stderr == (
            f"aiodaemon: already running (pid {pid}, pidfile {pidfile}); not restarted:"
            f" --listen http: port {port} is privileged (only root or CAP_NET_BIND_SERVICE may"
            " bind it); 'aiodaemon upgrade' replaces the daemon and keeps its sockets\n"
        )
        assert is_alive(pid)
        with socket.create_connection(("127.0.0.1", port), timeout=10):
            pass  # still served
    finally:
        stop_daemon(pid)


def test_the_accounts_restart_keeps_a_daemon_whose_control_socket_only_root_binds(
    app: Path, arena: Path, intruder: User
) -> None:
    """Root started it, dropped to the user, its files in a root-only directory: the user's
    restart is refused (4), the daemon keeps its control socket; the user's upgrade works.

    It stopped the daemon, and the one it started ran without a control socket: the old one
    could not remove its socket file there, nor the new one replace it.
    """
    run = arena / "run"
    run.mkdir(mode=0o755)  # root's, as /run is
    pidfile = run / "d.pid"
    options = ["app:main", "--user", intruder.name, "--pidfile", str(pidfile)]
    started = shared_python_as(None, "-m", "aiodaemon", "start", *options, cwd=app)
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout)
    new = None
    try:
        result = shared_python_as(intruder, "-m", "aiodaemon", "restart", *options, cwd=app)
        assert (result.returncode, result.stdout) == (4, "")
        assert result.stderr == (
            f"aiodaemon: already running (pid {pid}, pidfile {pidfile}); not restarted:"
            f" control socket {pidfile}.ctl: directory {run} is not writable, so the new daemon"
            " would have no control socket (only root may replace it there);"
            " 'aiodaemon upgrade' replaces the daemon and keeps its sockets\n"
        )
        status = shared_python_as(
            intruder, "-m", "aiodaemon", "status", "--pidfile", pidfile, cwd=app
        )
        assert status.stdout.startswith(f"running (pid {pid}, pidfile {pidfile})\nuptime: ")
        upgrade = shared_python_as(
            intruder, "-m", "aiodaemon", "upgrade", "--pidfile", pidfile, cwd=app
        )
        assert upgrade.returncode == 0, upgrade.stderr
        new = int(upgrade.stdout)
        status = shared_python_as(
            intruder, "-m", "aiodaemon", "status", "--pidfile", pidfile, cwd=app
        )
        assert status.stdout.startswith(f"running (pid {new}, pidfile {pidfile})\nuptime: ")
    finally:
        # Whoever holds the pidfile now (a restart that went ahead started one).
        shared_python_as(None, "-m", "aiodaemon", "stop", "--pidfile", pidfile, cwd=app)
        stop_daemon(pid)
        if new is not None:
            stop_daemon(new)


def test_another_group_with_our_own_user_names_the_group(
    app: Path, intruder: User, service_account: User
) -> None:
    """--user me --group theirs: the group needs root (exit 4), and the error says --group."""
    result = shared_python_as(
        intruder, "-m", "aiodaemon", "start", "app:main", "--pidfile", app / "d.pid",
        "--user", intruder.name, "--group", str(service_account.gid), cwd=app,
    )  # fmt: skip
    assert (result.returncode, result.stdout) == (4, "")
    assert result.stderr == (
        "aiodaemon: --group: changing identity needs root"
        f" (to group {service_account.gid}; we run as group {intruder.gid})\n"
    )


def test_another_users_live_socket_in_the_way_is_named(
    app: Path, arena: Path, intruder: User, service_account: User
) -> None:
    """A listener of another user at the control path: in use, and by whom (it stays theirs)."""
    path = shared_dir(arena / "tmp") / "app.pid.ctl"
    listener = socket.socket(socket.AF_UNIX)

    def listen() -> None:
        listener.bind(str(path))
        os.chmod(path, 0o666)  # anyone may connect: the probe finds it alive
        listener.listen()

    # Closed however the block ends: left to the garbage collector (a skip, a
    # failure), it is a ResourceWarning failing whichever test runs then.
    with listener, holding(service_account, listen, "the other user's listener"):
        result = shared_python_as(
            intruder, "-m", "aiodaemon", "start", "app:main", "--pidfile", app / "d.pid",
            "--control", path, cwd=app,
        )  # fmt: skip
        assert path.exists()
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"aiodaemon: --control: cannot bind {path}: Address already in use"
        f" (a socket owned by uid {service_account.uid}, another user)\n"
    )
