"""A daemon whose stdlib records fail to format; options as JSON in argv[1].

``main`` logs a record with too few arguments for its format, one whose
message object cannot be made a string, then a good one, and returns.
"""

from __future__ import annotations

import json
import logging
import sys

import aiodaemon


class Unprintable:
    """An object whose ``__str__`` and ``__repr__`` both raise."""

    def __str__(self) -> str:
        raise RuntimeError("no str")

    def __repr__(self) -> str:
        raise RuntimeError("no repr")


async def main() -> None:
    log = logging.getLogger("shop")
    log.warning("%s logged in from %s", "ann")
    log.error(Unprintable())
    log.info("after them")


aiodaemon.run(main, **json.loads(sys.argv[1]))
