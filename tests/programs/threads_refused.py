"""A daemon (dropped to nobody) that leaves itself no thread to start once it is ready.

argv: options JSON, the directory for its report files. Once ready, main sets
RLIMIT_NPROC to 1 (this process already counts), so every later thread, such
as the shutdown's backstop, is refused; a shutdown hook records that it ran.
"""

from __future__ import annotations

import json
import resource
import sys
from pathlib import Path

import aiodaemon

options = json.loads(sys.argv[1])
reports = Path(sys.argv[2])


@aiodaemon.on_shutdown
async def record() -> None:
    (reports / "shutdown-hook").write_text("ran")


async def main(ctx: aiodaemon.Context) -> None:
    resource.setrlimit(resource.RLIMIT_NPROC, (1, 1))
    (reports / "limited").write_text("1")
    await ctx.wait_stopping()


aiodaemon.run(main, **options)
