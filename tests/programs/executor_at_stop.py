"""A daemon whose ``main`` waits on an executor call that outlives the stop's cancel step.

argv: options JSON, the directory of the steering files. ``main`` awaits a
``run_in_executor`` call that waits for ``<dir>/release``; when the stop
cancels ``main``, ``<dir>/main-ended`` appears, and the executor's shutdown
waits for the call. What ``status`` says meanwhile is the point.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys

import aiodaemon
from tests.programs.recorder import wait_for_file

options = json.loads(sys.argv[1])
directory = sys.argv[2]


async def main(ctx: aiodaemon.Context) -> None:
    loop = asyncio.get_running_loop()
    try:
        await loop.run_in_executor(None, wait_for_file, os.path.join(directory, "release"))
    finally:
        with open(os.path.join(directory, "main-ended"), "w"):
            pass


aiodaemon.run(main, **options)
