"""A daemon whose process is held after its pidfile is gone, until the test lets it end.

argv: options (JSON), the record file, the go-ahead file's path, then where it
is held: ``atexit`` (an ``atexit`` function, among the interpreter's last
steps) or ``after_run`` (the program's own work once ``run()`` has ended).
Records ``held`` once it waits there.
"""

from __future__ import annotations

import asyncio
import atexit
import sys

from tests.programs.recorder import record, run, wait_for_file

GO, WHERE = sys.argv[3], sys.argv[4]


def held() -> None:
    record("held")
    wait_for_file(GO)


async def main() -> None:
    await asyncio.Event().wait()


if WHERE == "atexit":
    atexit.register(held)
try:
    run(main)
except SystemExit:
    if WHERE != "after_run":
        raise
    held()
