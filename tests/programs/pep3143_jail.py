"""A chrooted daemon dropping to another user, run with python-daemon or aiodaemon.pep3143.

Usage: ``pep3143_jail.py MODULE DIR UID GID INITGROUPS [JAIL]``; the jail is
``DIR/root`` (which must hold ``dev/null``), or none when JAIL is ``none``.
Needs root.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

from tests.programs.signal_wait import wait_for_signals

MODULE, DIR, UID, GID, INITGROUPS = sys.argv[1:6]
JAIL = sys.argv[6] if len(sys.argv) > 6 else "root"
daemon: Any = importlib.import_module(MODULE)


def main() -> None:
    """Enter the jail as the given user and report what the daemon sees."""
    log = open(os.path.join(DIR, "out.log"), "w+")  # noqa: SIM115 (kept for the daemon's life)
    ready = open(os.path.join(DIR, "ready.tmp"), "w")  # noqa: SIM115
    context = daemon.DaemonContext(
        chroot_directory=None if JAIL == "none" else os.path.join(DIR, JAIL),
        working_directory="/",
        uid=int(UID),
        gid=int(GID),
        initgroups=INITGROUPS == "yes",
        files_preserve=[ready],
        stdout=log,
        stderr=log,
    )
    with context:
        print("cwd", os.getcwd(), "ids", os.getresuid(), os.getresgid(), sorted(os.getgroups()))
        print("root files", sorted(os.listdir("/")))
        ready.write(f"{os.getpid()}\n")
        ready.close()
        wait_for_signals()


if __name__ == "__main__":
    main()
