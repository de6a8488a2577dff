"""Records below and at the level, through both APIs."""

from __future__ import annotations

import json
import logging

import structlog

from tests.programs.logchild import start_child

writer = start_child()
log = structlog.get_logger()
log.info("quiet")
logging.getLogger("x").info("quiet")
log.warning("loud")
logging.getLogger("x").warning("loud")
print(json.dumps({"closed": writer.close(10)}))
