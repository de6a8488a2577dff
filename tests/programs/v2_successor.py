"""An upgrade's new process whose aiodaemon takes only version 2 of the hand-off.

None does yet: this is what the envelope promises every later version does
when the running daemon hands over with a version it no longer takes (see
aiodaemon/_prefork/_handoff.py): verify nothing more, read the secret line on
the channel, answer ``V2`` and exit. Replaces tests/programs/upgrade_app.py on
disk. Plain Python, no aiodaemon.
"""

from __future__ import annotations

import json
import os
import socket
import sys


def main() -> None:
    envelope = json.loads(os.environ["AIODAEMON_HANDOFF"])
    with socket.socket(fileno=envelope["channel"]) as channel:
        secret = b""
        while not secret.endswith(b"\n"):
            secret += channel.recv(1)
        channel.sendall(b"V2\n")
    print("aiodaemon: upgrade: this aiodaemon takes version 2 only", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
    main()
