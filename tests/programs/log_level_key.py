"""Records whose own keys are named like a line's leading columns (a tank's ``level``)."""

from __future__ import annotations

import json
import logging

import structlog

from tests.programs.logchild import start_child

writer = start_child()
log = structlog.get_logger()
log.info("tank filled", level=0.5)
log.error("tank empty", level=0)
structlog.contextvars.bind_contextvars(level="debug")
log.warning("bound level")
structlog.contextvars.clear_contextvars()
logging.getLogger("pump").info("pump started", extra={"level": "critical"})
log.info("reading", pid=4242, timestamp="yesterday", logger="db", user_pid="kept")
print(json.dumps({"closed": writer.close(10)}))
