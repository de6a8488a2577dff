"""A tiny HTTP/1.1 service for upgrade tests: answers ``<VERSION> <pid>`` on every request.

Tests copy it into a temporary directory and edit ``VERSION`` and ``MODE`` on
disk between start and upgrade, so the code that runs after the upgrade is
the file's new contents. ``MODE``: "" (normal), "raise" (a startup hook
fails), "hang" (never ready), "exit" (the process dies during startup),
"slow" (startup takes half a second), "sleep<seconds>" (startup takes that
long), "block<seconds>" (startup blocks the event loop that long, having
created ``$APP_BLOCKING`` when that is set), "gate"
(startup creates ``$APP_GATE.entered``, then waits for ``$APP_GATE``),
"main-raise" / "main-return" / "main-exit" (``main`` raises, returns, or
ends the process with status 5 at once, after a ready start),
"main-raise-serving" (``main`` raises once the control socket names this
process: an upgrade's new process that began its take-over).
Started as ``python upgrade_app.py`` (options from the ``APP_*``
environment variables) or as the console script's target ``upgrade_app:main``.
"""

from __future__ import annotations

import asyncio
import os
import socket
import struct
import time

import aiodaemon

VERSION = "v1"
MODE = ""


@aiodaemon.on_startup
async def prepare() -> None:
    """Fail, hang, die or dawdle when the edited file says so."""
    if MODE == "raise":
        raise RuntimeError(f"cannot start {VERSION}")
    if MODE == "hang":
        await asyncio.Event().wait()
    if MODE == "exit":
        os._exit(3)
    if MODE == "slow":
        await asyncio.sleep(0.5)
    if MODE == "gate":
        gate = os.environ["APP_GATE"]
        with open(f"{gate}.entered", "w"):
            pass
        while not os.path.exists(gate):  # noqa: ASYNC110 (a file the test writes)
            await asyncio.sleep(0.02)
    if MODE.startswith("sleep"):
        await asyncio.sleep(float(MODE.removeprefix("sleep")))
    if MODE.startswith("block"):
        if os.environ.get("APP_BLOCKING"):
            open(os.environ["APP_BLOCKING"], "w").close()  # the loop is held from here
        time.sleep(float(MODE.removeprefix("block")))  # blocks the loop: the point


async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Answer requests until the client closes or the daemon stops accepting."""
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            body = f"{VERSION} {os.getpid()}\n".encode()
            keep = b"connection: close" not in head.lower()
            writer.write(
                b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\nconnection: %s\r\n\r\n%s"
                % (len(body), b"keep-alive" if keep else b"close", body)
            )
            await writer.drain()
            if not keep:
                break
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


def _control_peer() -> int:
    """The pid ``SO_PEERCRED`` names on the control socket (the last to listen on it)."""
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(os.environ["APP_PIDFILE"] + ".ctl")
        creds = sock.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    pid: int = struct.unpack("3i", creds)[0]
    return pid


async def main(ctx: aiodaemon.Context) -> None:
    """Serve on ``listen["http"]`` until the daemon stops."""
    if MODE == "main-raise":
        raise RuntimeError(f"main of {VERSION} failed")
    if MODE == "main-return":
        return
    if MODE == "main-exit":
        os._exit(5)
    if MODE == "main-raise-serving":
        # Checked at every loop turn: raises at the first its take-over gives away.
        while _control_peer() != os.getpid():  # noqa: ASYNC110 (no event to wait on)
            await asyncio.sleep(0)
        raise RuntimeError(f"main of {VERSION} failed while taking over")
    await ctx.start_server(handle, "http")
    await ctx.wait_stopping()


if __name__ == "__main__":
    options: dict[str, object] = {
        "pidfile": os.environ["APP_PIDFILE"],
        "listen": {"http": os.environ.get("APP_LISTEN", "127.0.0.1:0")},
        "log_file": os.environ["APP_LOG"],
        "shutdown_timeout": 10.0,
    }
    if os.environ.get("APP_USER"):
        options["user"] = os.environ["APP_USER"]
    if os.environ.get("APP_CHROOT"):
        options["chroot"] = os.environ["APP_CHROOT"]
    if os.environ.get("APP_HEALTH"):
        options["health"] = os.environ["APP_HEALTH"]
    aiodaemon.run(main, **options)  # type: ignore[arg-type]
