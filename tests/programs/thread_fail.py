"""Starts threads whose target raises, drops an object whose ``__del__`` raises, returns.

argv: options (JSON), record, case: ``plain`` (one thread raises ValueError,
one calls ``sys.exit(3)``) or ``own-hook`` (the program sets its own
``threading.excepthook`` and ``sys.unraisablehook`` first, which record what
they get).
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


def own_unraisable_hook(unraisable: sys.UnraisableHookArgs) -> None:
    record(f"own unraisable hook {unraisable.exc_type.__name__}")


class Leaky:
    """An object whose finaliser raises: Python can only report it."""

    def __del__(self) -> None:
        raise RuntimeError("the finaliser's error")


async def main() -> None:
    if CASE == "own-hook":
        threading.excepthook = own_hook
        sys.unraisablehook = own_unraisable_hook
    for target, name in ((fail, "failing"), (leave, "leaving")):
        thread = threading.Thread(target=target, name=name)
        thread.start()
        thread.join()
    Leaky()  # dropped at once: its __del__ runs here
    record("threads ended")


run(main)
