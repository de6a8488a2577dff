"""100,000 numbered records in a burst, then close."""

from __future__ import annotations

import json

import structlog

from tests.programs.logchild import start_child

writer = start_child()
log = structlog.get_logger()
for n in range(100_000):
    log.info("tick", n=n)
print(json.dumps({"closed": writer.close(30), "dropped": writer.dropped}))
