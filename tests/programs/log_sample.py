"""Start logging with the options in argv[1] (JSON) and log one record of each kind."""

from __future__ import annotations

import json
import logging
import sys

import structlog

from aiodaemon._logs._logging import start_logging
from aiodaemon._prefork._config import parse_options
from aiodaemon._prefork._logsinks import open_log_targets

options = parse_options(json.loads(sys.argv[1]))
writer = start_logging(open_log_targets(options), options, detached=False)
log = structlog.get_logger()
structlog.contextvars.bind_contextvars(request_id="r-1")
log.info("from structlog", answer=42)
logging.getLogger("x").warning("from %s", "stdlib", extra={"user": "ann"})
try:
    raise ZeroDivisionError("division by zero")
except ZeroDivisionError:
    log.exception("failure")
log.warning("careful", level_of_care="high")
writer.close(10)
