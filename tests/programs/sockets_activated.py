"""Opens listeners as a socket-activated program would, reports them, then serves their names.

argv[1]: the comma-separated listener names.
"""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import sys

from aiodaemon._prefork._addresses import parse_listen_address
from aiodaemon._prefork._sockets import open_listeners
from aiodaemon.exceptions import StartupError

# The addresses are what the program would bind without socket activation.
listen = {name: parse_listen_address(name, "127.0.0.1:1") for name in sys.argv[1].split(",")}
try:
    listeners = open_listeners(listen)
except StartupError as exc:
    print(exc, file=sys.stderr)
    sys.exit(1)
child_env = subprocess.run(["env"], capture_output=True, text=True, check=True).stdout
report = {
    "pid": os.getpid(),
    "activated": listeners.activated,
    "sockets": {
        name: {
            "fd": sock.fileno(),
            "port": sock.getsockname()[1],
            "blocking": sock.getblocking(),
            "inheritable": sock.get_inheritable(),
        }
        for name, sock in listeners.items()
    },
    "unclaimed": dict(listeners.unclaimed.items()),
    "unclaimed_inheritable": [
        os.get_inheritable(fd) for fds in listeners.unclaimed.values() for fd in fds
    ],
    "environ": sorted(k for k in os.environ if k.startswith("LISTEN_")),
    "child_environ": sorted(
        line.split("=")[0] for line in child_env.splitlines() if line.startswith("LISTEN_")
    ),
}
print(json.dumps(report), flush=True)
# Serve: answer each connection with the name of the socket it came in on.
selector = selectors.DefaultSelector()
for name, sock in listeners.items():
    selector.register(sock, selectors.EVENT_READ, name)
while True:
    for key, _ in selector.select():
        listener = key.fileobj
        assert isinstance(listener, socket.socket)
        conn, _ = listener.accept()
        with conn:
            conn.setblocking(True)
            conn.sendall(str(key.data).encode())
