"""A daemon whose service account was taken over frees its pid while its launcher still waits.

``recycled_pid.py init USER DIR`` runs as the first process of a new pid
namespace (``unshare --pid --fork --mount-proc``, where nothing else takes
pids): it starts the daemon below detached with ``user=USER``, pidfile in
DIR (which USER may write), waits until the daemon is gone and reaped (by
the session leader, its parent, which then tells the launcher how it ended),
then has its own ``sleep`` (root's) take the daemon's very pid, through
``ns_last_pid``, while the launcher handles the failed start. It prints one JSON line: the two
pids, the launcher's status and stderr, and whether the ``sleep`` outlived
the launcher.

``recycled_pid.py daemon OPTIONS DIR`` is that daemon: once dropped, its
startup hook hands a copy of the readiness pipe's write end to a forked
helper and exits at once, so that the launcher still waits for a verdict
with the daemon's pid free. The helper writes the daemon's pid to
``DIR/daemon`` and exits once ``DIR/go`` appears, closing the pipe.
"""

from __future__ import annotations

import fcntl
import json
import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import aiodaemon
from tests.programs.recorder import until


def _pipe_writers() -> list[int]:
    """Copies of every pipe this process may write to (the readiness pipe among them)."""
    copies = []
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            if not stat.S_ISFIFO(os.fstat(fd).st_mode):
                continue
            if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE == os.O_WRONLY:
                copies.append(os.dup(fd))
        except OSError:
            pass  # the listing's own descriptor, gone
    return copies


@aiodaemon.on_startup
async def free_the_pid() -> None:
    """Leave a helper holding the readiness pipe, and exit before any verdict."""
    here = Path(sys.argv[3])
    if os.geteuid() == 0:
        raise SystemExit("start me with user=: the helper is the service account's")
    held = _pipe_writers()
    daemon = os.getpid()
    if os.fork() == 0:
        # Out of the daemon's process group, which it leads: a number still in
        # use as a group's id is not given out again (the service account can
        # do the same).
        os.setsid()
        (here / "daemon").write_text(f"{daemon}\n")
        while not (here / "go").exists():
            time.sleep(0.01)
        os._exit(0)  # closes ``held``: the launcher reads the end of the pipe
    for fd in held:
        os.close(fd)
    os._exit(0)


async def main() -> None:
    """Never reached: the startup hook ends the daemon."""


def _reaped(pid: int) -> bool:
    """Whether ``pid`` is gone and reaped: by its parent, the session leader that waits on it."""
    return not os.path.exists(f"/proc/{pid}")


def init(user: str, here: Path) -> None:
    """Run the scenario as pid 1 of a pid namespace and print what happened."""
    options = {"detach": True, "pidfile": str(here / "app.pid"), "user": user, "start_timeout": 60}
    argv = [sys.executable, __file__, "daemon", json.dumps(options), str(here)]
    launcher = subprocess.Popen(argv, stderr=subprocess.PIPE, text=True)
    marked = here / "daemon"
    until(lambda: marked.exists() and marked.read_text().endswith("\n"), "the daemon's pid")
    daemon = int(marked.read_text())
    until(lambda: _reaped(daemon), "the daemon's exit")
    Path("/proc/sys/kernel/ns_last_pid").write_text(f"{daemon - 1}")
    victim = subprocess.Popen(["sleep", "60"], stdin=subprocess.DEVNULL)
    (here / "go").write_text("")
    try:
        _, stderr = launcher.communicate(timeout=60)
        alive = victim.poll() is None
    finally:
        victim.kill()
        victim.wait()
    report = {
        "daemon": daemon,
        "victim": victim.pid,
        "launcher": launcher.returncode,
        "stderr": stderr,
        "victim_alive": alive,
    }
    print(json.dumps(report), flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "init":
        init(sys.argv[2], Path(sys.argv[3]))
    else:
        aiodaemon.run(main, **json.loads(sys.argv[2]))
