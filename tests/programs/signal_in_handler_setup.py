"""A foreground daemon on asyncio's loop whose signal arrives while the loop installs its handlers.

argv: options JSON, a signal name, and ``again`` to race the signal with the
process's second ``run()`` (the first one's ``main`` returns at once). A thread
of the program's own runs before ``run()``, so the held signal reaches that
thread, not the blocked main thread. The signal is sent the instant the run
phase calls the loop's first ``add_signal_handler()`` (a profile function sees
the call), the moment before asyncio's wakeup fd exists; the profile function
then waits until the program's thread has run CPython's C handler for it. That
handler writes the signal's number to the wakeup fd: for that instant one of
the function's own, none again after, so the loop's never gets it. Waiting
until the signal had left the pending set was not enough: the kernel takes it
off as it hands it to the thread, before the thread runs the handler, and a
thread preempted in between (a busy machine) ran it milliseconds later, after
the daemon had reported ready, which then stopped with status 0.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import select
import signal
import sys
import threading
from types import FrameType
from typing import Any

import aiodaemon

options = json.loads(sys.argv[1])
SIGNAL = signal.Signals[sys.argv[2]]

threading.Thread(target=threading.Event().wait, name="program-thread", daemon=True).start()


def _send_at_the_first_handler(frame: FrameType, event: str, arg: Any) -> None:
    if event != "call" or frame.f_code.co_name != "add_signal_handler":
        return
    sys.setprofile(None)
    reader, writer = os.pipe()
    os.set_blocking(writer, False)
    previous = signal.set_wakeup_fd(writer)
    try:
        os.kill(os.getpid(), SIGNAL)
        select.select([reader], [], [], 10)
    finally:
        # None again, before the loop sets its own.
        signal.set_wakeup_fd(previous)
        os.close(reader)
        os.close(writer)


async def main() -> None:
    await asyncio.Event().wait()


async def first() -> None:
    pass


if sys.argv[3:] == ["again"]:
    with contextlib.suppress(SystemExit):
        aiodaemon.run(first, **options)
sys.setprofile(_send_at_the_first_handler)
aiodaemon.run(main, **options)
