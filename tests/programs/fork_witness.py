"""Records, at every fork, the threads and any event loop the process has; argv: options, record."""

from __future__ import annotations

import json
import os
import sys
import threading

import aiodaemon

RECORD = sys.argv[2]


def witness() -> None:
    asyncio = sys.modules.get("asyncio")
    loop = None
    if asyncio is not None:
        # The policy's loop, if anything created or set one (no new one is made).
        policy = asyncio.events._event_loop_policy
        local = getattr(policy, "_local", None)
        loop = getattr(local, "_loop", None)
    with open(RECORD, "a") as f:
        f.write(f"fork threads={threading.active_count()} loop={loop is not None}\n")


os.register_at_fork(before=witness)


async def main() -> None:
    with open(RECORD, "a") as f:
        f.write(f"main threads>1={threading.active_count() > 1}\n")


aiodaemon.run(main, **json.loads(sys.argv[1]))
