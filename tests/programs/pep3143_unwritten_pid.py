"""Acquire a ``PidFile`` whose pid cannot be written (``RLIMIT_FSIZE`` 0), then go on.

argv: the pidfile's path. Prints what ``acquire()`` raised and whether the
object still says it holds the lock, then runs until its stdin closes: a
program that carries on without its pidfile.
"""

from __future__ import annotations

import resource
import sys

from aiodaemon.exceptions import StartupError
from aiodaemon.pep3143 import PidFile

pidfile = PidFile(sys.argv[1])
error = "acquired"
# A full disk, as far as writing the pid goes.
resource.setrlimit(resource.RLIMIT_FSIZE, (0, resource.RLIM_INFINITY))
try:
    pidfile.acquire()
except StartupError as exc:
    error = str(exc)
finally:
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
print(error, pidfile.i_am_locking(), flush=True)
sys.stdin.read()
