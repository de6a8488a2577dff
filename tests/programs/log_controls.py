"""A daemon that logs control characters a client could have sent; options as JSON in argv[1].

``main`` logs one warning whose event, key, value and exception message each
hold an escape sequence (and the event a carriage return and a newline), a
stdlib record whose ``extra=`` key is an int, then returns.
"""

from __future__ import annotations

import json
import logging
import sys
from typing import Any

import structlog

import aiodaemon

#: A request path as a hostile client sends it: a terminal title, a clear screen, a forged line.
PATH = "/\x1b]0;owned\x07\x1b[2J\rfake\nline"


async def main() -> None:
    log = structlog.get_logger("web")
    try:
        raise ValueError(f"no route {PATH}")
    except ValueError:
        log.exception(f"GET {PATH}", path=PATH, **{"x\x1b[31m": "red\x1b[0m"})
    # The stdlib types extra= as str keys, yet stores any key it is given.
    int_key: dict[Any, str] = {404: "not found"}
    logging.getLogger("web").warning("odd key", extra=int_key)


aiodaemon.run(main, **json.loads(sys.argv[1]))
