"""A detached daemon whose startup hook fails naming a file that is not UTF-8 (argv: the pidfile).

Also a CLI target: ``tests.programs.startup_odd_error:main``.
"""

from __future__ import annotations

import os
import sys

import aiodaemon

#: The byte 0xE9 is not UTF-8: Python holds it as the surrogate U+DCE9.
NAME = os.fsdecode(b"caf\xe9.toml")


@aiodaemon.on_startup
async def load_config() -> None:
    raise ValueError(f"cannot parse {NAME}")


async def main() -> None:
    pass


if __name__ == "__main__":
    aiodaemon.run(main, pidfile=sys.argv[1], detach=True)
