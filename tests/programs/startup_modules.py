"""A minimal foreground daemon that prints, once ready, the modules its start-up imported.

An argument is a JSON object of more options (a pidfile, listening sockets...).
"""

from __future__ import annotations

import asyncio  # noqa: F401  (the floor: what any program on this stack imports)
import json
import os
import sys

import structlog  # noqa: F401
import uvloop  # noqa: F401

before = set(sys.modules)

import aiodaemon  # noqa: E402


async def main() -> None:
    """Report what aiodaemon's own start-up loaded, then return (exit 0)."""
    os.write(1, (" ".join(sorted(set(sys.modules) - before)) + "\n").encode())


aiodaemon.run(main, detach=False, **(json.loads(sys.argv[1]) if len(sys.argv) > 1 else {}))
