"""Log into a stalled sink, then time a close that must give up."""

from __future__ import annotations

import json
import time

import structlog

from tests.programs.logchild import stall, start_child

writer = start_child()
log = structlog.get_logger()
stall(log, writer)
start = time.monotonic()
closed = writer.close(0.5)
print(json.dumps({"closed": closed, "close_seconds": time.monotonic() - start}))
