"""Ask a control socket for status and print, as repr, whatever bytes come back.

argv: the control socket. Run as another user: it must get nothing.
"""

from __future__ import annotations

import socket
import sys

conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
conn.settimeout(20)
conn.connect(sys.argv[1])
try:
    conn.sendall(b'{"v": 1, "cmd": "status"}\n')
    conn.shutdown(socket.SHUT_WR)
    data = conn.recv(65536)
except OSError:
    data = b""
sys.stdout.write(repr(data))
