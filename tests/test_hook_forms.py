"""What the hook decorators accept besides ``async def`` functions, and what they refuse."""

from __future__ import annotations

from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import pytest

import aiodaemon

from .support import ForegroundDaemon


def test_partials_bound_methods_and_repeats_run(tmp_path: Path) -> None:
    """A partial (no Context for an optional parameter), a bound method, one hook twice."""
    d = ForegroundDaemon(tmp_path, "hook_forms")
    try:
        _, err = d.proc.communicate(timeout=20)
    finally:
        d.kill()
    assert d.proc.returncode == 0, err
    assert d.recorded() == ["partial a NoneType", "bound method Context", "twice", "twice", "main"]


class AsyncCallObject:
    """An object whose ``__call__`` is async: not an async function."""

    async def __call__(self) -> None:
        pass


async def nothing() -> None:
    pass


def returns_a_coroutine() -> Coroutine[Any, Any, None]:
    return nothing()


@pytest.mark.parametrize(
    "hook",
    [lambda: nothing(), returns_a_coroutine, AsyncCallObject()],
    ids=["lambda", "sync", "object"],
)
def test_what_only_returns_a_coroutine_is_refused_at_decoration(hook: Any) -> None:
    """A lambda, a function or an object returning a coroutine: TypeError, nothing registered."""
    daemon = aiodaemon.Daemon()
    with pytest.raises(TypeError, match=r"must be an async function \(async def\), not "):
        daemon.on_startup(hook)
    assert daemon.hooks.startup == []


def test_a_method_decorated_in_its_class_body_is_refused() -> None:
    """@on_startup on a method in its class: TypeError saying to register the bound method."""
    daemon = aiodaemon.Daemon()
    with pytest.raises(TypeError, match=r"App.start is a method registered without its instance"):

        class App:
            @daemon.on_startup  # type: ignore[type-var]  # refused by mypy too
            async def start(self) -> None:
                pass

    class Service:
        async def start(self, ctx: aiodaemon.Context) -> None:
            pass

    daemon.on_startup(Service().start)  # bound: accepted
    assert len(daemon.hooks.startup) == 1
