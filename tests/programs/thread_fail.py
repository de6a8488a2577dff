"""Starts threads whose target raises, and returns.

argv: options (JSON), record, case: ``plain`` (one thread raises ValueError,
one calls ``sys.exit(3)``) or ``own-hook`` (the program sets its own
``threading.excepthook`` first, which records the exception).
"""

from __future__ import annotations

import sys
import threading

from tests.programs.recorder import record, run

CASE = sys.argv[3]


def fail() -> None:
    raise ValueError("the thread's error")


def leave() -> None:
    sys.exit(3)


def own_hook(args: threading.ExceptHookArgs) -> None:
    record(f"own hook {args.exc_type.__name__}")


async def main() -> None:
    if CASE == "own-hook":
        threading.excepthook = own_hook
    for target, name in ((fail, "failing"), (leave, "leaving")):
        thread = threading.Thread(target=target, name=name)
        thread.start()
        thread.join()
    record("threads ended")


run(main)
