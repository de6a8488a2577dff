"""A PEP 3143 context opened by PID 1 or under unshare --pid; argv: ``true``/``none``, a directory.

``true`` or ``none``: its ``detach_process`` (True, None).

The context's body records ``ran <detached>`` in DIR/ran; a refused open()
prints its error's class and message on stderr and exits 1.
"""

from __future__ import annotations

import os
import sys

from aiodaemon import pep3143

MODE, DIR = sys.argv[1:3]

context = pep3143.DaemonContext(
    detach_process=True if MODE == "true" else None,
    working_directory=DIR,
    pidfile=pep3143.PidFile(os.path.join(DIR, "d.pid")),
    stderr=sys.stderr,
)
try:
    context.open()
except pep3143.DaemonProcessDetachError as exc:
    print(f"{type(exc).__name__}: {exc}", file=sys.stderr)
    sys.exit(1)
with open(os.path.join(DIR, "ran"), "w") as ran:
    ran.write(f"ran {context.detach_process} as pid {os.getpid()}\n")
context.close()
