"""A daemon that says, on stderr, every module imported once its main began.

For a daemon in a chroot or dropped to another user, such an import reads the
interpreter's files where they may be gone: everything its run phase needs is
loaded before. main installs the watch, then uses what a program commonly
uses at run time (a thread that fails, a task's error that nobody retrieved,
an executor, a non-ASCII host name, a warning, an exception logged with its
traceback); the test adds the rest from outside (reloads,
rotation, control commands, health probes, a signal handler, the stop).
Each import is said as ``late import NAME``; ``main ran`` once main is done.
main then waits for the stop, or returns with ``JAIL_IMPORTS_RETURN`` set.
"""

from __future__ import annotations

import asyncio
import importlib.abc
import logging
import os
import signal
import sys
import threading
import warnings
from collections.abc import Sequence
from importlib.machinery import PathFinder
from types import ModuleType

import aiodaemon

_reloads = 0


def say(line: str) -> None:
    """Write a line on fd 2, the daemon's ``--stderr`` file, with no import on the way."""
    os.write(2, f"{line}\n".encode())


class _LateImports(importlib.abc.MetaPathFinder):
    """Says each module left to the file system; finds nothing, so the import goes on.

    Placed just before ``PathFinder``: built-in modules, and aiodaemon's pinned
    ones (read at start, see ``_pinned``), are found ahead of it, from memory.
    """

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> None:
        if fullname not in sys.modules:
            say(f"late import {fullname}")


@aiodaemon.on_reload
async def reload() -> None:
    """Every second run fails: a reload that fails logs its traceback."""
    global _reloads
    _reloads += 1
    if _reloads % 2 == 0:
        raise ValueError("this reload fails")


@aiodaemon.on_signal(signal.SIGWINCH)
async def winch() -> None:
    """A handler that fails: logged with its traceback."""
    raise RuntimeError("this handler fails")


@aiodaemon.readiness_check
async def ready() -> bool:
    """Ready (each ``GET /readyz`` runs it)."""
    return True


def _fails() -> None:
    raise RuntimeError("this thread fails")


async def main() -> None:
    """Watch the imports, use the run phase, then wait for the stop."""
    sys.meta_path.insert(sys.meta_path.index(PathFinder), _LateImports())
    loop = asyncio.get_running_loop()
    await loop.run_in_executor(None, lambda: None)
    await asyncio.to_thread(lambda: None)
    try:
        # What getaddrinfo does to a str host (the jail has no resolver).
        "bücher.example".encode("idna")
    except LookupError as exc:
        say(f"error {exc}")
    thread = threading.Thread(target=_fails)
    thread.start()
    thread.join()
    try:
        raise KeyError("nobody awaited this task")
    except KeyError as exc:
        # What the loop does with a task's error that nobody retrieved.
        loop.call_exception_handler({"message": "Task exception never retrieved", "exception": exc})
    warnings.warn("a warning", stacklevel=1)
    try:
        int("not a number")
    except ValueError:
        logging.getLogger("app").exception("an error, logged with its traceback")
    say("main ran")
    if not os.environ.get("JAIL_IMPORTS_RETURN"):
        await asyncio.Event().wait()
