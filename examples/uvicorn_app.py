"""A Starlette (or FastAPI) application served by uvicorn as a library, under aiodaemon.

uvicorn is the ASGI server; aiodaemon is the service around it: the pidfile, the
socket (``listen=``, or systemd's), readiness, signals, the JSON log, ``reload``
and ``aiodaemon upgrade``. Three things make them work together:

* ``uvicorn.Server.serve()`` replaces the SIGTERM and SIGINT handlers with its
  own for as long as it runs (``capture_signals``). ``Server`` below turns that
  off, as uvicorn's embedders do: aiodaemon decides what a signal means, and
  asks uvicorn to stop (``should_exit``) when its shutdown sequence stops
  accepting, after ``--drain-delay``;
* ``log_config=None``: uvicorn's default logging configuration sends its records
  to its own stderr handlers (``/dev/null`` once detached); without it they
  propagate to aiodaemon's handler and land in the JSON log;
* the server starts in a startup hook, so the daemon is ready (``aiodaemon
  start`` returns, ``READY=1``, an upgrade hands over) only once the
  application's lifespan startup has run and uvicorn serves.

    aiodaemon start examples.uvicorn_app:main --pidfile /tmp/asgi.pid \\
        --listen http=127.0.0.1:8000 --health 127.0.0.1:8001 --log-file /tmp/asgi.jsonl
    curl http://127.0.0.1:8000/
    aiodaemon upgrade --pidfile /tmp/asgi.pid
    aiodaemon stop --pidfile /tmp/asgi.pid
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import socket
from collections.abc import AsyncGenerator, Generator
from dataclasses import dataclass

import structlog
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Route

import aiodaemon

log = structlog.get_logger("uvicorn_app")

#: The file ``aiodaemon reload`` rereads the greeting from (none: "hello").
GREETING_FILE = os.environ.get("GREETING_FILE")


@dataclass
class Settings:
    """What a reload changes."""

    greeting: str = "hello"


settings = Settings()


def read_greeting() -> str:
    """The greeting: the first line of GREETING_FILE, or "hello" without one."""
    if GREETING_FILE is None:
        return "hello"
    with open(GREETING_FILE, encoding="utf-8") as f:
        return f.readline().strip()


async def hello(request: Request) -> PlainTextResponse:
    """GET /: the greeting and the pid of the process that answered."""
    return PlainTextResponse(f"{settings.greeting} from {os.getpid()}\n")


async def slow(request: Request) -> PlainTextResponse:
    """GET /slow?seconds=S: answers after S seconds (a request in flight at a stop)."""
    seconds = float(request.query_params.get("seconds", "1"))
    log.info("slow request", seconds=seconds)
    await asyncio.sleep(seconds)
    return PlainTextResponse(f"slept {seconds} in {os.getpid()}\n")


@contextlib.asynccontextmanager
async def lifespan(app: Starlette) -> AsyncGenerator[None, None]:
    """The application's own lifespan (a database pool, say): uvicorn runs it."""
    log.info("application startup")
    yield
    log.info("application shutdown")


app = Starlette(routes=[Route("/", hello), Route("/slow", slow)], lifespan=lifespan)


class Server(uvicorn.Server):
    """uvicorn's server without its signal handlers, and with a way to wait until it serves."""

    def __init__(self, config: uvicorn.Config) -> None:
        super().__init__(config)
        self.serving = asyncio.Event()

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        # aiodaemon owns SIGTERM and SIGINT (drain delay, a second signal
        # forcing the exit, upgrades); uvicorn's handlers would replace them.
        yield

    async def startup(self, sockets: list[socket.socket] | None = None) -> None:
        try:
            await super().startup(sockets=sockets)
        except SystemExit as exc:
            # uvicorn logged the lifespan's error, then sys.exit(3): an exception
            # instead, so the start fails saying so (a SystemExit would escape
            # from the task as a request to exit).
            raise RuntimeError(
                f"uvicorn did not start (status {exc.code}): see its error in the log"
            ) from None
        self.serving.set()


#: Seconds a connection accepted just before the stop has to send its request.
FIRST_REQUEST_GRACE = 0.5
#: Of what uvicorn's shutdown has left after the grace, the part kept for the
#: application's lifespan shutdown (the rest is the wait for requests in flight).
CLEANUP_SHARE = 0.2
#: Seconds uvicorn takes before it waits: should_exit is read every 0.1 s, then
#: it sleeps 0.1 s once the connections were told to close (uvicorn 0.54).
_UVICORN_TICKS = 0.2
#: Loop turns from an accept to its connection's protocol (see UvicornService.close).
_TURNS_TO_A_PROTOCOL = 3


class UvicornService:
    """What ``ctx.track`` closes when the daemon stops accepting.

    ``close()`` first closes uvicorn's listeners (new connections are
    refused), then asks it to stop as its own SIGTERM handler would
    (``should_exit``). uvicorn's shutdown closes at once every connection that
    has no request yet, also one accepted an instant before whose request is
    still on its way (an upgrade's cut-over, under load), so those requests get
    a moment to arrive first. uvicorn then closes idle keep-alive connections,
    lets requests in flight finish and runs the application's lifespan
    shutdown; aiodaemon awaits all of it before its own shutdown hooks.
    """

    def __init__(
        self, server: Server, task: asyncio.Task[None], grace: float = FIRST_REQUEST_GRACE
    ) -> None:
        self.server = server
        self.task = task
        self.grace = grace

    async def close(self) -> None:
        if self.task.done():
            return  # it never served, or already stopped
        for listener in getattr(self.server, "servers", []):  # none before it served
            listener.close()
        # A connection accepted in the turn the listeners closed is not among the
        # connections yet (its protocol is made a loop turn later, asyncio: two):
        # counted before that, it got no grace, and the shutdown closed it unanswered.
        for _ in range(_TURNS_TO_A_PROTOCOL):
            await asyncio.sleep(0)
        if self.server.server_state.connections:
            await asyncio.sleep(self.grace)
        self.server.should_exit = True
        await self.task


def cleanup_budget(shutdown_timeout: float) -> tuple[float, float]:
    """The grace and uvicorn's ``timeout_graceful_shutdown``, within half of aiodaemon's budget.

    aiodaemon gives tracked objects half its ``shutdown_timeout``, then cancels
    them (the lifespan shutdown would not run). In that half: the grace for
    requests on their way, uvicorn's own ticks, its wait for the requests in
    flight (for ever by default), then the lifespan shutdown. A short budget
    shortens the grace too, and the wait goes below uvicorn's whole seconds.

    Args:
        shutdown_timeout: aiodaemon's, in seconds (positive).

    Returns:
        ``(grace, graceful_timeout)`` in seconds.
    """
    half = shutdown_timeout / 2
    grace = min(FIRST_REQUEST_GRACE, half / 4)
    wait = max(0.0, (half - grace - _UVICORN_TICKS) * (1 - CLEANUP_SHARE))
    return grace, wait


@aiodaemon.on_startup
async def serve(ctx: aiodaemon.Context) -> None:
    """Serve the application on the daemon's ``http`` socket; ready once uvicorn serves."""
    settings.greeting = read_greeting()
    # uvicorn cuts the slow requests itself, and the lifespan shutdown runs, within
    # the half of shutdown_timeout aiodaemon gives what it tracks (see cleanup_budget).
    grace, graceful_timeout = cleanup_budget(ctx.options.shutdown_timeout)
    config = uvicorn.Config(
        app,
        log_config=None,  # uvicorn's records go to the daemon's log
        # Typed int, but only ever given to asyncio.wait_for: a fraction is kept
        # (a whole second does not fit in the half of a shutdown_timeout of 3).
        timeout_graceful_shutdown=graceful_timeout,  # type: ignore[arg-type]
    )
    server = Server(config)
    task = asyncio.create_task(server.serve(sockets=[ctx.sockets["http"]]), name="uvicorn")
    ctx.track(UvicornService(server, task, grace))
    serving = asyncio.create_task(server.serving.wait())
    await asyncio.wait([task, serving], return_when=asyncio.FIRST_COMPLETED)
    serving.cancel()
    if task.done():
        task.result()  # the startup's error, if it raised one
        raise RuntimeError("uvicorn stopped before it served")

    def stopped(task: asyncio.Task[None]) -> None:
        # uvicorn may end on its own (limit_max_requests, an error in the
        # server): the daemon then ends too, instead of running on unserved.
        # Stopped by the daemon's own shutdown, it has nothing to ask (the
        # log would say the program asked for a shutdown `aiodaemon stop` began).
        error = None if task.cancelled() else task.exception()
        if error is not None:
            log.error("uvicorn failed", exc_info=error)
        elif ctx.state is aiodaemon.State.STOPPING:
            return
        ctx.request_shutdown(0 if error is None else 1)

    task.add_done_callback(stopped)


@aiodaemon.on_reload
async def reread_greeting() -> None:
    """SIGHUP or ``aiodaemon reload``: a new greeting, for the requests that follow."""
    settings.greeting = read_greeting()
    log.info("greeting changed", greeting=settings.greeting)


async def main(ctx: aiodaemon.Context) -> None:
    """uvicorn runs on its own; ``main`` waits for the stop."""
    await ctx.wait_stopping()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description="a Starlette application on uvicorn, under aiodaemon"
    )
    parser.add_argument("--listen", default="127.0.0.1:8000")
    parser.add_argument("--pidfile", default=None)
    parser.add_argument("--log-file", default=None)
    parser.add_argument("--health", default=None, help="host:port for /livez and /readyz")
    parser.add_argument("--drain-delay", type=float, default=0.0)
    parser.add_argument("--foreground", action="store_true")
    args = parser.parse_args()
    aiodaemon.run(
        main,
        pidfile=args.pidfile,
        listen={"http": args.listen},
        log_file=args.log_file,
        health=args.health,
        drain_delay=args.drain_delay,
        detach=False if args.foreground else None,
    )
