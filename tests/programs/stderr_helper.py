"""A daemon whose startup hook starts a helper that writes a line to stderr every 50 ms.

The helper's pid goes to ``$HELPER_DIR/<daemon pid>``; each line is ``tick <helper pid>``.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import aiodaemon

_TICKER = 'while :; do echo "tick $$" >&2; sleep 0.05; done'


@aiodaemon.on_startup
async def start_helper() -> None:
    helper = await asyncio.create_subprocess_exec("sh", "-c", _TICKER)
    Path(os.environ["HELPER_DIR"], str(os.getpid())).write_text(str(helper.pid))


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()
