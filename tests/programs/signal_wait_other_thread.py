"""Waits in ``signal_wait.wait_for_signals`` for a SIGTERM only another thread can take.

argv[1]: a file written once the wait is about to begin. The main thread
blocks SIGTERM, so the kernel hands it to an idle thread: CPython's C handler
runs there and only notes it, and nothing interrupts the main thread's wait.
That is the state a SIGTERM arriving just before ``signal.pause()`` leaves
(noted, but the wait begins after it), made certain: the program must still
end, status 3, from its handler.
"""

from __future__ import annotations

import signal
import sys
import threading
from pathlib import Path

from tests.programs.signal_wait import wait_for_signals


def _end(signum: int, frame: object) -> None:
    sys.exit(3)


signal.signal(signal.SIGTERM, _end)
threading.Thread(target=threading.Event().wait, name="idle", daemon=True).start()
signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM})
Path(sys.argv[1]).write_text("waiting\n")
wait_for_signals()
