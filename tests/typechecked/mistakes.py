"""Mistakes aiodaemon refuses at run time: each line marked ``type: ignore`` must be an error."""

from __future__ import annotations

import asyncio
import signal
from types import FrameType

import aiodaemon
from aiodaemon import Context, pep3143


@aiodaemon.on_startup  # type: ignore[type-var]  # two arguments: TypeError at decoration
async def two_arguments(ctx: Context, retries: int) -> None: ...


@aiodaemon.on_reload  # type: ignore[type-var]  # it gets the Context, not an int
async def not_a_context(ctx: int) -> None: ...


@aiodaemon.on_shutdown  # type: ignore[type-var]  # a sync hook: TypeError at decoration
def not_async() -> None: ...


@aiodaemon.lifespan  # type: ignore[type-var]  # no yield: not an async generator function
async def no_yield() -> None: ...


@aiodaemon.readiness_check  # type: ignore[type-var]  # a keyword-only Context is never given
async def keyword_only(*, ctx: Context) -> bool:
    return True


# Only False fails a check: no free connection (0) would answer "ready".
@aiodaemon.readiness_check  # type: ignore[type-var]
async def free_connections() -> int:
    return 0


# python-daemon's handler signature: on_signal handlers take no argument or a Context.
@aiodaemon.on_signal(signal.SIGWINCH)  # type: ignore[type-var]
async def signal_style(signum: int, frame: FrameType | None) -> None: ...


class Service:
    @aiodaemon.on_startup  # type: ignore[type-var]  # decorated in its class body: no instance
    async def start(self) -> None: ...


async def two_mains(config: str, retries: int) -> None: ...


async def reader_only(reader: asyncio.StreamReader) -> None: ...


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None: ...


class Pool:
    async def aclose(self) -> None: ...


async def main(ctx: Context) -> None:
    await ctx.start_server(reader_only, "http")  # type: ignore[arg-type]
    # Options loop.create_server does not take, or of the wrong type: TypeError in main.
    await ctx.start_server(handle, "http", ssl_handshake_timout=5.0)  # type: ignore[call-arg]
    await ctx.start_server(handle, "http", backlog="many")  # type: ignore[arg-type]
    ctx.track(Pool())  # type: ignore[type-var]  # no close(): TypeError at the call


def start() -> None:
    aiodaemon.Daemon(two_mains)  # type: ignore[arg-type]
    aiodaemon.run(main, pid_file="/run/app.pid")  # type: ignore[call-arg]


def start_mistyped() -> None:
    aiodaemon.run(two_mains)  # type: ignore[arg-type]


def start_misspelt() -> None:
    aiodaemon.runn(main)  # type: ignore[attr-defined]  # the lazy exports are no Any


def open_with_a_path() -> None:
    # A path where a lock object is needed (run()'s pidfile= is a path): DaemonError at open().
    pep3143.DaemonContext(pidfile="/run/foo.pid")  # type: ignore[arg-type]
