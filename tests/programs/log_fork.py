"""Log, fork a child that logs and closes, then log from the parent."""

from __future__ import annotations

import json
import logging
import os

import structlog

from tests.programs.logchild import start_child

writer = start_child()
log = structlog.get_logger()
for n in range(100):
    log.info("tick", n=n)
child = os.fork()
if child == 0:
    log.info("from the child")
    logging.getLogger("x").info("stdlib from the child")
    os._exit(0 if writer.close(10) else 1)
_, status = os.waitpid(child, 0)
log.info("from the parent")
print(json.dumps({"closed": writer.close(10), "child": child, "status": status}))
