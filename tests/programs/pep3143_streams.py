"""A detached daemon printing what a file-watching daemon prints: ``pep3143_streams.py MODULE DIR``.

MODULE is ``daemon`` or ``aiodaemon.pep3143``. The daemon's stdout and stderr
go to DIR/out.log; it prints their encodings, a non-ASCII text and a file name
that is not UTF-8 (as ``os.listdir`` returns it), then writes DIR/done.
"""

from __future__ import annotations

import importlib
import os
import sys
from typing import Any

MODULE, DIR = sys.argv[1:3]
daemon: Any = importlib.import_module(MODULE)

log = open(os.path.join(DIR, "out.log"), "a")  # noqa: SIM115 (the daemon's stdout)
with daemon.DaemonContext(working_directory=DIR, stdout=log, stderr=log):
    print("stdout", sys.stdout.encoding, sys.stdout.errors)
    print("stderr", sys.stderr.encoding, sys.stderr.errors, file=sys.stderr)
    print("text: naïve")
    print("found", os.fsdecode(b"caf\xe9.txt"))
    print("warned about", os.fsdecode(b"caf\xe9.txt"), file=sys.stderr)
    sys.stdout.flush()
    sys.stderr.flush()
    with open("done.tmp", "w") as done:
        done.write(f"{os.getpid()}\n")
    os.rename("done.tmp", "done")
