"""Log into a stalled sink; once told "go on" (stdin), log once more and close."""

from __future__ import annotations

import json
import sys

import structlog

from tests.programs.logchild import stall, start_child

writer = start_child()
log = structlog.get_logger()
stall(log, writer)
assert sys.stdin.readline() == "go on\n"
log.info("after the stall")
print(json.dumps({"closed": writer.close(30), "dropped": writer.dropped}), flush=True)
