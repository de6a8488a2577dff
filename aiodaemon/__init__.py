"""aiodaemon: run an asyncio program as a well-behaved Unix service."""

from __future__ import annotations

from typing import Any, NoReturn

from ._context import Context
from ._daemon import Daemon, default_daemon
from ._hooks import MainTarget
from ._pidfile import PidfileState, PidfileStatus, read_pidfile
from ._state import State
from ._systemd import notify as sd_notify
from .exceptions import AlreadyRunningError, ConfigError, DaemonError, ExitCode, StartupError

__all__ = [
    "AlreadyRunningError",
    "ConfigError",
    "Context",
    "Daemon",
    "DaemonError",
    "ExitCode",
    "PidfileState",
    "PidfileStatus",
    "StartupError",
    "State",
    "on_reload",
    "on_shutdown",
    "on_startup",
    "read_pidfile",
    "run",
    "sd_notify",
]

__version__ = "0.1.0"

on_startup = default_daemon.on_startup
on_reload = default_daemon.on_reload
on_shutdown = default_daemon.on_shutdown


def run(main: MainTarget, **options: Any) -> NoReturn:
    """Run ``main`` as a daemon with the default :class:`Daemon`'s hooks; see DESIGN.md."""
    default_daemon.run(main, **options)
