"""Remove a stale pidfile the way ``aiodaemon stop`` does, in a tight loop.

argv: the pidfile, a stop file, the most seconds to go on. Prints "cleaning"
once started, and the number of attempts at the end.
"""

from __future__ import annotations

import os
import sys
import time

from aiodaemon._cli._stale import remove_stale

path, stop, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
deadline = time.monotonic() + seconds
print("cleaning", flush=True)
attempts = 0
while not os.path.exists(stop) and time.monotonic() < deadline:
    for _ in range(256):
        remove_stale(path, None)
    attempts += 256
print(attempts, flush=True)
