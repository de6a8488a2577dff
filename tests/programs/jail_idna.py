"""A TARGET whose main writes a non-ASCII host name as the idna codec encodes it.

What ``socket.getaddrinfo`` and asyncio's connections do with a ``str`` host;
the codec looks up ``punycode`` for each non-ASCII label, at its first use.
"""

from __future__ import annotations

import sys


async def main() -> None:
    """Write the encoded name on stdout."""
    sys.stdout.write("bücher.example".encode("idna").decode() + "\n")
