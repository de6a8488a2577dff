"""The ``aiodaemon`` command and the control client: synchronous, never imports asyncio."""

from __future__ import annotations

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from typing import Any

    from ._main import main

__all__ = ["main"]


# Hidden from type checkers, which see the import above.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        # The console script aiodaemon 0.1.0 wrote imports ``aiodaemon._cli:main``:
        # one left in place (an rsync'd site-packages, an image layer) still runs.
        # Lazily: the command's own entry point, _main, must not cost more.
        if name == "main":
            from ._main import main

            return main
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
