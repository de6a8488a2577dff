"""Another user holds a stopping mark made by a process that had the daemon's pid before it.

``recycled_mark.py USER DIR`` runs as the first process of a new pid
namespace (``unshare --pid --fork --mount-proc``, where nothing else takes
pids). A process of USER listens on the abstract name of the stopping mark of
its own pid, hands the socket to a helper that keeps it, and exits; pids come
round (a local user forks through them, here ``ns_last_pid``), and root's
daemon, started with ``aiodaemon run --no-control``, gets that very pid. Then
root's ``status``, ``reload`` and ``stop`` run as an operator would. It prints
one JSON line: the two pids, and each command's status and stderr (stdout for
``status``).
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from aiodaemon._prefork._pidfile import stopping_mark
from tests.programs.recorder import until


def _squat(user: str) -> tuple[int, int]:
    """USER's mark for a pid of its own, kept by a helper: that pid, and the helper's release fd."""
    import pwd

    entry = pwd.getpwnam(user)
    told_r, told_w = os.pipe()
    release_r, release_w = os.pipe()
    squatter = os.fork()
    if squatter == 0:  # pragma: no cover - the child
        os.setgroups([])
        os.setresgid(entry.pw_gid, entry.pw_gid, entry.pw_gid)
        os.setresuid(entry.pw_uid, entry.pw_uid, entry.pw_uid)
        os.close(release_w)
        os.close(told_r)
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.bind(stopping_mark(os.getpid()))
        sock.listen(64)  # SO_PEERCRED names this process from now on
        # Forked once the name is ours: a failed bind ends us, and our end of
        # the pipe with us (a helper holding it made the wait below hang).
        if os.fork() == 0:
            os.close(told_w)
            os.read(release_r, 1)  # the helper: keeps the socket until released
            os._exit(0)
        os.write(told_w, b"!")
        os._exit(0)
    os.close(release_r)
    os.close(told_w)
    assert os.read(told_r, 1) == b"!", "the squatter failed"
    os.close(told_r)
    os.waitpid(squatter, 0)  # its pid is free from now on
    return squatter, release_w


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "aiodaemon", *args],
        capture_output=True,
        text=True,
        timeout=60,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def _reap_all() -> None:
    """Reap what was orphaned to us: the squatter's helper, once released."""
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return  # nothing left
        time.sleep(0.01)


def main(user: str, here: Path) -> None:
    """Run the scenario as pid 1 of a pid namespace and print what happened."""
    pidfile = here / "app.pid"
    squatter, release = _squat(user)
    Path("/proc/sys/kernel/ns_last_pid").write_text(f"{squatter - 1}")
    target = "tests.programs.security_daemon:main"
    argv = [sys.executable, "-m", "aiodaemon", "run", target, "--pidfile", str(pidfile)]
    daemon = subprocess.Popen(
        [*argv, "--no-control"],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    report: dict[str, Any] = {"squatter": squatter, "daemon": daemon.pid}
    try:
        until(
            lambda: pidfile.exists() and pidfile.read_text().strip() == str(daemon.pid),
            "the daemon's pid in its pidfile",
        )
        for command in ("status", "reload", "stop"):
            extra = ("--timeout", "10") if command == "stop" else ()
            done = _cli(command, "--pidfile", str(pidfile), *extra)
            report[command] = [done.returncode, done.stdout if command == "status" else done.stderr]
        report["exit"] = daemon.wait(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()
        os.close(release)
        _reap_all()
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    main(sys.argv[1], Path(sys.argv[2]))
