"""A daemon that does nothing until it is stopped, and logs ``alarm handled`` at each SIGALRM.

Options as JSON in argv[1].
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys

import structlog

import aiodaemon


@aiodaemon.on_signal(signal.SIGALRM)
async def alarm() -> None:
    structlog.get_logger().info("alarm handled")


async def main() -> None:
    await asyncio.Event().wait()


aiodaemon.run(main, **json.loads(sys.argv[1]))
