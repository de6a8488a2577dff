"""aiodaemon: run an asyncio program as a well-behaved Unix service.

Every public name is re-exported lazily (PEP 562): ``import aiodaemon`` costs
almost nothing, so the control commands (``aiodaemon status``) and the
synchronous ``aiodaemon.pep3143`` never pay for asyncio or structlog. A program
that touches ``aiodaemon.run`` or a decorator loads the runtime's front door.
"""

from __future__ import annotations

# Not typing.TYPE_CHECKING: importing typing would cost every ``import aiodaemon``
# ~6 ms (mypy treats any name TYPE_CHECKING as true).
TYPE_CHECKING = False
if TYPE_CHECKING:
    from typing import Any

    from ._daemon import (
        Daemon,
        lifespan,
        on_reload,
        on_shutdown,
        on_signal,
        on_startup,
        readiness_check,
        run,
    )
    from ._options import DaemonOptions
    from ._prefork._pidfile_status import PidfileState, PidfileStatus, read_pidfile
    from ._run._context import Context
    from ._run._state import State
    from ._run._systemd import notify as sd_notify
    from .exceptions import AlreadyRunningError, ConfigError, DaemonError, ExitCode, StartupError

    #: the package's version (a literal: no package metadata is read).
    __version__: str

__all__ = [
    "AlreadyRunningError",
    "ConfigError",
    "Context",
    "Daemon",
    "DaemonError",
    "DaemonOptions",
    "ExitCode",
    "PidfileState",
    "PidfileStatus",
    "StartupError",
    "State",
    "__version__",
    "lifespan",
    "on_reload",
    "on_shutdown",
    "on_signal",
    "on_startup",
    "read_pidfile",
    "readiness_check",
    "run",
    "sd_notify",
]

#: public name -> (private module, name there)
_EXPORTS: dict[str, tuple[str, str]] = {
    "AlreadyRunningError": ("exceptions", "AlreadyRunningError"),
    "ConfigError": ("exceptions", "ConfigError"),
    "Context": ("_run._context", "Context"),
    "Daemon": ("_daemon", "Daemon"),
    "DaemonError": ("exceptions", "DaemonError"),
    "DaemonOptions": ("_options", "DaemonOptions"),
    "ExitCode": ("exceptions", "ExitCode"),
    "PidfileState": ("_prefork._pidfile_status", "PidfileState"),
    "PidfileStatus": ("_prefork._pidfile_status", "PidfileStatus"),
    "StartupError": ("exceptions", "StartupError"),
    "State": ("_run._state", "State"),
    "lifespan": ("_daemon", "lifespan"),
    "on_reload": ("_daemon", "on_reload"),
    "on_shutdown": ("_daemon", "on_shutdown"),
    "on_signal": ("_daemon", "on_signal"),
    "on_startup": ("_daemon", "on_startup"),
    "read_pidfile": ("_prefork._pidfile_status", "read_pidfile"),
    "readiness_check": ("_daemon", "readiness_check"),
    "run": ("_daemon", "run"),
    "sd_notify": ("_run._systemd", "notify"),
}


# Hidden from type checkers (which treat TYPE_CHECKING as true): they see the
# imports above, so ``aiodaemon.runn(...)`` is an error, not an ``Any``.
if not TYPE_CHECKING:

    def __getattr__(name: str) -> Any:
        return _load(name)


def _load(name: str) -> Any:
    """Import the public ``name`` on first use and keep it in the module's namespace."""
    value: Any
    if name == "__version__":
        from ._version import __version__ as value
    elif name in _EXPORTS:
        module, attr = _EXPORTS[name]
        import gc
        import importlib  # here: `aiodaemon status` imports the package but no export

        # No collection while aiodaemon's modules load: every object they make
        # lives as long as the process, so a collection finds nothing, yet
        # whether one falls here (a full one scans every object the program
        # has made, ~1 ms) is decided by allocation counts, and one module more
        # or less decided it (see hold_gc, which holds it from run() until ready).
        collecting = gc.isenabled()
        gc.disable()
        try:
            value = getattr(importlib.import_module(f".{module}", __name__), attr)
        finally:
            if collecting:
                gc.enable()
        if isinstance(value, type) and value.__module__.startswith(f"{__name__}."):
            # Tracebacks, reprs and the API reference show the public path.
            value.__module__ = __name__
    else:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
