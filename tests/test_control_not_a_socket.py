"""Something other than a stream socket at the control path: named, and passed over.

A datagram socket bound there (a syslog-like listener) refused the commands'
connection with the kernel's words, "Protocol wrong type for socket": status
said unknown (4), stop and reload "nothing signalled" (1), though no daemon ran.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager
from pathlib import Path

import pytest

from .support import REPO, aiodaemon_cli, kill_quietly

TARGET = "tests.programs.security_daemon:main"


def _bound(kind: int) -> Callable[[Path, ExitStack], None]:
    """Put a live unix socket of ``kind`` at the path (closed with the stack)."""

    def put(path: Path, stack: ExitStack) -> None:
        sock = stack.enter_context(socket.socket(socket.AF_UNIX, kind))
        sock.bind(str(path))
        if kind == socket.SOCK_SEQPACKET:
            sock.listen(1)

    return put


#: What is put at the control path, and how the commands name it.
KINDS = {
    "datagram": (_bound(socket.SOCK_DGRAM), "a datagram socket"),
    "seqpacket": (_bound(socket.SOCK_SEQPACKET), "a sequenced-packet socket"),
    "fifo": (lambda path, _stack: os.mkfifo(path), "a FIFO"),
    "file": (lambda path, _stack: path.write_text("x\n"), "a regular file"),
    "symlink": (lambda path, _stack: path.symlink_to(path.parent / "nowhere"), "a symlink"),
    "directory": (lambda path, _stack: path.mkdir(), "a directory"),
}


@contextmanager
def _at(path: Path, what: str) -> Iterator[str]:
    """``what`` (a key of KINDS) put at ``path`` for the block; yields its name."""
    put, name = KINDS[what]
    with ExitStack() as stack:
        put(path, stack)
        yield name


def cli(*args: str | os.PathLike[str]) -> tuple[int, str, str]:
    """``aiodaemon ARGS``: its exit status, stdout and stderr."""
    result = aiodaemon_cli(*args, cwd=REPO, timeout=60)
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize("what", sorted(KINDS))
def test_no_daemon_and_no_control_socket_at_the_path_is_not_running(
    tmp_path: Path, what: str
) -> None:
    """status 3, stop 0, reload 7, each naming what is at the path; it is left there."""
    pidfile, control = tmp_path / "app.pid", tmp_path / "app.pid.ctl"
    with _at(control, what) as name:
        ignored = f"aiodaemon: warning: {control} is not a control socket ({name}); not trusted"
        status = cli("status", "--pidfile", pidfile, "--timeout", "5")
        stop = cli("stop", "--pidfile", pidfile, "--timeout", "5")
        reload = cli("reload", "--pidfile", pidfile, "--timeout", "5")
        assert status == (
            3,
            f"not running (no pidfile {pidfile})\n",
            f"{ignored}, so it is ignored; status from the pidfile\n",
        )
        assert stop[0] == 0, stop
        assert reload[0] == 7, reload
        for result in (stop, reload):
            assert result[2] == (
                f"{ignored}, so it is ignored; the pidfile tells\n"
                f"aiodaemon: not running (no pidfile {pidfile})\n"
            )
        assert os.path.lexists(control)  # not ours to remove


def test_a_datagram_socket_beside_a_running_daemon_leaves_status_to_the_pidfile(
    tmp_path: Path,
) -> None:
    """Its control socket served elsewhere: status 0 from the pidfile, reload by SIGHUP."""
    pidfile, control = tmp_path / "app.pid", tmp_path / "app.pid.ctl"
    code, out, err = cli("start", TARGET, "--pidfile", pidfile, "--control", tmp_path / "own.ctl")
    assert code == 0, err
    pid = int(out)
    try:
        with _at(control, "datagram"):
            ignored = (
                f"aiodaemon: warning: {control} is not a control socket (a datagram socket);"
                " not trusted, so it is ignored"
            )
            status = cli("status", "--pidfile", pidfile, "--timeout", "5")
            assert status == (
                0,
                f"running (pid {pid}, pidfile {pidfile})\n",
                f"{ignored}; status from the pidfile\n",
            )
            reload = cli("reload", "--pidfile", pidfile, "--timeout", "5")
            assert reload[0] == 0, reload
            assert reload[2].splitlines()[0] == f"{ignored}; sending SIGHUP to pid {pid}"
        code, _, err = cli("stop", "--pidfile", pidfile, "--control", tmp_path / "own.ctl")
        assert code == 0, err
    finally:
        kill_quietly(pid)
