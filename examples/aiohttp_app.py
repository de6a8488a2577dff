"""An aiohttp application served by aiodaemon, drained on SIGTERM, upgraded without downtime.

The application is an ordinary ``aiohttp.web.Application``; only the way it is
started changes. Instead of ``web.run_app`` (which binds its own socket and
installs its own SIGTERM handler), a lifespan serves it on the socket
aiodaemon bound (``listen=``, or the one systemd passed), ``ctx.track`` closes
its listening socket when the daemon stops accepting, and the lifespan's exit
cleans the runner up:

* the daemon is ready (``aiodaemon start`` returns, ``READY=1``, ``/readyz``
  200) once the application's own ``on_startup`` has run and it serves;
* on SIGTERM ``/readyz`` says 503 at once, the application keeps serving for
  ``--drain-delay`` seconds, then its runner stops accepting (new connections
  are refused) and every request in flight gets its full answer (within most
  of ``--shutdown-timeout``, see ``cleanup_budget``) before the shutdown hooks
  registered before ``serve`` run;
* ``aiodaemon reload`` (SIGHUP) rereads the greeting file;
* ``aiodaemon upgrade`` starts the program anew from disk on the same socket and
  the old process drains, with no failed request;
* aiohttp's own records (``aiohttp.access``, ``aiohttp.server``) are stdlib
  logging: they land in the daemon's JSON log with the rest.

    aiodaemon start examples.aiohttp_app:main --pidfile /tmp/web.pid \\
        --listen http=127.0.0.1:8080 --health 127.0.0.1:8081 --log-file /tmp/web.jsonl
    curl http://127.0.0.1:8080/
    aiodaemon upgrade --pidfile /tmp/web.pid
    aiodaemon stop --pidfile /tmp/web.pid
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass

import structlog
from aiohttp import web

import aiodaemon

log = structlog.get_logger("aiohttp_app")

#: The file ``aiodaemon reload`` rereads the greeting from (none: "hello").
GREETING_FILE = os.environ.get("GREETING_FILE")


@dataclass
class Settings:
    """What a reload changes (a started aiohttp application is frozen: no new keys)."""

    greeting: str = "hello"


settings = Settings()
SETTINGS = web.AppKey("settings", Settings)


def read_greeting() -> str:
    """The greeting: the first line of GREETING_FILE, or "hello" without one."""
    if GREETING_FILE is None:
        return "hello"
    with open(GREETING_FILE, encoding="utf-8") as f:
        return f.readline().strip()


async def hello(request: web.Request) -> web.Response:
    """GET /: the greeting and the pid of the process that answered."""
    return web.Response(text=f"{request.app[SETTINGS].greeting} from {os.getpid()}\n")


async def slow(request: web.Request) -> web.Response:
    """GET /slow?seconds=S: answers after S seconds (a request in flight at a stop)."""
    seconds = float(request.query.get("seconds", "1"))
    log.info("slow request", seconds=seconds)
    await asyncio.sleep(seconds)
    return web.Response(text=f"slept {seconds} in {os.getpid()}\n")


async def on_startup(app: web.Application) -> None:
    """The application's own startup (a database pool, say): it runs before ready."""
    log.info("application startup")


async def on_cleanup(app: web.Application) -> None:
    """The application's own cleanup: it runs once the requests in flight are answered."""
    log.info("application shutdown")


def make_app() -> web.Application:
    """The application, as it would be written for ``web.run_app``."""
    app = web.Application()
    app[SETTINGS] = settings
    app.add_routes([web.get("/", hello), web.get("/slow", slow)])
    app.on_startup.append(on_startup)
    app.on_cleanup.append(on_cleanup)
    return app


#: Seconds a connection accepted just before the stop has to send its request.
FIRST_REQUEST_GRACE = 0.5
#: Of aiodaemon's budget after the grace, the part kept from aiohttp's two
#: waits: for the application's on_cleanup and aiodaemon's last steps.
CLEANUP_SHARE = 0.2
#: aiohttp rounds a deadline further away than this up to a whole second.
_AIOHTTP_CEIL_THRESHOLD = 5.0
#: Loop turns from an accept to its connection's handler (see StopAccepting.close).
_TURNS_TO_A_HANDLER = 3


class StopAccepting:
    """What ``ctx.track`` closes when the daemon stops accepting: the runner's sites.

    Their listening socket is closed: new connections are refused. The runner's
    ``cleanup()``, which waits for the requests in flight, is the lifespan's
    exit (:func:`serve`): it runs among the shutdown hooks, which have what is
    left of the whole ``shutdown_timeout``, where what ``ctx.track`` closes has
    half of it. ``cleanup()`` closes at once every connection that has no
    request yet, also one accepted an instant before whose request is still on
    its way (an upgrade's cut-over, under load): so the requests on their way
    get a moment to arrive first.
    """

    def __init__(self, runner: web.AppRunner, grace: float = FIRST_REQUEST_GRACE) -> None:
        self.runner = runner
        self.grace = grace

    async def close(self) -> None:
        for site in self.runner.sites:
            await site.stop()
        # A connection accepted in the turn the site stopped is not among the
        # connections yet: its protocol is made a loop turn later (asyncio: two),
        # and its handler starts one more turn on. Counted before that, it got no
        # grace, and cleanup() marked it closing before its handler began: the
        # handler then waited for a request aiohttp drops, unanswered for the
        # runner's whole shutdown_timeout.
        for _ in range(_TURNS_TO_A_HANDLER):
            await asyncio.sleep(0)
        server = self.runner.server
        if server is not None and server.connections:
            await asyncio.sleep(self.grace)


def cleanup_budget(shutdown_timeout: float) -> tuple[float, float]:
    """The grace and the runner's ``shutdown_timeout``: most of aiodaemon's budget.

    After the grace (aiodaemon's step 3), the runner's cleanup runs among the
    shutdown hooks: the application's ``on_shutdown``; then aiohttp waits its
    ``shutdown_timeout`` for the requests in flight, and as long again for
    the handlers whose request it cancelled (a handler that does not read its
    request, awaiting something else, runs on through both waits), then
    cancels what still runs; then ``on_cleanup``. So a request in flight has
    twice the runner's timeout: 80% of the budget after the grace, the
    rest kept for ``on_cleanup`` and aiodaemon's last steps. A short budget
    shortens the grace too.

    Args:
        shutdown_timeout: aiodaemon's, in seconds (positive).

    Returns:
        ``(grace, runner_timeout)`` in seconds, both positive (aiohttp reads 0 as
        "wait for ever").
    """
    grace = min(FIRST_REQUEST_GRACE, shutdown_timeout / 8)
    wait = (shutdown_timeout - grace) * (1 - CLEANUP_SHARE) / 2
    if wait > _AIOHTTP_CEIL_THRESHOLD:
        # Each wait may end up to a second late: taken off, not over the budget.
        wait = max(_AIOHTTP_CEIL_THRESHOLD, wait - 1)
    return grace, wait


@aiodaemon.lifespan
async def serve(ctx: aiodaemon.Context) -> AsyncIterator[None]:
    """Serve the application on the daemon's ``http`` socket; ready once it serves.

    At a stop the sites close first (step 3, :class:`StopAccepting`), then the
    exit below answers the requests in flight and cleans up (step 4).
    """
    settings.greeting = read_greeting()
    app = make_app()
    grace, runner_timeout = cleanup_budget(ctx.options.shutdown_timeout)
    runner = web.AppRunner(app, shutdown_timeout=runner_timeout)
    await runner.setup()  # the application's on_startup runs here, before ready
    try:
        ctx.track(StopAccepting(runner, grace))
        # backlog: aiohttp's default (128) would shrink the backlog aiodaemon listened with.
        site = web.SockSite(runner, ctx.sockets["http"], backlog=socket.SOMAXCONN)
        await site.start()
    except BaseException:
        await runner.cleanup()  # a lifespan's exit runs only after its setup succeeded
        raise
    yield
    # Requests in flight answered (or cut by aiohttp at runner_timeout),
    # on_shutdown, on_cleanup: before the shutdown hooks registered earlier.
    await runner.cleanup()


@aiodaemon.on_reload
async def reread_greeting() -> None:
    """SIGHUP or ``aiodaemon reload``: a new greeting, for the requests that follow."""
    settings.greeting = read_greeting()
    log.info("greeting changed", greeting=settings.greeting)


async def main(ctx: aiodaemon.Context) -> None:
    """The application runs on its own; ``main`` waits for the stop."""
    await ctx.wait_stopping()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description="an aiohttp application under aiodaemon")
    parser.add_argument("--listen", default="127.0.0.1:8080")
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
