"""Run one ``aiodaemon`` command in-process, then list which heavy modules it loaded.

argv: the JSON report to write, then the command line (``status --pidfile P``).
"""

from __future__ import annotations

import json
import sys

from aiodaemon._cli._main import main

main(sys.argv[2:])
heavy = ("asyncio", "structlog", "uvloop", "orjson", "aiodaemon._run._runtime", "aiodaemon._daemon")
with open(sys.argv[1], "w") as f:
    json.dump([name for name in heavy if name in sys.modules], f)
