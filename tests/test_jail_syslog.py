"""A chrooted daemon finds its jail's syslog socket again after the syslog daemon restarts.

The classic chroot set-up gives the jail a syslog socket of its own (rsyslog's
extra listen socket at ``/srv/jail/dev/log``). The daemon connects to it
before the chroot, by its host path; a restart of the syslog daemon makes a new
socket, which the daemon must then connect to by its path inside the jail,
as a log file is reopened. It tried the host path in the jail, never found it,
and its records no longer went anywhere.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest

from .support import aiodaemon_cli, kill_quietly, read_pid, wait_gone

pytestmark = pytest.mark.root


@pytest.fixture
def base(jail_base: Path) -> Path:
    """A directory holding a jail with a ``dev`` directory, and the daemon's files outside it."""
    (jail_base / "jail" / "dev").mkdir(mode=0o755)
    return jail_base


def _syslog_socket(path: Path) -> socket.socket:
    """A syslog daemon's socket at ``path``, made anew as a restart makes it."""
    path.unlink(missing_ok=True)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(path))
    path.chmod(0o666)  # the daemon connects as nobody
    sock.settimeout(10)  # the deadline for each record awaited
    return sock


def _wait_for_message(sock: socket.socket, text: bytes) -> None:
    while text not in sock.recv(65536):
        pass


def test_the_jails_syslog_socket_is_found_again_after_a_restart(base: Path) -> None:
    """After the socket is made anew, a reload's records reach it."""
    dev_log, pidfile = base / "jail" / "dev" / "log", base / "d.pid"
    first = _syslog_socket(dev_log)
    started = aiodaemon_cli(
        "start", "tests.programs.forever:main", "--chroot", base / "jail", "--user", "nobody",
        "--pidfile", pidfile, "--syslog", dev_log,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    try:
        _wait_for_message(first, b'"event":"ready"')
        first.close()
        with _syslog_socket(dev_log) as restarted:
            assert aiodaemon_cli("reload", "--pidfile", pidfile).returncode == 0
            _wait_for_message(restarted, b'"event":"reload finished"')
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
        assert stopped.returncode == 0, stopped.stderr
        wait_gone(pid)
    finally:
        kill_quietly(pid)
