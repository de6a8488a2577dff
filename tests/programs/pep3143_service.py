"""python-daemon's documented service pattern, run with python-daemon or aiodaemon.pep3143.

Usage: ``pep3143_service.py MODULE DIR PIDFILE SIGNALS DETACH UMASK`` where
MODULE is ``daemon`` or ``aiodaemon.pep3143`` (the only difference between the
two runs of a comparison), PIDFILE is ``none``, ``lockfile`` (lockfile's
PIDLockFile) or ``timeout`` (``daemon.pidfile.TimeoutPIDLockFile``), SIGNALS is
``default`` or ``custom`` (the signal_map of python-daemon's documentation),
DETACH is ``yes``, ``no`` or ``auto``, UMASK is ``default`` or octal.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from types import FrameType
from typing import Any

from tests.programs.signal_wait import wait_for_signals

MODULE, DIR, PIDFILE, SIGNALS, DETACH, UMASK = sys.argv[1:7]
daemon: Any = importlib.import_module(MODULE)
if MODULE == "daemon":
    # python-daemon's pidfile is a submodule (``import daemon.pidfile``).
    importlib.import_module("daemon.pidfile")


def program_cleanup(signum: int, frame: FrameType | None) -> None:
    """SIGTERM in the custom map: say so and exit 0."""
    print("cleanup", signum)
    sys.exit(0)


def reload_program_config(signum: int, frame: FrameType | None) -> None:
    """SIGUSR1 in the custom map: say so and go on."""
    print("reloaded", signum, flush=True)


def main() -> None:
    """Open the context as the documentation shows, then wait for signals."""
    log = open(os.path.join(DIR, "out.log"), "w+")  # noqa: SIM115 (kept for the daemon's life)
    keep = open(os.path.join(DIR, "keep.txt"), "w")  # noqa: SIM115
    leak = open(os.path.join(DIR, "leak.txt"), "w")  # noqa: SIM115, F841 (must be closed)
    options: dict[str, Any] = {
        "working_directory": DIR,
        "files_preserve": [keep],
        "stdout": log,
        "stderr": log,
    }
    pidfile_path = os.path.join(DIR, "service.pid")
    if PIDFILE == "lockfile":
        import lockfile.pidlockfile

        options["pidfile"] = lockfile.pidlockfile.PIDLockFile(pidfile_path)
    elif PIDFILE == "timeout":
        options["pidfile"] = daemon.pidfile.TimeoutPIDLockFile(pidfile_path, 5)
    if DETACH != "auto":
        options["detach_process"] = DETACH == "yes"
    if UMASK != "default":
        options["umask"] = int(UMASK, 8)
    context = daemon.DaemonContext(**options)
    if SIGNALS == "custom":
        context.signal_map = {
            signal.SIGTERM: program_cleanup,
            signal.SIGHUP: "terminate",
            signal.SIGUSR1: reload_program_config,
        }
    print("before open")
    with context:
        print("started", context.is_open)
        keep.write(f"{os.getpid()}\n")
        keep.flush()
        # The ready marker: written last, renamed so a reader never sees it half-done.
        with open("ready.tmp", "w") as ready:
            ready.write(f"{os.getpid()}\n")
        os.rename("ready.tmp", "ready")
        wait_for_signals()


if __name__ == "__main__":
    main()
