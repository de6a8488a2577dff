"""Lifecycle hooks and ``main``: what users hand us, checked when they hand it."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable, Coroutine
from typing import TYPE_CHECKING, Any, TypeAlias

if TYPE_CHECKING:
    from ._context import Context

__all__ = ["HookFunction", "MainTarget", "call_async", "check_hook", "describe"]

#: An async function taking no argument or one Context.
HookFunction: TypeAlias = Callable[..., Awaitable[Any]]
#: What ``run()`` accepts as ``main``.
MainTarget: TypeAlias = HookFunction | Coroutine[Any, Any, Any]


def check_hook(fn: object, what: str = "hook") -> None:
    """Refuse anything that is not an async function of zero or one argument.

    Raises:
        TypeError: at decoration time, so a sync hook never reaches a running daemon.
    """
    if not callable(fn) or not inspect.iscoroutinefunction(fn):
        raise TypeError(f"{what} must be an async function (async def), not {fn!r}")
    _wants_context(fn, what)


def _wants_context(fn: Callable[..., object], what: str) -> bool:
    try:
        params = inspect.signature(fn).parameters.values()
    except (TypeError, ValueError):
        return False
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    required = [p for p in positional if p.default is p.empty]
    variadic = any(p.kind is p.VAR_POSITIONAL for p in params)
    if len(required) > 1:
        raise TypeError(f"{what} {describe(fn)} must take no argument or one Context")
    # Only a required parameter receives the context: ``def hook(name=name)``
    # is the loop-variable idiom, not a request for one.
    return bool(required) or (variadic and not positional)


def call_async(fn: HookFunction, ctx: Context) -> Awaitable[Any]:
    """Call a hook (or ``main``) with the context if it takes one."""
    if _wants_context(fn, "hook"):
        return fn(ctx)
    return fn()


def describe(fn: object) -> str:
    """A short name for logs: ``module.qualname``."""
    module = getattr(fn, "__module__", None)
    name = getattr(fn, "__qualname__", None) or repr(fn)
    return f"{module}.{name}" if module else str(name)
