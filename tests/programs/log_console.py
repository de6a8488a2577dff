"""One record with a key, for the console renderer on a terminal."""

from __future__ import annotations

import structlog

from tests.programs.logchild import start_child

writer = start_child()
log = structlog.get_logger()
log.info("hello console", answer=42)
writer.close(10)
