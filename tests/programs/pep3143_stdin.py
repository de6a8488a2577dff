"""A daemon reading on from where its stdin was: ``pep3143_stdin.py MODULE DIR DETACH``.

MODULE is ``daemon`` or ``aiodaemon.pep3143``, DETACH ``yes`` or ``no``. The
program reads its first line (a configuration's name, say) before ``open()``,
passes ``stdin=sys.stdin``, and after ``open()`` reads on to the end. Every
line it got goes to DIR/lines, marked before or after ``open()``; its pid then
goes to DIR/done.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

MODULE, DIR, DETACH = sys.argv[1:4]
daemon: Any = importlib.import_module(MODULE)

first = sys.stdin.readline()
lines = open(os.path.join(DIR, "lines"), "w", buffering=1)  # noqa: SIM115 (kept by the daemon)
lines.write(f"before open: {first!r}\n")
context = daemon.DaemonContext(
    detach_process=DETACH == "yes", working_directory=DIR, stdin=sys.stdin, files_preserve=[lines]
)
with context:
    for line in sys.stdin:
        lines.write(f"after open: {line!r}\n")
    lines.write("end of input\n")
    with open("done.tmp", "w") as done:
        done.write(f"{os.getpid()}\n")
    os.rename("done.tmp", "done")
