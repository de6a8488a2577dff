"""Unix socket files get owner and mode at creation, whatever directory they land in.

``open_listeners`` is called here as the launching process calls it (as root,
with the owner the daemon drops to); the files are observed with ``lstat``.
"""

from __future__ import annotations

import os
import pwd
import socket
import stat
from pathlib import Path

import pytest

from aiodaemon._prefork._addresses import parse_listen_address
from aiodaemon._prefork._sockets import open_listeners
from aiodaemon.exceptions import StartupError

from .security_support import (
    User,
    arena,
    as_user,
    assert_refused_in_open_directory,
    intruder,
    own_dir,
    records,
    running_daemon,
    shared_dir,
    start_daemon,
    stop_daemon,
)
from .support import REPO, aiodaemon_cli, is_alive, kill_quietly, read_pid, wait_for, wait_gone

pytestmark = pytest.mark.root

__all__ = ["arena", "intruder"]  # fixtures, re-exported for pytest

NOBODY = pwd.getpwnam("nobody")


def _owned_socket(directory: Path, user: User, query: str = "") -> os.stat_result:
    path = directory / "app.sock"
    listen = {"app": parse_listen_address("listen[app]", f"unix:{path}{query}")}
    listeners = open_listeners(listen, env={}, owner=(user.uid, user.gid))
    try:
        st = os.lstat(path)
        # Still a working listener, and still root's process afterwards.
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(path))
        assert os.geteuid() == 0
        assert os.getegid() == 0
        return st
    finally:
        listeners.close()


@pytest.mark.parametrize(
    ("layout", "query", "mode"),
    [
        ("root-only", "", 0o755),
        ("root-only", "?mode=0660", 0o660),
        ("user's own", "?mode=0660", 0o660),
        ("sticky world-writable", "?mode=0600", 0o600),
    ],
)
def test_socket_file_is_born_the_daemon_users(
    arena: Path, intruder: User, layout: str, query: str, mode: int
) -> None:
    """Root-only, the user's own or a sticky directory: the file is born the user's, mode set."""
    directory = arena / "d"
    if layout == "root-only":
        directory.mkdir(mode=0o755)
    elif layout == "user's own":
        own_dir(directory, intruder)
    else:
        directory.mkdir()
        directory.chmod(0o1777)
    st = _owned_socket(directory, intruder, query)
    assert stat.S_ISSOCK(st.st_mode)
    assert (st.st_uid, st.st_gid) == (intruder.uid, intruder.gid)
    assert stat.S_IMODE(st.st_mode) == mode


def test_a_directory_a_third_user_controls_is_refused(arena: Path, intruder: User) -> None:
    """A directory writable by someone else than root and the daemon's user: refused, no file."""
    third = User("nobody", NOBODY.pw_uid, NOBODY.pw_gid)
    directory = own_dir(arena / "d", third)
    path = directory / "app.sock"
    listen = {"app": parse_listen_address("listen[app]", f"unix:{path}")}
    with pytest.raises(
        StartupError,
        match=r"^listen\[app\]: cannot bind unix:.*: Permission denied \(the directory must be "
        r"writable by the daemon's user, or by root alone\)$",
    ):
        open_listeners(listen, env={}, owner=(intruder.uid, intruder.gid))
    assert not path.exists()
    assert (os.geteuid(), os.getegid()) == (0, 0)


def test_a_stale_socket_is_replaced_but_a_symlink_to_one_is_not(arena: Path) -> None:
    """A dead socket at the path is replaced; a symlink to a dead socket is refused and left."""
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(arena / "dead.sock"))
    dead.close()
    os.symlink(arena / "dead.sock", arena / "link.sock")
    listen = {"app": parse_listen_address("listen[app]", f"unix:{arena}/link.sock")}
    with pytest.raises(StartupError, match="file exists and is a symlink, not a socket"):
        open_listeners(listen, env={})
    assert os.readlink(arena / "link.sock") == str(arena / "dead.sock")
    assert stat.S_ISSOCK(os.lstat(arena / "dead.sock").st_mode)
    listen = {"app": parse_listen_address("listen[app]", f"unix:{arena}/dead.sock")}
    listeners = open_listeners(listen, env={})
    try:
        with socket.socket(socket.AF_UNIX) as client:
            client.connect(str(arena / "dead.sock"))
    finally:
        listeners.close()
    assert not (arena / "dead.sock").exists()


@pytest.mark.parametrize(
    ("option", "named"), [("listen", "listen[app]"), ("health", "health")], ids=["listen", "health"]
)
def test_a_socket_in_a_directory_open_to_all_is_refused(
    arena: Path, option: str, named: str
) -> None:
    """A unix socket in a world-writable directory without the sticky bit: exit 2, one line.

    Anyone may remove the socket file there and bind their own at the path,
    taking the daemon's clients. Refused as the control socket is there.
    """

    def socket_in(directory: Path) -> dict[str, object]:
        address = f"unix:{directory}/app.sock"
        return {option: {"app": address} if option == "listen" else address}

    assert_refused_in_open_directory(arena, named, socket_in)


def _dead_socket(path: Path) -> None:
    """Bind a socket file at ``path`` and close it: the leftover of a killed daemon."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.bind(str(path))


@pytest.mark.parametrize("option", ["listen", "control"])
def test_another_users_dead_socket_in_a_sticky_directory_is_left(
    arena: Path, intruder: User, option: str
) -> None:
    """Another user's leftover socket in /tmp: root's start fails naming it, and leaves it."""
    pub = shared_dir(arena / "pub", 0o1777)
    path = pub / "app.sock"
    as_user(intruder, lambda: _dead_socket(path))
    options: dict[str, object] = {"detach": True, "pidfile": str(arena / "app.pid")}
    if option == "listen":
        options["listen"] = {"app": f"unix:{path}"}
        named = f"listen[app]: cannot bind unix:{path}"
    else:
        options["control"] = str(path)
        named = f"control: cannot bind {path}"
    result = start_daemon(options)
    if result.returncode == 0:
        stop_daemon(read_pid(arena / "app.pid"))
    assert result.returncode == 1, result.stderr
    assert result.stderr == (
        f"aiodaemon: {named}: is a socket owned by uid {intruder.uid} (another user); "
        "refusing to replace it\n"
    )
    st = os.lstat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert st.st_uid == intruder.uid


def test_the_daemon_users_own_dead_socket_in_a_sticky_directory_is_replaced(
    arena: Path, intruder: User
) -> None:
    """The leftover of the daemon's own ``user=`` from its last run: replaced, the start works."""
    pub = shared_dir(arena / "pub", 0o1777)
    path = pub / "app.sock"
    as_user(intruder, lambda: _dead_socket(path))
    options = {"pidfile": str(arena / "app.pid"), "listen": {"app": f"unix:{path}"}}
    with (
        running_daemon({**options, "user": intruder.name}),
        socket.socket(socket.AF_UNIX) as client,
    ):
        client.connect(str(path))


def test_stop_leaves_a_socket_file_the_daemon_named_that_is_not_its_users(
    arena: Path, intruder: User
) -> None:
    """A daemon whose account was taken over names root's socket file in its stop answer.

    root's ``stop`` SIGKILLs it at --timeout and removes the daemon's own
    listener file, but root's socket (bound, not yet listening, in a directory
    the account cannot write) stays.
    """
    run = own_dir(arena / "run", intruder)
    (arena / "root").mkdir(mode=0o755)
    victim = arena / "root" / "api.sock"
    pidfile, log, echo = run / "app.pid", run / "app.log", run / "echo.sock"
    with socket.socket(socket.AF_UNIX) as held:
        held.bind(str(victim))  # a root service between its bind() and listen()
        started = aiodaemon_cli(
            "start", "tests.programs.forged_socket_files:main", "--pidfile", pidfile,
            "--user", intruder.name, "--log-file", log, "--listen", f"echo=unix:{echo}",
            "--shutdown-timeout", "60", cwd=REPO, timeout=60, env={"FORGED_SOCKET": str(victim)},
        )  # fmt: skip
        assert started.returncode == 0, started.stderr
        pid = int(started.stdout)
        try:
            wait_for(lambda: [r for r in records(log) if r["event"] == "forged"], 30, "the forgery")
            stop = aiodaemon_cli(
                "stop", "--pidfile", pidfile, "--timeout", "1", cwd=REPO, timeout=60
            )
        finally:
            if is_alive(pid):
                kill_quietly(pid)
                wait_gone(pid, 20)
        assert stop.returncode == 0, stop.stderr
        assert stop.stderr.splitlines()[-1] == (
            f"aiodaemon: killed (pid {pid}) 1s after the stop request; removed pidfile {pidfile},"
            f" control socket {pidfile}.ctl and socket file {echo}, which the killed daemon left"
        )
        st = os.lstat(victim)
        assert stat.S_ISSOCK(st.st_mode)
        assert st.st_uid == 0
