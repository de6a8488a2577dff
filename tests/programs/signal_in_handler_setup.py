"""A foreground daemon on asyncio's loop whose signal arrives while the loop installs its handlers.

argv: options JSON, a signal name, and ``again`` to race the signal with the
process's second ``run()`` (the first one's ``main`` returns at once). A thread
of the program's own runs before ``run()``, so the held signal reaches that
thread, not the blocked main thread. The signal is sent the instant the run
phase calls the loop's first ``add_signal_handler()`` (a profile function sees
the call), the moment before asyncio's wakeup fd exists; the profile function
then waits until the kernel has handed the signal to the program's thread.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import sys
import threading
import time
from types import FrameType
from typing import Any

import aiodaemon

options = json.loads(sys.argv[1])
SIGNAL = signal.Signals[sys.argv[2]]

threading.Thread(target=threading.Event().wait, name="program-thread", daemon=True).start()


def _pending_for_the_process() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("ShdPnd:"):
                return int(line.split()[1], 16)
    return 0


def _send_at_the_first_handler(frame: FrameType, event: str, arg: Any) -> None:
    if event != "call" or frame.f_code.co_name != "add_signal_handler":
        return
    sys.setprofile(None)
    os.kill(os.getpid(), SIGNAL)
    deadline = time.monotonic() + 10
    while _pending_for_the_process() & (1 << (SIGNAL - 1)) and time.monotonic() < deadline:
        pass


async def main() -> None:
    await asyncio.Event().wait()


async def first() -> None:
    pass


if sys.argv[3:] == ["again"]:
    with contextlib.suppress(SystemExit):
        aiodaemon.run(first, **options)
sys.setprofile(_send_at_the_first_handler)
aiodaemon.run(main, **options)
