"""run_watchdog on a loop that runs, blocks for 0.6 s, and runs again."""

from __future__ import annotations

import asyncio
import time

from aiodaemon._run._systemd import Notifier, run_watchdog


async def main() -> None:
    notifier = Notifier.from_env()
    assert notifier is not None
    assert notifier.watchdog_interval is not None
    pinger = asyncio.create_task(run_watchdog(notifier, notifier.watchdog_interval))
    notifier.status("running")
    await asyncio.sleep(1.0)
    notifier.status("blocked")
    time.sleep(0.6)  # a stuck event loop
    notifier.status("unblocked")
    await asyncio.sleep(0.35)
    pinger.cancel()
    notifier.status("done")
    notifier.close()


asyncio.run(main())
