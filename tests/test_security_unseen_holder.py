"""Root without CAP_SYS_PTRACE (a container's default set) cannot see a dropped daemon's fds.

A daemon after its drop is not dumpable, so such a caller cannot check that
the pid in the pidfile has the file open. The service account owns the file
and may write any pid into it: ``stop`` once killed whatever root process it
named there (one that hides its descriptors too: a setuid program, another
daemon), and left the real daemon running.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from .security_support import User, arena, as_user, service_account
from .support import (
    PYTHON,
    REPO,
    clean_env,
    is_alive,
    kill_quietly,
    read_pid,
    wait_for,
    wait_gone,
)

pytestmark = pytest.mark.root

__all__ = ["arena", "service_account"]  # fixtures, re-exported for pytest

TARGET = "tests.programs.security_daemon:main"

#: A root process that is no daemon of ours and hides its descriptors; it notes signals.
VICTIM = """\
import ctypes, signal, sys, time
ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)  # PR_SET_DUMPABLE: 0, as a setuid program is
heard = sys.argv[1]
def note(signum, frame):
    with open(heard, "a") as f:
        f.write(signal.Signals(signum).name + "\\n")
signal.signal(signal.SIGHUP, note)
signal.signal(signal.SIGTERM, note)
open(heard + ".ready", "w").close()
while True:
    time.sleep(60)
"""


def blind_cli(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """``aiodaemon ARGS`` as root without CAP_SYS_PTRACE, as Docker runs it."""
    setpriv = shutil.which("setpriv")
    assert setpriv is not None, "util-linux's setpriv is required"
    return subprocess.run(
        [setpriv, "--bounding-set", "-sys_ptrace", PYTHON, "-m", "aiodaemon", *map(str, args)],
        capture_output=True,
        text=True,
        cwd=REPO,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )


@pytest.fixture
def dropped_daemon(arena: Path, service_account: User) -> Iterator[tuple[Path, int]]:
    """A daemon started by root with ``--user`` the service account: its pidfile and pid."""
    pidfile = arena / "app.pid"
    started = blind_cli("start", TARGET, "--pidfile", pidfile, "--user", service_account.name)
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    yield pidfile, pid
    kill_quietly(pid)


@pytest.fixture
def victim(tmp_path: Path) -> Iterator[tuple[int, Path]]:
    """A root process that hides its descriptors: its pid and the file of signals it got."""
    heard = tmp_path / "heard"
    process = subprocess.Popen([sys.executable, "-c", VICTIM, str(heard)])
    try:
        wait_for(lambda: Path(f"{heard}.ready").exists(), 30, "the victim to start")
        yield process.pid, heard
    finally:
        process.kill()
        process.wait()


def test_the_dropped_daemon_is_managed_without_seeing_its_descriptors(
    dropped_daemon: tuple[Path, int],
) -> None:
    """Its own process runs as the pidfile's owner: believed, reloaded and stopped."""
    pidfile, pid = dropped_daemon
    status = blind_cli("status", "--pidfile", pidfile)
    assert status.returncode == 0, status.stdout
    assert status.stdout.startswith(f"running (pid {pid}, ")
    reload = blind_cli("reload", "--pidfile", pidfile)
    assert reload.returncode == 0, reload.stderr
    stop = blind_cli("stop", "--pidfile", pidfile)
    assert stop.returncode == 0, stop.stderr
    wait_gone(pid)
    assert not pidfile.exists()


def test_a_root_process_the_service_account_names_is_never_signalled(
    dropped_daemon: tuple[Path, int], victim: tuple[int, Path], service_account: User
) -> None:
    """status says unknown (4); reload and stop signal nothing (1); the daemon runs on."""
    pidfile, pid = dropped_daemon
    victim_pid, heard = victim

    def rewrite() -> None:
        with open(pidfile, "r+") as f:
            f.truncate(0)
            f.write(f"{victim_pid}\n")

    as_user(service_account, rewrite)
    refusal = (
        f"pidfile {pidfile}: pid {victim_pid} runs as uid 0, not as the pidfile's owner"
        f" (uid {service_account.uid}), and whether it holds the file cannot be seen; not trusted"
    )
    status = blind_cli("status", "--pidfile", pidfile)
    assert (status.returncode, status.stdout) == (4, f"unknown ({refusal})\n")
    for command in ("reload", "stop"):
        result = blind_cli(command, "--pidfile", pidfile, "--timeout", "3")
        assert result.returncode == 1, result.stderr
        assert result.stderr.endswith(f"nothing signalled: {refusal}\n")
    assert is_alive(victim_pid)
    assert not heard.exists(), heard.read_text()
    assert is_alive(pid)


#: A root process hiding its descriptors that serves a control socket and answers
#: ``status`` as a daemon would: what the service account's listener, its pid
#: come round to such a process, looks like from outside (SO_PEERCRED says
#: whoever called listen(), as it was then).
IMPOSTOR = """\
import ctypes, json, os, socket, sys
ctypes.CDLL(None).prctl(4, 0, 0, 0, 0)
path, owner, heard = sys.argv[1], int(sys.argv[2]), sys.argv[3]
server = socket.socket(socket.AF_UNIX)
server.bind(path)
os.chown(path, owner, owner)
server.listen(16)
open(heard + ".ready", "w").close()
while True:
    conn, _ = server.accept()
    lines = conn.recv(65536).splitlines()
    if not lines:  # a probe of whether anyone listens
        conn.close()
        continue
    request = json.loads(lines[0])
    with open(heard, "a") as f:
        f.write(request["cmd"] + "\\n")
    if request["cmd"] == "status":
        answer = {"v": 1, "ok": True, "state": "running", "pid": os.getpid(), "uptime": 1.0,
                  "sockets": {}, "last_reload": None, "version": "0.2.0", "ready": True}
        conn.sendall(json.dumps(answer).encode() + b"\\n")
    conn.close()
"""


def test_a_root_process_serving_the_accounts_socket_is_never_signalled(
    arena: Path, service_account: User
) -> None:
    """Pidfile removed, socket the account's, its server a root process: nothing signalled."""
    pidfile, control, heard = arena / "app.pid", arena / "app.pid.ctl", arena / "heard"
    impostor = subprocess.Popen(
        [sys.executable, "-c", IMPOSTOR, str(control), str(service_account.uid), str(heard)]
    )
    try:
        wait_for(lambda: Path(f"{heard}.ready").exists(), 30, "the impostor to listen")
        refusal = (
            f"control socket {control} (uid {service_account.uid}'s) is served by pid"
            f" {impostor.pid}, which runs as uid 0 and whose descriptors cannot be seen;"
            " not trusted"
        )
        status = blind_cli("status", "--pidfile", pidfile)
        assert status.returncode == 3, status.stdout
        assert refusal in status.stderr
        stop = blind_cli("stop", "--pidfile", pidfile, "--timeout", "2")
        assert stop.stderr.endswith(f"aiodaemon: not running (no pidfile {pidfile})\n")
        assert "SIGTERM" not in stop.stderr
        assert impostor.poll() is None, "the root process was signalled"
        # Judged before anything is sent: not even asked its status.
        assert not heard.exists(), heard.read_text()
    finally:
        impostor.kill()
        impostor.wait()
