"""A TCP echo server run as a daemon by aiodaemon.

    .venv/bin/python examples/echo.py --pidfile /tmp/echo.pid --listen 127.0.0.1:8007 \\
        --log-file /tmp/echo.jsonl
    bash -c 'exec 3<>/dev/tcp/127.0.0.1/8007; echo hello >&3; head -n1 <&3'   # -> hello
    .venv/bin/aiodaemon stop --pidfile /tmp/echo.pid

(from a checkout, with the README's ``.venv``). Also a CLI target:
``aiodaemon start examples.echo:main --listen echo=127.0.0.1:8007``.
The listening socket is the framework's (``listen={"echo": ...}``), so it is bound
before the detach, taken from systemd under socket activation, and survives a
privilege drop; ``ctx.start_server`` serves it and drains it at shutdown, with no
bookkeeping of our own. It is started in a startup hook, so that a server that
cannot start (a ``--listen`` name other than ``echo``) fails the start: ``main``
runs only once the daemon is ready, when ``start`` has already exited 0.
"""

from __future__ import annotations

import argparse
import asyncio

import structlog

import aiodaemon

log = structlog.get_logger("echo")


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo every chunk back until the client closes (or the daemon stops)."""
    try:
        # At shutdown an idle connection reads end-of-stream, so the loop ends.
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


@aiodaemon.on_startup
async def serve(ctx: aiodaemon.Context) -> None:
    """Serve on the framework-owned socket named ``echo``, before the daemon is ready.

    ``ctx.start_server`` tracks the connections: on SIGTERM the daemon stops
    accepting, lets every echo being written finish, then exits. A connection
    that is idle at that moment (its last echo sent, nothing read yet) is
    closed, so a client whose next line crossed the close gets no echo for it:
    a plain TCP protocol cannot tell that line from a lost one, and a client
    meant to survive restarts sends it again on a new connection, as HTTP
    clients do on keep-alive.
    """
    await ctx.start_server(handle, "echo")
    address = ctx.sockets["echo"].getsockname()
    if isinstance(address, tuple):  # (host, port), plus flow info and scope for IPv6
        log.info("serving", host=address[0], port=address[1])
    else:  # a unix socket's path
        log.info("serving", path=address)


async def main(ctx: aiodaemon.Context) -> None:
    """Run until shutdown: the server started by ``serve`` does the work."""
    await ctx.wait_stopping()


def cli() -> None:
    """Parse a few flags and hand over to aiodaemon.run()."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n")[0])
    parser.add_argument("--listen", default="127.0.0.1:8007", help="host:port to serve on")
    parser.add_argument("--pidfile", default="/tmp/aiodaemon-echo.pid")
    parser.add_argument("--log-file", default="/tmp/aiodaemon-echo.jsonl")
    parser.add_argument("--foreground", action="store_true", help="do not detach")
    args = parser.parse_args()
    aiodaemon.run(
        main,
        pidfile=args.pidfile,
        listen={"echo": args.listen},
        log_file=args.log_file,
        detach=False if args.foreground else None,
    )


if __name__ == "__main__":
    cli()
