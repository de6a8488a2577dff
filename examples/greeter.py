"""A tiny HTTP daemon whose greeting is reloaded from a file (the testing kit's example).

    echo hello > /tmp/greeting.txt     # read at startup too: a missing file fails the start
    GREETER_FILE=/tmp/greeting.txt .venv/bin/python examples/greeter.py \\
        --listen 127.0.0.1:8080 --pidfile /tmp/greeter.pid
    python3 -c "import urllib.request; print(urllib.request.urlopen('http://127.0.0.1:8080/').read())"
    echo howdy > /tmp/greeting.txt && .venv/bin/aiodaemon reload --pidfile /tmp/greeter.pid
    .venv/bin/aiodaemon stop --pidfile /tmp/greeter.pid

Also a CLI target: ``aiodaemon start examples.greeter:main --listen http=127.0.0.1:8080``.
A reload rereads ``$GREETER_FILE``; an empty file fails the reload (``aiodaemon reload``
exits 1 with the error) and the old greeting stays.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os

import structlog

import aiodaemon

log = structlog.get_logger("greeter")
greeting = "hello"


def read_greeting() -> str:
    """The greeting in ``$GREETER_FILE``; "hello" when the variable is unset."""
    path = os.environ.get("GREETER_FILE")
    if path is None:
        return "hello"
    with open(path, encoding="utf-8") as f:
        text = f.read().strip()
    if not text:
        raise ValueError(f"{path} is empty")
    return text


@aiodaemon.on_startup
@aiodaemon.on_reload
async def load_greeting() -> None:
    """Read the greeting at startup and on every reload."""
    global greeting
    greeting = read_greeting()
    log.info("greeting loaded", greeting=greeting)


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer one HTTP/1.1 request with the greeting, then close."""
    try:
        request = await reader.readuntil(b"\r\n\r\n")
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError):
        writer.close()
        return
    path = request.split(b" ", 2)[1] if request.count(b" ") >= 2 else b"/"
    if path == b"/":
        status, body = b"200 OK", f"{greeting}\n".encode()
    else:
        status, body = b"404 Not Found", b"not found\n"
    writer.write(
        b"HTTP/1.1 " + status + b"\r\nContent-Type: text/plain\r\nConnection: close\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    with contextlib.suppress(ConnectionError):  # the client left first: nothing to do
        await writer.drain()
    writer.close()


@aiodaemon.on_startup
async def serve(ctx: aiodaemon.Context) -> None:
    """Serve HTTP on the framework-owned socket named ``http``.

    In a startup hook (after ``load_greeting``), so a server that cannot start
    fails the start instead of killing a daemon already reported ready.
    """
    await ctx.start_server(handle, "http")


async def main(ctx: aiodaemon.Context) -> None:
    """Run until shutdown: the server started by ``serve`` does the work."""
    await ctx.wait_stopping()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=(__doc__ or "").split("\n", 1)[0])
    parser.add_argument("--listen", default="127.0.0.1:8080")
    parser.add_argument("--pidfile", default="/tmp/aiodaemon-greeter.pid")
    parser.add_argument("--log-file", default="/tmp/aiodaemon-greeter.jsonl")
    args = parser.parse_args()
    aiodaemon.run(main, pidfile=args.pidfile, listen={"http": args.listen}, log_file=args.log_file)
