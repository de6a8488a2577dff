"""Small aiodaemon.pep3143 programs for tests/test_pep3143.py: ``pep3143_cases.py CASE DIR``.

Each case opens a DaemonContext one way and leaves its traces in DIR (files
the test reads) or on stdout/stderr and in its exit status.
"""

from __future__ import annotations

import io
import json
import os
import signal
import sys
from pathlib import Path

from aiodaemon import pep3143
from tests.programs.signal_wait import wait_for_signals

TYPE_CHECKING = False  # not typing's: case "modules" reports whether typing was loaded
if TYPE_CHECKING:
    from typing import Any

CASE, DIR = sys.argv[1], Path(sys.argv[2])


def ready() -> None:
    """Say the daemon is up: its pid in DIR/ready, written last."""
    (DIR / "ready.tmp").write_text(f"{os.getpid()}\n")
    os.rename(DIR / "ready.tmp", DIR / "ready")


def modules() -> None:
    """Open a context and report which heavy modules the program has loaded."""
    context = pep3143.DaemonContext(
        detach_process=False,
        working_directory=DIR,
        pidfile=pep3143.PidFile(DIR / "app.pid"),
        stdout=open(DIR / "out.log", "w"),  # noqa: SIM115 (the daemon's stdout)
    )
    with context:
        heavy = ("asyncio", "structlog", "uvloop", "orjson", "socket", "typing", "dataclasses")
        print(json.dumps(sorted(name for name in heavy if name in sys.modules)), flush=True)


def detached() -> None:
    """A detached daemon with a PidFile, waiting for signals."""
    with pep3143.DaemonContext(working_directory=DIR, pidfile=pep3143.PidFile(DIR / "app.pid")):
        ready()
        wait_for_signals()


def failing_pidfile() -> None:
    """A foreign pidfile object whose __enter__ fails after the fork."""

    class Broken:
        def __enter__(self) -> Broken:
            raise RuntimeError("the lock server is down")

        def __exit__(self, *exc: object) -> None:
            pass

    with pep3143.DaemonContext(working_directory=DIR, pidfile=Broken()):
        ready()


def bad_signal_map() -> None:
    """A signal_map naming a method the context does not have."""
    context = pep3143.DaemonContext(signal_map={signal.SIGUSR1: "reload"})
    try:
        context.open()
    except pep3143.DaemonError as exc:
        print(f"refused: {exc}")


def bad_stream() -> None:
    """A stdout without a file descriptor."""
    try:
        pep3143.DaemonContext(stdout=io.StringIO()).open()
    except pep3143.DaemonError as exc:
        print(f"refused: {exc}")


def path_pidfile() -> None:
    """A path where a lock object is needed, as run()'s pidfile= takes it; nothing left behind."""
    # A Path is a (do-nothing) context manager until Python 3.13: Any, as a type
    # checker lets it through as python-daemon's lockfile protocol.
    path: Any
    for path in (DIR / "app.pid", str(DIR / "app.pid")):
        context = pep3143.DaemonContext(
            pidfile=path, detach_process=False, stdout=sys.stdout, stderr=sys.stderr
        )
        try:
            context.open()
        except pep3143.DaemonError as exc:
            print(f"refused: {exc}".replace(str(DIR), "DIR"))
        else:
            print(f"open, with {sorted(os.listdir(DIR))}")


def acquire_release() -> None:
    """pep3143daemon's protocol: acquire() in the daemon after the fork, release() at close()."""

    class Lock:
        def acquire(self) -> None:
            (DIR / "lock").write_text(f"acquired by {os.getpid()}\n")

        def release(self) -> None:
            with open(DIR / "lock", "a") as lock:
                lock.write(f"released by {os.getpid()}\n")

    with pep3143.DaemonContext(working_directory=DIR, pidfile=Lock()):
        ready()


def open_close() -> None:
    """A PidFile in the foreground: written at open(), removed and unlocked at close()."""
    pidfile = pep3143.PidFile(DIR / "app.pid")
    context = pep3143.DaemonContext(
        detach_process=False, working_directory=DIR, pidfile=pidfile, stdout=sys.stdout
    )
    context.open()
    print("open", (DIR / "app.pid").read_text().strip() == str(os.getpid()), pidfile.is_locked())
    context.close()
    other = pep3143.PidFile(DIR / "app.pid")
    print("closed", (DIR / "app.pid").exists(), other.is_locked())
    other.acquire()
    print("reacquired", other.read_pid() == os.getpid())
    other.release()


def chroot_host_workdir() -> None:
    """pep3143daemon's form: a working_directory given as a host path under the chroot."""
    report = open(DIR / "report", "w")  # noqa: SIM115 (written inside the jail)
    jail = DIR / "root"
    context = pep3143.DaemonContext(
        detach_process=False,
        chroot_directory=jail,
        working_directory=jail / "data",
        files_preserve=[report],
    )
    with context:
        report.write(f"{os.getcwd()} {sorted(os.listdir('/'))}\n")
        report.close()


CASES = {
    "modules": modules,
    "detached": detached,
    "failing_pidfile": failing_pidfile,
    "bad_signal_map": bad_signal_map,
    "bad_stream": bad_stream,
    "path_pidfile": path_pidfile,
    "acquire_release": acquire_release,
    "open_close": open_close,
    "chroot_host_workdir": chroot_host_workdir,
}

if __name__ == "__main__":
    CASES[CASE]()
