"""A minimal foreground daemon that prints each string its start compiled, once ready.

A string compiled at import is paid at every start of every daemon: a
``TypeVar``'s string bound or a ``typing.NamedTuple``'s string annotation
becomes a ``typing.ForwardRef`` (~0.2 M instructions each), for type checkers
alone. ``collections.namedtuple``'s constructor is the one compile expected.
"""

from __future__ import annotations

# asyncio, uvloop, structlog, orjson: the floor, which any program on this
# stack imports, loaded before the audit starts: not aiodaemon's cost.
import asyncio  # noqa: F401
import os
import sys

import orjson  # noqa: F401
import structlog  # noqa: F401
import uvloop  # noqa: F401

compiled: list[str] = []


def _audit(event: str, args: tuple[object, ...]) -> None:
    source = args[0] if args else None
    if event == "compile" and isinstance(source, str | bytes):
        text = source.decode() if isinstance(source, bytes) else source
        if not text.startswith("lambda _cls, "):  # collections.namedtuple's __new__
            compiled.append(" ".join(text.split())[:120])


sys.addaudithook(_audit)

import aiodaemon  # noqa: E402


async def main() -> None:
    """Report what the start compiled, then return (exit 0)."""
    os.write(1, "".join(f"{source}\n" for source in compiled).encode())


aiodaemon.run(main, detach=False)
