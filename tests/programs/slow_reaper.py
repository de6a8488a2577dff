"""Run the command in argv[1:] as a child subreaper that reaps no orphan while it runs.

A daemon orphaned by its detach is then this process's child, and stays a
zombie until the command has ended, as under an init that reaps slowly
(a container's or a VM's, a second or more). Exits with the command's status.
"""

from __future__ import annotations

import ctypes
import subprocess
import sys

PR_SET_CHILD_SUBREAPER = 36

libc = ctypes.CDLL(None, use_errno=True)
if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
    sys.exit(f"prctl(PR_SET_CHILD_SUBREAPER) failed: errno {ctypes.get_errno()}")
# Popen waits for its own child alone; the orphans are reaped by init once we exit.
sys.exit(subprocess.call(sys.argv[1:]))
