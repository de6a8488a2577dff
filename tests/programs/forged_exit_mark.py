"""A stranger posing as a daemon in its last steps: ``forged_exit_mark.py PIDFILE``.

Creates a file at ``PIDFILE``, keeps it open for writing, removes it (its
descriptor now reads ``PIDFILE (deleted)``, as an exiting daemon's does) and
listens on the exit mark's abstract name. Prints ``ready`` once in place and
holds on until its stdin closes.
"""

from __future__ import annotations

import os
import socket
import sys

from aiodaemon._prefork._exit_mark import exit_mark

path = sys.argv[1]
fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
os.unlink(path)
mark = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
mark.bind(exit_mark(path))
mark.listen()
print("ready", flush=True)
sys.stdin.read()
