"""A daemon that opens things before run() which it must NOT keep, and one it must.

argv: KEY=VALUE pairs: pidfile, leak, keep, and optionally workdir, stdout, stderr, umask,
start_timeout, preserve (one more fd number for files_preserve).
"""

from __future__ import annotations

import os
import resource
import socket
import sys
from typing import Any

import aiodaemon

args = dict(a.split("=", 1) for a in sys.argv[1:])
soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
leak = os.open(args["leak"], os.O_WRONLY | os.O_CREAT, 0o600)
high = os.dup2(leak, hard - 1)  # the highest fd the limit allows
left, right = socket.socketpair()  # inherited sockets must not leak either
keep = open(args["keep"], "w")  # noqa: SIM115 - held open through the detach on purpose


async def main(ctx: aiodaemon.Context) -> None:
    print("hello from the daemon")
    await ctx.wait_stopping()


# No control socket: its listener (and libuv's spare fd for EMFILE) would blur
# what this checks, the launcher's fds; tests/test_control.py covers it.
options: dict[str, Any] = {
    "pidfile": args["pidfile"],
    "detach": True,
    "files_preserve": [keep],
    "control": False,
}
for name in ("workdir", "stdout", "stderr"):
    if name in args:
        options[name] = args[name]
if "umask" in args:
    options["umask"] = int(args["umask"], 8)
if "preserve" in args:
    options["files_preserve"].append(int(args["preserve"]))
if "start_timeout" in args:
    options["start_timeout"] = float(args["start_timeout"])
aiodaemon.run(main, **options)
