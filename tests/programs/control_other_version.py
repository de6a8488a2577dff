"""tests/programs/control_app.py whose control socket speaks protocol version 2.

What a daemon of another aiodaemon release looks like to this CLI: it refuses
requests of version 1 in its own version's words. The version is changed in
the daemon process only, once it runs, the CLI untouched.
"""

from __future__ import annotations

import aiodaemon
from aiodaemon._prefork import _control_protocol
from aiodaemon._run import _control_server
from tests.programs.control_app import main

__all__ = ["main"]


@aiodaemon.on_startup
async def speak_version_two() -> None:
    _control_protocol.VERSION = 2
    # The server's own name too: it imported the constant (not re-exported).
    vars(_control_server)["VERSION"] = 2
