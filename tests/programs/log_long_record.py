"""Logs one record longer than a page at each reload, for the tests of records cut short.

Copied as app.py and started with ``aiodaemon start app:main --log-file F``
(or ``--stderr F`` without a log file: its records go there). Reload number N
logs ``long`` with ``n=N``: a full tmpfs takes what fits in the file's last
page and refuses the rest, leaving the file inside a record.
"""

from __future__ import annotations

import itertools

import structlog

import aiodaemon

_numbers = itertools.count(1)
_log = structlog.get_logger("app")


@aiodaemon.on_reload
async def long_record() -> None:
    """One record of ~6 KB."""
    _log.info("long", n=next(_numbers), pad="x" * 6000)


async def main(ctx: aiodaemon.Context) -> None:
    """Wait for the stop."""
    await ctx.wait_stopping()
