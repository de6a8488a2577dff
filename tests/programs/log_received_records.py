"""A daemon that logs stdlib records made earlier elsewhere, as a QueueListener hands them on.

Records from multiprocessing workers (through a queue) or from a
``SocketHandler`` (rebuilt with ``makeLogRecord``) reach the daemon's handlers
later than they were made; each carries its own ``created``. argv[1]: the
options as JSON (``log_file`` or ``syslog``).
"""

from __future__ import annotations

import json
import logging
import logging.handlers
import queue
import sys

import aiodaemon

#: (``created``, message, arguments): the third one's arguments do not fit its message,
#: the last two have no ``created`` a timestamp can show.
RECORDS = [
    (1_000_000_000.25, "a quarter past", ()),
    (1_000_000_000.9999996, "just before the next second", ()),
    (1_000_000_003.5, "%s and %s", ("one",)),
    (-50_000_000_000.0, "before the year 1000", ()),
    ("yesterday", "no time at all", ()),
    (1e300, "past the year 9999", ()),
]


async def main() -> None:
    received: queue.SimpleQueue[logging.LogRecord] = queue.SimpleQueue()
    for created, msg, args in RECORDS:
        received.put(
            logging.makeLogRecord(
                {
                    "name": "worker",
                    "levelno": logging.WARNING,
                    "levelname": "WARNING",
                    "msg": msg,
                    "args": args,
                    "created": created,
                }
            )
        )
    listener = logging.handlers.QueueListener(received, *logging.getLogger().handlers)
    listener.start()
    listener.stop()


aiodaemon.run(main, detach=False, **json.loads(sys.argv[1]))
