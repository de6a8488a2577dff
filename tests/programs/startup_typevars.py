"""Print the source of each string a ``TypeVar`` compiles while aiodaemon is imported.

A string bound is compiled into a ``typing.ForwardRef`` (~0.2 M instructions)
at every import, so at every start of every daemon, for type checkers alone.
"""

from __future__ import annotations

import os
import sys
import types

compiled: list[str] = []


def _under_typevar(frame: types.FrameType | None) -> bool:
    while frame is not None:
        if frame.f_code.co_qualname == "TypeVar.__init__":
            return True
        frame = frame.f_back
    return False


def _audit(event: str, args: tuple[object, ...]) -> None:
    if event == "compile" and _under_typevar(sys._getframe(1)):
        source = args[0]
        compiled.append(source.decode() if isinstance(source, bytes) else repr(source))


sys.addaudithook(_audit)

import aiodaemon  # noqa: E402

# The package loads its parts lazily (PEP 562): what a daemon's start loads.
for name in aiodaemon.__all__:
    getattr(aiodaemon, name)

os.write(1, "".join(f"{source}\n" for source in compiled).encode())
