"""A daemon logging a value whose ``__repr__`` raises; options as JSON in argv[1].

``main`` logs ``with a broken value`` (the value, and a good one beside it),
``with a broken key`` (a dict keyed by such an object), then ``after it``, and
returns. It exits 0 only if the log calls raised nothing.
"""

from __future__ import annotations

import json
import sys

import structlog

import aiodaemon


class HalfBuilt:
    """An object whose ``__repr__`` fails, as one of a half-initialised class does."""

    def __repr__(self) -> str:
        raise AttributeError("'HalfBuilt' object has no attribute 'name'")


async def main() -> None:
    log = structlog.get_logger("shop")
    log.error("with a broken value", order=HalfBuilt(), total=42)
    log.error("with a broken key", totals={HalfBuilt(): 42})
    log.info("after it")


aiodaemon.run(main, **json.loads(sys.argv[1]))
