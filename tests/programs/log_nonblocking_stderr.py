"""A daemon whose stderr a child made non-blocking, then a burst larger than a pipe holds.

argv[1]: a file written once the burst is logged. The child shares fd 2's open
file description, so its O_NONBLOCK is the daemon's too: node.js (libuv) sets
it on the stdio pipes it inherits.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import structlog

import aiodaemon

log = structlog.get_logger()


async def main() -> None:
    subprocess.run([sys.executable, "-c", "import os; os.set_blocking(2, False)"], check=True)
    for n in range(3000):
        log.info("tick", n=n, padding="x" * 200)
    Path(sys.argv[1]).write_text("logged\n")


aiodaemon.run(main, detach=False)
