"""A CLI target that logs one long record of non-ASCII text, then returns.

``aiodaemon run syslog_long_text:main --syslog WHERE``: the record is longer
than a syslog message, so it arrives in parts; its text is characters of two,
three and four bytes in UTF-8, so a part cut at a byte count would split one.
"""

from __future__ import annotations

import structlog

#: Repeated to about 45 KB of UTF-8: six parts, and cuts that fall inside characters.
TEXT = "é€😀" * 5000


async def main() -> None:
    """Log the record and return (the daemon then exits 0)."""
    structlog.get_logger("long").info("long text", text=TEXT)
