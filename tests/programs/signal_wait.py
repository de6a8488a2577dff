"""Idle until a signal's handler ends the program, never missing the signal.

Not ``while True: signal.pause()``, which can sleep through a SIGTERM: the
kernel runs CPython's C handler, which only notes the signal, and the Python
handler (``DaemonContext.terminate``) runs between two bytecodes later. A
signal that comes after the interpreter's last look for one and before
``pause()`` begins is noted, and ``pause()`` then waits for the next signal,
for ever (a PEP 3143 daemon stopped right after writing its pid stayed, 1 in
~400 on two loaded cores: the flaky "did not exit within 20 s of SIGTERM").
The C handler also writes the signal's number to the wakeup fd, which stays
readable until read: the read below returns at once, and the handler runs.

Only ``os`` and ``signal``: the PEP 3143 programs check what they import.
Call it in each process that waits (after a fork too: the pipe is its own).
"""

from __future__ import annotations

import os
import signal

TYPE_CHECKING = False  # not typing's: the PEP 3143 programs check what they import
if TYPE_CHECKING:
    from typing import NoReturn


def wait_for_signals() -> NoReturn:
    """Wait for signals for ever; their Python handlers run as they come."""
    read_end, write_end = os.pipe2(os.O_CLOEXEC)
    os.set_blocking(write_end, False)
    signal.set_wakeup_fd(write_end)
    while True:
        os.read(read_end, 64)
