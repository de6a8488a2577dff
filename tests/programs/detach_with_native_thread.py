"""run(detach=True) while a thread Python does not know of runs; argv: the pidfile (+ .log).

The thread is a C library's, as OpenBLAS starts one at import: made with
pthread_create through ctypes, it waits in pause() with every signal blocked.
"""

from __future__ import annotations

import ctypes
import signal
import sys

import aiodaemon

libc = ctypes.CDLL(None, use_errno=True)
libc.pthread_create.argtypes = [
    ctypes.POINTER(ctypes.c_ulong),
    ctypes.c_void_p,
    ctypes.c_void_p,
    ctypes.c_void_p,
]
thread = ctypes.c_ulong()
# Inherited by the thread: no signal ends its pause().
before = signal.pthread_sigmask(signal.SIG_BLOCK, signal.valid_signals())
if libc.pthread_create(ctypes.byref(thread), None, ctypes.cast(libc.pause, ctypes.c_void_p), None):
    sys.exit("pthread_create failed")
signal.pthread_sigmask(signal.SIG_SETMASK, before)


async def main() -> None:
    pass


aiodaemon.run(main, detach=True, pidfile=sys.argv[1], log_file=f"{sys.argv[1]}.log")
