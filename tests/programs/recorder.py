"""What the foreground runtime programs share: options from argv[1], a record file in argv[2]."""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Callable
from typing import Any

import aiodaemon


def record(line: str) -> None:
    """Append ``line`` to the record file the test reads."""
    with open(sys.argv[2], "a") as f:
        f.write(line + "\n")


def wait_for_file(path: str, timeout: float = 30.0) -> None:
    """Hold this process until the test creates ``path`` (a go-ahead), at most ``timeout`` s.

    A poll, not an event: it runs where no event loop turns (at exit, inside the
    forced exit), and Python signal handlers must still run between its steps.
    """
    deadline = time.monotonic() + timeout
    while not os.path.exists(path) and time.monotonic() < deadline:
        time.sleep(0.01)


def until(done: Callable[[], bool], what: str, limit: float = 30.0) -> None:
    """Poll ``done`` until it holds; past ``limit`` seconds, end the program saying ``what``."""
    deadline = time.monotonic() + limit
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.01)


def run(main: Callable[..., Any] | Any) -> None:
    """aiodaemon.run(main) with the options the test passed as JSON."""
    options: dict[str, Any] = json.loads(sys.argv[1])
    aiodaemon.run(main, **options)
