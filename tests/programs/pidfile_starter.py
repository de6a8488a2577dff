"""Take and give back a pidfile's lock the way a starting daemon does, in a tight loop.

argv: the pidfile, the most starts, the most seconds. Prints how many starts
it made (all of them unless the seconds ran out first), how many were refused
as "already running" (nothing else holds the file, so every refusal is wrong)
and how many got the lock on a file no longer at the path (invisible to every
command, so a second daemon could start beside this one).
"""

from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

from aiodaemon._prefork._pidfile import acquire_pidfile
from aiodaemon.exceptions import AlreadyRunningError

path, count, seconds = Path(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3])
deadline = time.monotonic() + seconds
refused = invisible = starts = 0
while starts < count and time.monotonic() < deadline:
    starts += 1
    try:
        pidfile = acquire_pidfile(path)
    except AlreadyRunningError:
        refused += 1
        continue
    ours = os.fstat(pidfile.fd)
    try:
        there = os.stat(path)
    except FileNotFoundError:
        invisible += 1
    else:
        invisible += (there.st_dev, there.st_ino) != (ours.st_dev, ours.st_ino)
    pidfile.remove()
print(json.dumps({"starts": starts, "refused": refused, "invisible": invisible}), flush=True)
