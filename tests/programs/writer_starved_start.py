"""A foreground daemon out of memory just as its log writer thread starts; argv: options JSON.

A thread of its own, started and joined first, leaves its stack cached for the
next thread the process creates. When aiodaemon starts the writer thread,
``RLIMIT_AS`` is lowered to what the process uses (a profile hook of the main
thread does it at that call): the thread gets the cached stack, but Python
cannot map what the thread needs to begin.
"""

from __future__ import annotations

import json
import resource
import sys
import threading
from types import FrameType

import aiodaemon

options = json.loads(sys.argv[1])


def _address_space() -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmSize:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no VmSize in /proc/self/status")


def _starve_the_writer(frame: FrameType, event: str, arg: object) -> None:
    if event != "call" or frame.f_code is not threading.Thread.start.__code__:
        return
    thread = frame.f_locals["self"]
    if thread.name == "aiodaemon-log-writer":
        sys.setprofile(None)
        resource.setrlimit(resource.RLIMIT_AS, (_address_space(), resource.RLIM_INFINITY))


async def main() -> None:
    pass


helper = threading.Thread(target=lambda: None)
helper.start()
helper.join()
sys.setprofile(_starve_the_writer)
aiodaemon.run(main, detach=False, **options)
