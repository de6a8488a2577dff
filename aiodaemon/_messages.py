"""One-line messages for the terminal: what every error the user sees goes through."""

from __future__ import annotations

import sys

__all__ = ["printable", "say"]


def printable(text: str) -> str:
    """``text`` with control characters escaped: a message stays one line on a terminal."""
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in text)


def say(message: str) -> None:
    """Print ``aiodaemon: message`` as one line on stderr."""
    print(printable(f"aiodaemon: {message}"), file=sys.stderr, flush=True)
