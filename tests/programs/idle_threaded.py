"""Like ``idle``, but a thread of the program's own runs before ``run()`` (foreground only).

Such a thread keeps the signals unblocked that the run phase holds in the
main thread: the kernel hands a process-directed signal to it instead.
"""

from __future__ import annotations

import asyncio
import json
import sys
import threading

import aiodaemon

threading.Thread(target=threading.Event().wait, name="program-thread", daemon=True).start()


async def main() -> None:
    await asyncio.Event().wait()


aiodaemon.run(main, **json.loads(sys.argv[1]))
