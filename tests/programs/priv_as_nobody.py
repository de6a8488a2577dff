"""Become nobody right after start-up, then run the program named in argv[1] as __main__."""

from __future__ import annotations

# The interpreter lives under /root here, closed to nobody: load what the
# program imports while still root.
import contextlib
import grp  # noqa: F401
import importlib  # noqa: F401  (aiodaemon.__getattr__ loads the exports with it)
import json  # noqa: F401
import os
import pwd  # noqa: F401
import resource  # noqa: F401
import sys

import aiodaemon

# run(): asyncio, structlog and the launch phases, which it loads before the fork.
import aiodaemon._daemon
import aiodaemon._logs._logging

# The last three are loaded only for the options that need them.
import aiodaemon._prefork._acquire
import aiodaemon._prefork._pidfile
import aiodaemon._prefork._safeopen
import aiodaemon._prefork._sockets

# uvloop (and what it imports), as an installed one readable by all would load;
# not installed: asyncio's loop, which run() loaded above.
with contextlib.suppress(ImportError):
    import aiodaemon._run._uvloop_signals  # noqa: F401

sys.argv = sys.argv[1:]
with open(sys.argv[0]) as f:
    code = compile(f.read(), sys.argv[0], "exec")
os.setgroups([])
os.setresgid(65534, 65534, 65534)
os.setresuid(65534, 65534, 65534)
exec(code, {"__name__": "__main__"})
