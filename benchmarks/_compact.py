"""The smallest daemonizer with aiodaemon's start-up shape: the reference row of ``detach.py``.

What any library must pay to start a daemon the way DESIGN asks, with nothing
else: fork, ``setsid``, fork; stdio to ``/dev/null``; inherited descriptors
closed with ``close_range``; a readiness pipe the launcher waits on; structlog
rendering JSON to a writer thread; a uvloop loop with SIGTERM, SIGINT and SIGHUP
handlers. No validation, no pidfile, no reload, no shutdown sequence, no error
reporting. ``detach.py --startup`` puts it between the floor and aiodaemon: the
gap to the floor is the cost of the start-up's shape, the gap to aiodaemon
what aiodaemon's own code adds.

Imports nothing at module level: whatever it needs is paid inside :func:`run`,
as a library's import would be.
"""

from __future__ import annotations

import os

# Not typing's TYPE_CHECKING: the import would be counted against this contender.
TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable, Coroutine
    from typing import Any, NoReturn


def run(main: Callable[[], Coroutine[Any, Any, None]]) -> NoReturn:
    """Daemonize, run ``main`` on uvloop, and release the launcher once it started."""
    import asyncio
    import collections
    import gc
    import signal
    import threading

    import structlog
    import uvloop

    read_fd, write_fd = os.pipe2(os.O_CLOEXEC)
    gc.freeze()
    gc.disable()
    if os.fork():
        os.close(write_fd)
        verdict = os.read(read_fd, 64)
        os._exit(0 if verdict.startswith(b"R") else 1)
    os.close(read_fd)
    os.setsid()
    if os.fork():
        os._exit(0)
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    os.closerange(3, write_fd)
    os.closerange(write_fd + 1, 2**31 - 1)
    os.chdir("/")
    os.umask(0o022)

    queue: collections.deque[bytes] = collections.deque()
    wakeup = threading.Event()

    def write_lines() -> None:
        while True:
            wakeup.wait()
            wakeup.clear()
            while queue:
                os.write(2, queue.popleft())

    threading.Thread(target=write_lines, daemon=True).start()

    class QueueLogger:
        def msg(self, line: str) -> None:
            queue.append(line.encode() + b"\n")
            wakeup.set()

        info = error = msg

    structlog.configure(
        processors=[
            structlog.processors.add_log_level,
            structlog.processors.TimeStamper(fmt="iso", utc=True),
            structlog.processors.JSONRenderer(),
        ],
        logger_factory=lambda *args: QueueLogger(),
        cache_logger_on_first_use=True,
    )
    log = structlog.get_logger()
    loop = uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    stop = asyncio.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    loop.add_signal_handler(signal.SIGHUP, lambda: None)

    async def live() -> None:
        log.info("starting")
        task = loop.create_task(main())
        os.write(write_fd, b"R\n")
        os.close(write_fd)
        gc.unfreeze()
        gc.enable()
        log.info("ready")
        await stop.wait()
        task.cancel()

    loop.run_until_complete(live())
    os._exit(0)
