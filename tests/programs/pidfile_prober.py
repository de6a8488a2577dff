"""Read a pidfile the way ``aiodaemon status`` does, in a tight loop.

argv: the pidfile, a stop file, the most seconds to go on. Prints "probing"
once started, and the number of readings at the end.
"""

from __future__ import annotations

import os
import sys
import time

from aiodaemon._prefork._pidfile_status import read_pidfile

path, stop, seconds = sys.argv[1], sys.argv[2], float(sys.argv[3])
deadline = time.monotonic() + seconds
print("probing", flush=True)
readings = 0
while not os.path.exists(stop) and time.monotonic() < deadline:
    for _ in range(256):
        read_pidfile(path)
    readings += 256
print(readings, flush=True)
