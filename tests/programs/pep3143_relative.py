"""A daemon whose pidfile path is relative, run with an original library or aiodaemon.pep3143.

Usage: ``pep3143_relative.py LIBRARY AIODAEMON DIR JAIL [bytes|fd]``. LIBRARY is
``python-daemon`` (``daemon.pidfile.TimeoutPIDLockFile("app.pid", 2)``) or
``pep3143daemon`` (``PidFile("app.pid")``); with AIODAEMON ``yes`` only the
import changes. The working directory is DIR/wd, or with JAIL ``yes`` the
chroot DIR/root and /data inside it (given as pep3143daemon and python-daemon
each take it). The daemon writes its pid into DIR/ready.tmp and waits for
SIGTERM, which ends it through the library's ``terminate``. With ``bytes`` the
directories (and pep3143daemon's pidfile path; lockfile refuses bytes) are
given as bytes, which both original libraries pass to the system as they are.
With ``fd`` (no jail) the working directory is an open descriptor of DIR/wd,
which both pass to ``os.chdir`` as it is.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from tests.programs.signal_wait import wait_for_signals

LIBRARY, AIODAEMON, DIR, JAIL = sys.argv[1:5]
AS_BYTES = sys.argv[5:] == ["bytes"]
AS_FD = sys.argv[5:] == ["fd"]


def path(text: str) -> str | bytes:
    """``text``, or its bytes when the test asked for bytes."""
    return os.fsencode(text) if AS_BYTES else text


def main() -> None:
    """Open the context the library's way, with nothing but its import changed."""
    ready = open(os.path.join(DIR, "ready.tmp"), "w")  # noqa: SIM115 (written by the daemon)
    options: dict[str, Any] = {"files_preserve": [ready], "working_directory": path(f"{DIR}/wd")}
    if AS_FD:
        options["working_directory"] = os.open(f"{DIR}/wd", os.O_RDONLY | os.O_DIRECTORY)
    if JAIL == "yes":
        options["chroot_directory"] = path(f"{DIR}/root")
        # pep3143daemon's idiom is a host path under the jail, python-daemon's a path inside.
        inside = f"{DIR}/root/data" if LIBRARY == "pep3143daemon" else "/data"
        options["working_directory"] = path(inside)
    if LIBRARY == "python-daemon":
        if AIODAEMON == "yes":
            daemon: Any = importlib.import_module("aiodaemon.pep3143")
        else:
            daemon = importlib.import_module("daemon")
            importlib.import_module("daemon.pidfile")
        pidfile = daemon.pidfile.TimeoutPIDLockFile("app.pid", 2)
        context = daemon.DaemonContext(pidfile=pidfile, **options)
    else:
        library: Any = importlib.import_module(
            "aiodaemon.pep3143" if AIODAEMON == "yes" else "pep3143daemon"
        )
        context = library.DaemonContext(pidfile=library.PidFile(path("app.pid")), **options)
    with context:
        ready.write(f"{os.getpid()}\n")
        ready.close()
        wait_for_signals()


if __name__ == "__main__":
    main()
