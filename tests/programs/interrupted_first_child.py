"""A CLI app whose first child (the session leader) is interrupted right after the second fork.

A profile function installed by an at-fork hook raises KeyboardInterrupt at
the first Python call the first child makes once it has forked the daemon: a
Ctrl-C (or a MemoryError) at that moment, made certain.
"""

from __future__ import annotations

import os
import sys
from types import FrameType
from typing import Any

import aiodaemon

_LAUNCHER = os.getpid()


def _interrupt(frame: FrameType, event: str, arg: Any) -> None:
    if event == "call":  # the first call after the hook has returned
        sys.setprofile(None)
        raise KeyboardInterrupt


def _interrupt_the_session_leader() -> None:
    # After a fork, in the parent: only the first child, a session leader, is hit.
    if os.getpid() != _LAUNCHER and os.getsid(0) == os.getpid():
        sys.setprofile(_interrupt)


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


os.register_at_fork(after_in_parent=_interrupt_the_session_leader)
