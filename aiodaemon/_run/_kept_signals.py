"""The daemon's loop signal handlers come back when a program or library removes them.

A library that watches SIGTERM for a while (anyio's ``open_signal_receiver``
around a migration in a startup hook) adds its own loop handler and removes it
at the end; asyncio and uvloop then give the signal its default action, and the
next ``aiodaemon stop`` killed the daemon outright: no shutdown hooks, no
``exit`` record, the pidfile left behind. On the daemon's loops (which call
:meth:`SignalKeeper.restore` from their ``remove_signal_handler``), removing
the handler of a signal the daemon handles puts the daemon's handler back
instead, without the default action in between. The daemon's own removals
(the loop's close, :meth:`._forced.ForcedExit.release_loop`) let go first.
"""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Callable
from typing import Any, TypeVarTuple

import structlog

__all__ = [
    "KeepsSignals",
    "SignalKeeper",
    "keep_signal_handler",
    "let_go_of_signals",
    "signal_keeper",
]

_log = structlog.get_logger("aiodaemon")

_Ts = TypeVarTuple("_Ts")


class SignalKeeper:
    """The daemon's handler per signal on one loop, put back when something removes it."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        #: per signal: the daemon's callback and its arguments.
        self._kept: dict[int, tuple[Callable[..., object], tuple[Any, ...]]] = {}
        #: called with the signal once its handler is back.
        self.on_restored: Callable[[int], None] | None = None
        #: signals whose restoring was logged at info (later ones: debug).
        self._said: set[int] = set()

    def keep(self, sig: int, callback: Callable[[*_Ts], object], *args: *_Ts) -> None:
        """``add_signal_handler``, and this handler is the one a removal puts back."""
        self._loop.add_signal_handler(sig, callback, *args)
        self._kept[sig] = (callback, args)

    def restore(self, sig: int) -> bool:
        """Instead of removing ``sig``'s handler: put the daemon's back; False if it has none."""
        kept = self._kept.get(sig)
        if kept is None:
            return False
        # Added over what is there (the remover's handler, or ours): the signal
        # never has its default action, which ends the process for most.
        callback, args = kept
        self._loop.add_signal_handler(sig, callback, *args)
        # Said once per signal at info: a library that adds and removes its
        # handler in a loop wrote two lines a turn (2,000 for 1,000 cycles).
        if sig in self._said:
            _log.debug("signal handler restored", signal=_name(sig))
        else:
            self._said.add(sig)
            _log.info("signal handler restored", signal=_name(sig))
        if self.on_restored is not None:
            self.on_restored(sig)
        return True

    def let_go(self) -> None:
        """From now on a removal removes: the daemon's own, as its loop ends."""
        self._kept.clear()


class KeepsSignals(asyncio.AbstractEventLoop):
    """The daemon's loops (asyncio's and uvloop's): a removal puts the daemon's handler back."""

    signal_keeper: SignalKeeper

    def remove_signal_handler(self, sig: int) -> bool:
        return self.signal_keeper.restore(sig) or super().remove_signal_handler(sig)

    def close(self) -> None:
        # The loop's close removes every handler, ours too.
        self.signal_keeper.let_go()
        super().close()


def signal_keeper(loop: asyncio.AbstractEventLoop) -> SignalKeeper | None:
    """The keeper of the daemon's loop; None for another loop."""
    keeper = getattr(loop, "signal_keeper", None)
    return keeper if isinstance(keeper, SignalKeeper) else None


def keep_signal_handler(
    loop: asyncio.AbstractEventLoop, sig: int, callback: Callable[[*_Ts], object], *args: *_Ts
) -> None:
    """Install the daemon's handler for ``sig``; on its own loop, one a removal puts back."""
    keeper = signal_keeper(loop)
    if keeper is None:
        loop.add_signal_handler(sig, callback, *args)
    else:
        keeper.keep(sig, callback, *args)


def let_go_of_signals(loop: asyncio.AbstractEventLoop) -> None:
    """Let the daemon's own removals through (see :meth:`SignalKeeper.let_go`)."""
    keeper = signal_keeper(loop)
    if keeper is not None:
        keeper.let_go()


def _name(sig: int) -> str:
    try:
        return signal.Signals(sig).name
    except ValueError:
        return str(sig)
