"""Two records and a close, with no target configured (they go to stderr)."""

from __future__ import annotations

import logging

import structlog

from tests.programs.logchild import start_child

writer = start_child()
log = structlog.get_logger()
log.info("to stderr")
logging.getLogger("x").info("stdlib to stderr")
writer.close(10)
