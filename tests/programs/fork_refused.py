"""Run as nobody (through priv_as_nobody) with RLIMIT_NPROC 1, so that no fork can succeed.

argv: options JSON.
"""

from __future__ import annotations

import json
import resource
import sys

import aiodaemon

options = json.loads(sys.argv[1])


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


# This process already counts for nobody: any fork is one too many.
resource.setrlimit(resource.RLIMIT_NPROC, (1, 1))
aiodaemon.run(main, **options)
