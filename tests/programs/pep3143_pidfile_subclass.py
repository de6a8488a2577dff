"""A daemon whose pidfile is a subclass: ``pep3143_pidfile_subclass.py MODULE DIR MODE``.

MODULE is ``daemon`` or ``aiodaemon.pep3143``; the daemon detaches, its pidfile a
``TimeoutPIDLockFile`` subclass. The subclass notes each of its
``__enter__``, ``acquire``, ``__exit__`` and ``release`` in DIR/events, and
where it ran (the caller or the daemon), as stale-lock recipes override them.
MODE ``entered``: the daemon notes whether the pidfile (DIR/app.pid) holds its
pid, then closes the context. MODE ``failing``: ``__enter__`` raises, and the
program notes what ``open()`` raised. Last, the daemon writes its pid to DIR/done.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

MODULE, DIR, MODE = sys.argv[1:4]
daemon: Any = importlib.import_module(MODULE)
if MODULE == "daemon":
    importlib.import_module("daemon.pidfile")

CALLER = os.getpid()
events = open(os.path.join(DIR, "events"), "a", buffering=1)  # noqa: SIM115 (kept by the daemon)


def note(what: str) -> None:
    """One line in DIR/events: ``what``, and in which process."""
    events.write(f"{what} in the {'caller' if os.getpid() == CALLER else 'daemon'}\n")


class NotedPidfile(daemon.pidfile.TimeoutPIDLockFile):  # type: ignore[misc]
    """Notes every call python-daemon makes on its pidfile, then does what it did."""

    def __enter__(self) -> Any:
        note("__enter__")
        if MODE == "failing":
            raise RuntimeError("refused by __enter__")
        return super().__enter__()

    def acquire(self, *args: Any, **kwargs: Any) -> None:
        note("acquire")
        super().acquire(*args, **kwargs)

    def __exit__(self, *exc: object) -> None:
        note("__exit__")
        super().__exit__(*exc)

    def release(self) -> None:
        note("release")
        super().release()


pidfile = NotedPidfile(os.path.join(DIR, "app.pid"), 2)
try:
    with daemon.DaemonContext(working_directory=DIR, pidfile=pidfile, files_preserve=[events]):
        note(f"running, the pidfile holding its pid: {pidfile.read_pid() == os.getpid()},")
except RuntimeError as exc:
    note(f"open() raised {exc!r}")
with open(os.path.join(DIR, "done.tmp"), "w") as done:
    done.write(f"{os.getpid()}\n")
os.rename(os.path.join(DIR, "done.tmp"), os.path.join(DIR, "done"))
