"""A minimal detached daemon that writes, once running, what it imported after its fork.

The file named by the argument gets the daemon's pid, then the module names, one per line.
"""

from __future__ import annotations

import asyncio  # noqa: F401  (the floor: what any program on this stack imports)
import os
import sys
from importlib.machinery import ModuleSpec
from typing import TYPE_CHECKING

import structlog  # noqa: F401
import uvloop  # noqa: F401

import aiodaemon

if TYPE_CHECKING:
    from collections.abc import Sequence
    from types import ModuleType

LAUNCHER = os.getpid()
after_fork: list[str] = []


class _Watch:
    """First on ``sys.meta_path``: notes each import outside the launcher, finds nothing."""

    def find_spec(
        self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None
    ) -> ModuleSpec | None:
        if os.getpid() != LAUNCHER:
            after_fork.append(fullname)
        return None


sys.meta_path.insert(0, _Watch())


async def main() -> None:
    """Write the names (atomically: the test waits for the file), then return (exit 0)."""
    path = sys.argv[1]
    with open(path + ".tmp", "w") as f:
        f.write("".join(f"{line}\n" for line in [str(os.getpid()), *after_fork]))
    os.replace(path + ".tmp", path)


aiodaemon.run(main, detach=True)
