"""Attributes of every kind a TARGET may name by mistake, for tests/test_fuzz_targets.py."""

from __future__ import annotations

import importlib
from collections.abc import AsyncIterator
from typing import Any

number = 5


async def stream() -> AsyncIterator[int]:
    """An async generator function: not a main."""
    yield 1


async def two(first: object, second: object) -> None:
    """Too many arguments for a main."""


class Broken:
    """An object whose ``main`` fails when read."""

    @property
    def main(self) -> Any:
        raise RuntimeError("broken property")


broken = Broken()


async def idle() -> None:
    """A main, for ``coroutine``."""


def __getattr__(name: str) -> Any:
    """PEP 562, as a lazy-loading package does it: ``lazy*`` imports a backend that is missing.

    ``coroutine`` is ``main()`` where ``main`` was meant, made when read (one
    made at import would warn, never awaited, wherever the module is used).
    """
    if name == "coroutine":
        return idle()
    if name.startswith("lazy"):
        return importlib.import_module("aiodaemon_no_such_backend").main
    raise AttributeError(name)
