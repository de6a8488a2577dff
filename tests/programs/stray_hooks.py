"""A program that runs a Daemon of its own, but registered a hook with a module-level decorator."""

from __future__ import annotations

import aiodaemon


@aiodaemon.on_startup
async def announce() -> None:
    print("module-level hook ran", flush=True)


daemon = aiodaemon.Daemon()


@daemon.on_shutdown
async def closing() -> None:
    print("own hook ran", flush=True)


async def main() -> None:
    print("main ran", flush=True)


if __name__ == "__main__":
    daemon.run(main, detach=False)
