"""Exec argv[1:] with SIGTERM and SIGCHLD blocked and SIGCHLD ignored, as a careless starter does.

Both survive ``exec``: a shell's ``trap '' CHLD``, or a supervisor that blocks
signals in the thread that spawns.
"""

from __future__ import annotations

import os
import signal
import sys

signal.signal(signal.SIGCHLD, signal.SIG_IGN)
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGCHLD})
os.execv(sys.executable, [sys.executable, *sys.argv[1:]])
