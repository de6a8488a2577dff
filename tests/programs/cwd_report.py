"""A daemon whose main reports its working directory and what a relative path reads there.

The report goes to the absolute path in ``CWD_REPORT``. ``main`` reads
``config.txt`` by its relative name, as a program next to its configuration
does, then ends. Run as a script, argv[1] holds ``run()``'s options as JSON;
``aiodaemon run app:main`` imports it instead.
"""

from __future__ import annotations

import json
import os
import sys

import aiodaemon


async def main() -> None:
    try:
        with open("config.txt") as f:
            config = f.read()
    except OSError as exc:
        config = type(exc).__name__
    report = os.environ["CWD_REPORT"]
    with open(report + ".tmp", "w") as f:
        json.dump({"cwd": os.getcwd(), "config": config}, f)
    os.rename(report + ".tmp", report)


if __name__ == "__main__":
    aiodaemon.run(main, **json.loads(sys.argv[1]))
