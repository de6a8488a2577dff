"""structlog and stdlib records, with context and exceptions, into one file."""

from __future__ import annotations

import json
import logging
import os

import structlog

from tests.programs.logchild import start_child

writer = start_child()
log = structlog.get_logger()
structlog.contextvars.bind_contextvars(request_id="r-1")
log.info("from structlog", answer=42)
logging.getLogger("x").warning("from %s", "stdlib", extra={"user": "ann"})
logging.getLogger("asyncio").error("asyncio says hi")
try:
    1 / 0  # noqa: B018
except ZeroDivisionError:
    log.exception("structlog failure")
    logging.getLogger("x").exception("stdlib failure")
print(json.dumps({"closed": writer.close(10), "pid": os.getpid()}))
