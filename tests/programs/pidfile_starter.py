"""Take and give back a pidfile's lock the way a starting daemon does, in a tight loop.

argv: the pidfile, the number of starts. Prints how many starts were refused
as "already running" (nothing else holds the file, so every refusal is wrong).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from aiodaemon._pidfile import acquire_pidfile
from aiodaemon.exceptions import AlreadyRunningError

path, count = Path(sys.argv[1]), int(sys.argv[2])
refused = 0
for _ in range(count):
    try:
        pidfile = acquire_pidfile(path)
    except AlreadyRunningError:
        refused += 1
        continue
    pidfile.remove()
print(json.dumps({"starts": count, "refused": refused}), flush=True)
