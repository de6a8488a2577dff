"""A reload hook that starts a helper, in a daemon busy logging when the rotation's SIGHUP comes.

Copied as app.py and started with ``aiodaemon start app:main --log-file F
--stdout O --stderr E``. SIGWINCH logs a burst of records, then sends the
daemon SIGHUP: the log writer still has the burst to write when the reload
begins. Reload number N prints ``print N`` and starts a ``sleep`` that
inherits stdout and stderr, whose pid the record ``numbered`` (``n=N``)
gives; a shutdown hook kills the helpers.
"""

from __future__ import annotations

import asyncio
import itertools
import os
import signal

import structlog

import aiodaemon

#: Records in the burst, of about 1 KB each: far more than the writer writes in
#: a loop turn, fewer than its queue holds (in number and in bytes).
BURST = 20_000
_PAYLOAD = "x" * 1000

_numbers = itertools.count(1)
_log = structlog.get_logger("app")
_helpers: list[asyncio.subprocess.Process] = []


@aiodaemon.on_signal(signal.SIGWINCH)
async def busy_then_hup() -> None:
    """A burst of records, then the rotation's SIGHUP."""
    for i in range(BURST):
        _log.info("busy", i=i, payload=_PAYLOAD)
    os.kill(os.getpid(), signal.SIGHUP)


@aiodaemon.on_reload
async def restart_helper() -> None:
    """One numbered line on stdout, and a helper writing to the same stdout and stderr."""
    n = next(_numbers)
    print(f"print {n}", flush=True)
    helper = await asyncio.create_subprocess_exec("sleep", "600")
    _helpers.append(helper)
    _log.info("numbered", n=n, helper=helper.pid)


@aiodaemon.on_shutdown
async def end_helpers() -> None:
    """The helpers end with the daemon.

    A shutdown hook, not code after ``wait_stopping()`` in ``main``: that is
    cancelled at the shutdown's step for ``main``, and a helper not yet killed
    by then outlived the daemon (docs/lifecycle.md).
    """
    for helper in _helpers:
        helper.kill()
    for helper in _helpers:
        await helper.wait()


async def main(ctx: aiodaemon.Context) -> None:
    """Wait for the stop."""
    await ctx.wait_stopping()
