"""uvloop's loop, each signal delivery run once.

uvloop reads its wakeup pipe, then runs the pending Python-level signal
handlers (its own notes each signal in a set, for a byte the full pipe lost),
then runs a callback per byte read and per noted signal without a byte. A
signal that arrives between the read and the handlers' run is noted, its byte
not read yet: its callback ran from the note, and again from the byte at the
next read. With signals close together (logrotate's SIGUSR1 and a SIGHUP, a
SIGWINCH beside either) about one in a hundred ran twice: a reload more, an
``on_signal`` run more. Its reading is compiled code, out of reach; the gate
sits around it instead: a callback runs only as often as the Python-level
handler ran for its signal (which uvloop runs before any callback of a byte).
Deliveries that the interpreter merged into one handler run are one run, as
the kernel merges a standard signal while one is pending. Real-time signals
are queued, each delivery its own: they are not gated.
"""

from __future__ import annotations

import signal
from collections.abc import Callable
from typing import Any, TypeVarTuple

import uvloop

from ._kept_signals import KeepsSignals, SignalKeeper

__all__ = ["Loop"]

_Ts = TypeVarTuple("_Ts")


# uvloop's stubs type 28 methods otherwise than AbstractEventLoop, KeepsSignals' base.
class Loop(KeepsSignals, uvloop.Loop):  # type: ignore[misc]
    """uvloop's loop whose signal callbacks run at most once per handled delivery."""

    def __init__(self) -> None:
        super().__init__()
        #: per signal: how often its Python-level handler ran, its callback ran.
        self._arrived: dict[int, int] = {}
        self._ran: dict[int, int] = {}
        #: per signal: our Python-level handler, while it is the one installed.
        self._counters: dict[int, Callable[[int, Any], None]] = {}
        self.signal_keeper = SignalKeeper(self)

    def add_signal_handler(self, sig: int, callback: Callable[[*_Ts], object], *args: *_Ts) -> None:
        if signal.SIGRTMIN <= sig <= signal.SIGRTMAX:
            # Queued by the kernel, one delivery each, which the interpreter
            # merges into one handler run: gated, a burst of them ran once.
            super().add_signal_handler(sig, callback, *args)
            return
        super().add_signal_handler(sig, self._gated(sig, callback), *args)
        noting = signal.getsignal(sig)  # uvloop's: notes the signal for its set

        def counter(signum: int, frame: Any) -> None:
            self._arrived[signum] = self._arrived.get(signum, 0) + 1
            if callable(noting):
                noting(signum, frame)

        self._counters[sig] = counter
        signal.signal(sig, counter)

    def _gated(self, sig: int, callback: Callable[[*_Ts], object]) -> Callable[[*_Ts], None]:
        def gated(*args: *_Ts) -> None:
            # Only while the count is ours: a handler put in its place (the
            # forced exit's, which counts stop signals its own way) counts none.
            if signal.getsignal(sig) is self._counters.get(sig):
                ran = self._ran.get(sig, 0)
                if ran >= self._arrived.get(sig, 0):
                    return  # that delivery's second run (see the module's docstring)
                self._ran[sig] = ran + 1
            callback(*args)

        return gated
