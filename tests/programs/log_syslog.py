"""Syslog across a server restart, paced by "go on" lines on stdin.

argv: options JSON, the size of the first record's blob, the transport.
"""

from __future__ import annotations

import json
import logging
import os
import sys

import structlog

from tests.programs.logchild import start_child
from tests.support import wait_for

writer = start_child()
log = structlog.get_logger()
log.info("first", blob="x" * int(sys.argv[2]))
logging.getLogger("x").error("stdlib error")
assert sys.stdin.readline() == "go on\n"
log.info("while it is down")
# The writer tried, failed, and keeps the message for after the restart (UDP
# too: on loopback the ICMP "port unreachable" is back before send() returns).
sink: object = writer.sinks[0]
wait_for(lambda: getattr(sink, "backlog", None), 10, "the syslog backlog")
print("logged while down", flush=True)
assert sys.stdin.readline() == "go on\n"
log.warning("after the restart")
print(json.dumps({"closed": writer.close(10), "pid": os.getpid()}), flush=True)
