"""A process that holds a pidfile's lock and answers its control socket badly.

argv: PIDFILE MODE. MODE is "garbage" (bytes that are not JSON), "truncated"
(half a JSON object, then close), "silent" (accepts, never answers), "close"
(closes at once), "huge" (an endless answer without a newline) or "told"
(answers ``stop``, then tells an exit with an escape sequence in its reason,
after one with a status no process has, and exits) or "starting" (refuses
the first request for now, as a daemon still starting does but in words of
its own, and exits, its socket closed first). Prints
"ready" on stdout once it listens. Plain Python: it impersonates a daemon
from the CLI's point of view (it *is* the lock holder).
"""

from __future__ import annotations

import fcntl
import os
import socket
import sys
from pathlib import Path


def main() -> None:
    pidfile, mode = Path(sys.argv[1]), sys.argv[2]
    fd = os.open(pidfile, os.O_RDWR | os.O_CREAT, 0o644)
    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    os.ftruncate(fd, 0)
    os.write(fd, f"{os.getpid()}\n".encode())
    control = pidfile.with_name(pidfile.name + ".ctl")
    server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    server.bind(str(control))
    server.listen(16)
    print("ready", flush=True)
    held = []
    while True:
        conn, _ = server.accept()
        if mode == "garbage":
            conn.sendall(b"\x00\xff<html>not json</html>\n")
        elif mode == "truncated":
            conn.sendall(b'{"v": 1, "ok": tr')
        elif mode == "silent":
            held.append(conn)  # keep it open, say nothing
            continue
        elif mode == "told":
            conn.recv(65536)
            conn.sendall(b'{"v": 1, "ok": true, "already_stopping": false, "watched": true}\n')
            conn.sendall(b'{"v": 1, "ok": true, "exit": 4096, "reason": "no such status"}\n')
            conn.sendall(b'{"v": 1, "ok": true, "exit": 4, "reason": "cut \\u001b[2J\\nshort"}\n')
            os._exit(0)
        elif mode == "starting":
            conn.recv(65536)
            # Closed before the answer: the command's next question finds nobody.
            server.close()
            conn.sendall(
                b'{"v": 1, "ok": false, "error": "not before my startup hooks are done",'
                b' "refused": true, "transient": true, "state": "starting"}\n'
            )
            os._exit(0)
        elif mode == "huge":
            try:
                while True:
                    conn.sendall(b"x" * 65536)
            except OSError:
                pass
        conn.close()


if __name__ == "__main__":
    main()
