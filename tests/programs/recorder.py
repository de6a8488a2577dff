"""What the foreground runtime programs share: options from argv[1], a record file in argv[2]."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from typing import Any

import aiodaemon


def record(line: str) -> None:
    """Append ``line`` to the record file the test reads."""
    with open(sys.argv[2], "a") as f:
        f.write(line + "\n")


def run(main: Callable[..., Any] | Any) -> None:
    """aiodaemon.run(main) with the options the test passed as JSON."""
    options: dict[str, Any] = json.loads(sys.argv[1])
    aiodaemon.run(main, **options)
