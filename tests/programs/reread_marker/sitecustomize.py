"""Mark the moment a command opens a pidfile (``*.pid``) a second time: it reads it again.

Put on ``PYTHONPATH`` by tests that must act once a command has read the
pidfile and waits to read it again (not before): it creates
``$AIODAEMON_TEST_REREAD`` at that second open.
"""

from __future__ import annotations

import os
import sys

_MARKER = os.environ.get("AIODAEMON_TEST_REREAD")
_opens: list[object] = []


def _on_open(event: str, args: tuple[object, ...]) -> None:
    if event != "open" or _MARKER is None or len(_opens) >= 2:
        return
    path = args[0]
    if not (isinstance(path, str) and path.endswith(".pid")):
        return
    _opens.append(path)
    if len(_opens) == 2:
        with open(_MARKER, "w"):
            pass


if _MARKER is not None:
    sys.addaudithook(_on_open)
