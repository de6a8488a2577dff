"""Fork while syslog records wait for a collector that is down (argv: options JSON).

Paced by "go on" lines on stdin: after the first, the records logged wait;
the process forks, and after the second (the collector is back) the parent
sends what waits, then lets the child log and close.
"""

from __future__ import annotations

import json
import os
import sys
import warnings

import structlog

from tests.programs.logchild import start_child
from tests.support import wait_for

writer = start_child()
log = structlog.get_logger()
log.info("before")
assert sys.stdin.readline() == "go on\n"
for n in range(5):
    log.info("while down", n=n)
sink: object = writer.sinks[0]
wait_for(lambda: len(getattr(sink, "backlog", ())) >= 5, 10, "the syslog backlog")
release_r, release_w = os.pipe()
# The fork with the writer thread running is the point of this program; Python
# 3.12+ warns of it (captured into the log, it would be one record more).
warnings.filterwarnings("ignore", "This process .* is multi-threaded", DeprecationWarning)
child = os.fork()
if child == 0:
    os.close(release_w)
    os.read(release_r, 1)
    log.info("from the child")
    os._exit(0 if writer.close(10) else 1)
os.close(release_r)
print("forked", flush=True)
assert sys.stdin.readline() == "go on\n"
closed = writer.close(10)
os.write(release_w, b"!")
_, status = os.waitpid(child, 0)
print(json.dumps({"closed": closed, "child": child, "status": status}), flush=True)
