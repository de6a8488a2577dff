"""Backstop threads: time bounds that hold while synchronous code blocks the event loop.

The start, the shutdown and the interpreter's exit each arm one. They guard
against a program that blocks; they are never the reason a daemon fails. When
the system refuses a thread (RLIMIT_NPROC, a cgroup's pids.max, no memory),
the work goes on unguarded and the log says so, instead of the shutdown
aborting half-way with in-flight requests cut and shutdown hooks skipped.
"""

from __future__ import annotations

import threading

import structlog

__all__ = ["start_backstop"]

_log = structlog.get_logger("aiodaemon")


def start_backstop(thread: threading.Thread, guards: str, *, log: bool = True) -> bool:
    """Start ``thread``; if no thread can be started, say that ``guards`` goes unguarded.

    Args:
        thread: the backstop, not yet started.
        guards: what it bounds, for the warning ("the shutdown's deadline").
        log: warn in the log (False at the interpreter's exit, when the log is
            closed: the caller tells stderr).

    Returns:
        Whether the thread runs.
    """
    try:
        thread.start()
    except RuntimeError as exc:  # "can't start new thread"
        if log:
            _log.warning(
                "backstop not started", thread=thread.name, unguarded=guards, error=str(exc)
            )
        return False
    return True
