"""An async generator as an async context manager whose frames pytest leaves out.

``contextlib.asynccontextmanager`` puts a frame of its own between the test's
``async with`` line and the kit's error, which pytest prints with its source;
this one's frames say ``__tracebackhide__``, so a failing test shows its own
line and the error. The rules are ``asynccontextmanager``'s.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from types import TracebackType
from typing import Generic, TypeVar

__all__ = ["Block"]

T = TypeVar("T")


class Block(contextlib.AbstractAsyncContextManager[T], Generic[T]):
    """``async with Block(generator) as value``: the code before its ``yield`` on entry,
    the code after it (or the exception, thrown in at the ``yield``) on exit."""

    def __init__(self, generator: AsyncGenerator[T, None]) -> None:
        self._generator = generator

    async def __aenter__(self) -> T:
        __tracebackhide__ = True
        try:
            return await anext(self._generator)
        except StopAsyncIteration:
            raise RuntimeError("generator didn't yield") from None

    async def __aexit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> bool:
        __tracebackhide__ = True
        if kind is None:
            try:
                await anext(self._generator)
            except StopAsyncIteration:
                return False
            raise RuntimeError("generator didn't stop")
        if value is None:
            value = kind()
        try:
            await self._generator.athrow(value)
        except StopAsyncIteration as exc:
            # Swallowed by the generator (it returned): suppressed, unless it is
            # the very StopAsyncIteration the block raised.
            return exc is not value
        except RuntimeError as exc:
            if exc is value or (
                isinstance(value, StopIteration | StopAsyncIteration) and exc.__cause__ is value
            ):
                # Ours, or ours turned into a RuntimeError by PEP 479: not suppressed,
                # and raised again by the caller with its own traceback.
                value.__traceback__ = traceback
                return False
            raise
        except BaseException as exc:
            if exc is not value:
                raise
            exc.__traceback__ = traceback
            return False
        raise RuntimeError("generator didn't stop after athrow()")
