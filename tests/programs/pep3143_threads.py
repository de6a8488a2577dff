"""A detached ``DaemonContext.open()`` while another thread runs; argv: python|native|caller, a dir.

``python``: a ``threading.Thread`` (named ``busy``); ``caller``: open() is
called from a thread named ``opener`` while the main thread waits for it to
end (only ``opener`` goes on in the daemon); ``native``: a thread
Python does not know of, made with pthread_create through ctypes as a C
library makes one (OpenBLAS at import), blocked for ever on a mutex the
main thread holds (not in pause(): open()'s setuid makes glibc signal every
thread, which would end it). The daemon writes its pid to ``DIR/opened``
and exits.
"""

from __future__ import annotations

import ctypes
import os
import sys
import threading
from pathlib import Path

from aiodaemon import pep3143

KIND, DIR = sys.argv[1], Path(sys.argv[2])

if KIND == "python":
    threading.Thread(target=threading.Event().wait, name="busy", daemon=True).start()
elif KIND == "native":
    libc = ctypes.CDLL(None, use_errno=True)
    libc.pthread_create.argtypes = [ctypes.POINTER(ctypes.c_ulong)] + [ctypes.c_void_p] * 3
    thread = ctypes.c_ulong()
    mutex = ctypes.create_string_buffer(64)  # zeroed: PTHREAD_MUTEX_INITIALIZER
    libc.pthread_mutex_lock(mutex)
    start = ctypes.cast(libc.pthread_mutex_lock, ctypes.c_void_p)
    if libc.pthread_create(ctypes.byref(thread), None, start, ctypes.cast(mutex, ctypes.c_void_p)):
        sys.exit("pthread_create failed")


def become_daemon() -> None:
    """Open the context and report the daemon's pid."""
    with pep3143.DaemonContext(detach_process=True, working_directory=DIR):
        (DIR / "opened").write_text(f"{os.getpid()}\n")


if KIND == "caller":
    opener = threading.Thread(target=become_daemon, name="opener")
    opener.start()
    opener.join()
else:
    become_daemon()
