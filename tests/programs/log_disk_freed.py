"""Space comes back on a full disk between two writes of the log writer.

argv[1]: the options (a ``log_file`` on a tiny tmpfs); argv[2]: a file on that
disk to fill it with. Once armed, the log file's sink removes that file right
after a write of its fails, before the writer's next write: the moment a disk
frees up (another process deleting a file) that fell between the ``log
records lost`` notice and the records after it. Prints the sink's loss count.
"""

from __future__ import annotations

import errno
import json
import os
import sys
from collections.abc import Sequence
from typing import cast

import structlog

from aiodaemon._prefork._logsinks import FileSink, Record
from tests.programs.logchild import start_child
from tests.support import wait_for

writer = start_child()
filler = sys.argv[2]
log = structlog.get_logger()


class FreedAfterAFailure(FileSink):
    """The real file sink; armed, its next failed write removes ``filler``."""

    armed = False

    def write(self, records: Sequence[Record]) -> None:
        try:
            super().write(records)
        except OSError:
            if self.armed:
                self.armed = False
                os.unlink(filler)
            raise


[opened] = writer.sinks
assert isinstance(opened, FileSink)
opened.__class__ = FreedAfterAFailure
sink = cast(FreedAfterAFailure, opened)
fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o600)
try:
    while True:
        os.write(fd, b"\0" * 4096)
except OSError as exc:
    if exc.errno != errno.ENOSPC:
        raise
finally:
    os.close(fd)
log.info("tick", n=0)
wait_for(lambda: sink.lost == 1, 10, "the writer thread to lose tick 0")
sink.armed = True
log.info("tick", n=1)
wait_for(lambda: not os.path.exists(filler), 10, "the writer thread to free the disk")
log.info("tick", n=2)
print(json.dumps({"closed": writer.close(10), "lost": sink.lost}), flush=True)
