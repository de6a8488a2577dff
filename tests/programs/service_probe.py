"""A service plugged into the run phase records every step; argv: options, record."""

from __future__ import annotations

import asyncio
import json
import sys

import aiodaemon
from aiodaemon._run import _services
from aiodaemon._run._reloads import ReloadAbandoned
from aiodaemon._run._services import RuntimeHandle, Service
from aiodaemon._run._state import State

RECORD = sys.argv[2]


def record(line: str) -> None:
    with open(RECORD, "a") as f:
        f.write(line + "\n")


class Probe(Service):
    name = "probe"

    def __init__(self, runtime: RuntimeHandle) -> None:
        self.runtime = runtime
        self.running = asyncio.Event()
        # Set when the state leaves RELOADING: a chain of runs counts once.
        self.reloads_over = asyncio.Event()
        runtime.add_state_listener(self.changed)

    def changed(self, old: State, new: State) -> None:
        record(f"state {old.value} -> {new.value}")
        if new is State.RUNNING:
            self.running.set()
        if (old, new) == (State.RELOADING, State.RUNNING):
            self.reloads_over.set()

    async def start(self) -> None:
        record(f"start {self.runtime.state.value}")
        self.runtime.spawn(self.requests(), "probe-requests")

    async def requests(self) -> None:
        await self.running.wait()
        # Three requests at once: one run, which started after all of them,
        # answers them all; the two that came during it queue one more run.
        results = await asyncio.gather(*(self.runtime.request_reload() for _ in range(3)))
        record(f"first {[(r.ok, r.error) for r in results]} {len({id(r) for r in results})}")
        await self.reloads_over.wait()
        last = self.runtime.last_reload
        record(f"second {last is not None and (last.ok, last.error)}")
        third = await self.runtime.request_reload()
        record(f"third {third.ok} {third is self.runtime.last_reload}")
        self.runtime.request_shutdown(3)
        try:
            await self.runtime.request_reload()
        except ReloadAbandoned as exc:
            record(f"late: {exc}")
        await asyncio.Event().wait()

    def not_ready(self) -> None:
        record("not_ready")

    async def stop_accepting(self) -> None:
        record("stop_accepting")

    async def wait_finished(self) -> None:
        record("wait_finished")

    async def close(self) -> None:
        record("close")


def factory(runtime: RuntimeHandle) -> Service:
    return Probe(runtime)


reloads = 0


@aiodaemon.on_reload
async def reload() -> None:
    global reloads
    reloads += 1
    record(f"reload {reloads}")
    await asyncio.sleep(0.05)
    if reloads == 2:
        raise ValueError("bad line 3")


@aiodaemon.on_shutdown
async def down() -> None:
    record("shutdown hook")


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


_services.SERVICE_FACTORIES = ("__main__:factory",)
aiodaemon.run(main, **json.loads(sys.argv[1]))
