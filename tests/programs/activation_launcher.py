"""Socket activation without systemd: pass listening sockets as fds 3.. and exec a command.

usage: activation_launcher.py NAME=ADDR[,NAME=ADDR...] -- COMMAND...
ADDR: ``HOST:PORT`` (TCP) or ``unix:PATH``. ``LISTEN_FDS``, ``LISTEN_PID``
(this process, which the exec keeps) and ``LISTEN_FDNAMES`` are set as
systemd sets them.
"""

from __future__ import annotations

import os
import socket
import sys


def _listen(address: str) -> socket.socket:
    if address.startswith("unix:"):
        path = address.removeprefix("unix:")
        if os.path.lexists(path):
            os.unlink(path)
        sock = socket.socket(socket.AF_UNIX)
        sock.bind(path)
    else:
        host, _, port = address.rpartition(":")
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((host, int(port)))
    sock.listen(128)
    return sock


def main() -> None:
    """Bind, place the sockets at 3.., exec."""
    args = sys.argv[1:]
    split = args.index("--")
    specs = [spec.split("=", 1) for spec in args[0].split(",")]
    command = args[split + 1 :]
    sockets = [_listen(address) for _, address in specs]
    # Copies first: a socket may already sit on a number another one moves to.
    copies = [os.dup(sock.fileno()) for sock in sockets]
    for sock in sockets:
        sock.close()
    for offset, fd in enumerate(copies):
        os.dup2(fd, 3 + offset, inheritable=True)
    for fd in copies:
        if fd >= 3 + len(copies):
            os.close(fd)
    env = dict(os.environ)
    env["LISTEN_FDS"] = str(len(sockets))
    env["LISTEN_PID"] = str(os.getpid())
    env["LISTEN_FDNAMES"] = ":".join(name for name, _ in specs)
    os.execvpe(command[0], command, env)


if __name__ == "__main__":
    main()
