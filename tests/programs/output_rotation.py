"""Prints and logs one numbered line at each reload, for the stdout/stderr rotation tests.

Copied as app.py and started with ``aiodaemon start app:main --stdout F --stderr G``
(no log file: its records go to the stderr file). Reload number N prints
``print N`` on stdout and logs the record ``numbered`` with ``n=N``.
"""

from __future__ import annotations

import itertools

import structlog

import aiodaemon

_numbers = itertools.count(1)
_log = structlog.get_logger("app")


@aiodaemon.on_reload
async def numbered() -> None:
    """One numbered line on stdout and one in the log."""
    n = next(_numbers)
    print(f"print {n}", flush=True)
    _log.info("numbered", n=n)


async def main(ctx: aiodaemon.Context) -> None:
    """Wait for the stop."""
    await ctx.wait_stopping()
