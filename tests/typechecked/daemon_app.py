"""A service using the documented runtime API: hooks, Context, Daemon, run() and its options."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import signal
import ssl
import sys
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import NoReturn, Unpack, assert_type

import aiodaemon
from aiodaemon import (
    AlreadyRunningError,
    ConfigError,
    Context,
    Daemon,
    DaemonError,
    DaemonOptions,
    ExitCode,
    PidfileState,
    PidfileStatus,
    StartupError,
    State,
    lifespan,
    on_reload,
    on_shutdown,
    on_signal,
    on_startup,
    read_pidfile,
    readiness_check,
    run,
    sd_notify,
)


@on_startup
async def open_db() -> None: ...


@aiodaemon.on_startup
async def warm_cache(ctx: Context) -> None:
    assert_type(ctx.state, State)
    assert_type(ctx.pid, int)
    assert_type(ctx.options.shutdown_timeout, float)
    ctx.set_status("warming the cache")
    ctx.notify_ready()


@on_reload
async def reload_config(ctx: aiodaemon.Context) -> None:
    if ctx.state is State.RELOADING:
        ctx.request_reload()


@on_shutdown
async def close_db() -> None: ...


@readiness_check
async def database_answers() -> bool:
    return True


@readiness_check
async def cache_answers(ctx: Context) -> bool | None:
    return ctx.state is State.RUNNING or None


@on_signal(signal.SIGWINCH)
async def dump_state(ctx: Context) -> None:
    ctx.request_shutdown(ExitCode.FAILURE)


@on_signal(signal.SIGRTMIN + 1)
async def rotate_keys() -> None: ...


@lifespan
async def pool() -> AsyncIterator[None]:
    yield


@lifespan
async def client(ctx: Context) -> AsyncGenerator[None, None]:
    yield


class App:
    """Hooks as bound methods, registered once the object exists."""

    async def start(self, ctx: Context) -> None: ...

    async def stop(self) -> None: ...


app = App()
on_startup(app.start)
on_shutdown(app.stop)


async def connect_with(ctx: Context, retries: int) -> None: ...


async def load(path: str) -> None: ...


async def optional_context(ctx: Context | None = None) -> None: ...


# A partial leaving the Context (or nothing) to give, and a Context with a default.
on_startup(functools.partial(connect_with, retries=3))
on_reload(functools.partial(load, "/etc/app.toml"))
on_shutdown(optional_context)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.write(await reader.read(100))
    writer.close()
    await writer.wait_closed()


def handle_sync(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    writer.close()


async def main(ctx: Context) -> None:
    server = await ctx.start_server(handle, "http", limit=2**16)
    assert_type(server, asyncio.Server)
    await ctx.start_server(handle_sync, "admin")
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    await ctx.start_server(
        handle, "tls", ssl=tls, ssl_handshake_timeout=5, ssl_shutdown_timeout=None, backlog=8
    )
    own = await asyncio.start_server(handle, "127.0.0.1", 0)
    assert_type(ctx.track(own), asyncio.Server)
    await ctx.wait_stopping()


async def plain_main() -> None:
    await asyncio.sleep(0)


async def hooks_stay_callable(ctx: Context) -> None:
    """The decorators return the function itself: a program's tests can call it."""
    await open_db()
    await warm_cache(ctx)
    assert_type(await database_answers(), bool)
    assert_type(await cache_answers(ctx), bool | None)
    await dump_state(ctx)
    async for _ in pool():
        pass
    assert_type(client(ctx), AsyncGenerator[None, None])


daemon = Daemon()


@daemon.on_startup
async def connect(ctx: Context) -> None: ...


@daemon.on_signal(signal.SIGXCPU)
async def cpu_limit() -> None: ...


@daemon.lifespan
async def session() -> AsyncIterator[None]:
    yield


def pidfile_status() -> int:
    state = read_pidfile(Path("/run/app.pid"))
    assert_type(state, PidfileState)
    assert_type(state.running_pid, int | None)
    return 0 if state.status is PidfileStatus.RUNNING else ExitCode.FAILURE


def errors() -> str:
    assert_type(sd_notify("STATUS=warming the cache (3/10)"), bool)
    try:
        return aiodaemon.__version__
    except AlreadyRunningError as exc:
        return f"{exc.path} {exc.pid}"
    except ConfigError as exc:
        return exc.option
    except StartupError as exc:
        return str(exc.option)
    except DaemonError as exc:
        return str(exc.exit_code)


options: DaemonOptions = {
    "pidfile": Path("/run/app/app.pid"),
    "listen": {"http": "127.0.0.1:8080"},
    "log_level": logging.DEBUG,
    "shutdown_timeout": 10,
}


def start(**given: Unpack[DaemonOptions]) -> NoReturn:
    """A program's own front door, passing run()'s options on."""
    given.setdefault("log_level", "info")
    aiodaemon.run(main, **given)


def start_with_every_option() -> None:
    run(
        main,
        pidfile=Path("/run/app/app.pid"),
        detach=None,
        workdir=Path("/srv/app"),
        umask=0o027,
        stdout="/var/log/app/out.log",
        stderr=Path("/var/log/app/err.log"),
        log_file=Path("/var/log/app/app.jsonl"),
        syslog="udp://127.0.0.1:514",
        log_level="warning",
        log_format="json",
        listen={"http": "0.0.0.0:8080", "admin": "unix:/run/app/admin.sock"},
        user="app",
        group=1000,
        chroot="/srv/jail",
        prevent_core=True,
        no_new_privileges=True,
        files_preserve=[sys.stderr, 3],
        shutdown_timeout=5,
        uvloop=None,
        ready="manual",
        control=False,
        start_timeout=30.0,
        drain_delay=1,
        health="127.0.0.1:9000",
    )


def start_configured_by_the_environment() -> None:
    aiodaemon.run(main, log_level=os.environ.get("LOG_LEVEL", "INFO"))


def start_from_a_dict() -> None:
    aiodaemon.run(plain_main, **options)


def start_a_coroutine() -> None:
    aiodaemon.run(plain_main())


def start_the_daemon_object() -> None:
    Daemon(main).run(control=Path("/run/app/app.ctl"))


def start_the_other_daemon() -> None:
    daemon.run(plain_main, syslog=True, log_format=None)


def start_logging_to_the_journal() -> None:
    daemon.run(plain_main, syslog=Path("/run/systemd/journal/syslog"))
