"""Take and give back a pidfile's lock the way a starting daemon does, in a tight loop.

argv: the pidfile, the number of starts. Prints how many starts were refused
as "already running" (nothing else holds the file, so every refusal is wrong)
and how many got the lock on a file no longer at the path (invisible to every
command, so a second daemon could start beside this one).
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

from aiodaemon._pidfile import acquire_pidfile
from aiodaemon.exceptions import AlreadyRunningError

path, count = Path(sys.argv[1]), int(sys.argv[2])
refused = invisible = 0
for _ in range(count):
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
print(json.dumps({"starts": count, "refused": refused, "invisible": invisible}), flush=True)
