"""Public exceptions and exit codes."""

from __future__ import annotations

import enum

__all__ = [
    "AlreadyRunningError",
    "ConfigError",
    "DaemonError",
    "ExitCode",
    "StartupError",
]


class ExitCode(enum.IntEnum):
    """Exit statuses of a daemon and of the process that launched it.

    A forced exit on a second SIGTERM/SIGINT is ``128 + signal number``
    (143 and 130), the shell's convention for "killed by a signal".
    """

    # Attribute docstrings, not ``#:`` comments: the API reference shows these.
    OK = 0
    """A graceful shutdown, or ``main`` returned."""
    FAILURE = 1
    """``main`` or a startup hook raised, the daemon died or was stopped before
    it was ready, it was not ready within ``start_timeout``, or a step of the
    shutdown sequence itself failed."""
    USAGE = 2
    """An invalid option or target: nothing was started."""
    ALREADY_RUNNING = 3
    """The pidfile is locked by a live daemon."""
    SHUTDOWN_TIMEOUT = 4
    """The shutdown sequence did not finish within ``shutdown_timeout``, or the
    threads or ``atexit`` functions the program left outlasted it."""


class DaemonError(Exception):
    """Base class of aiodaemon's own errors; ``exit_code`` is the status it ends with."""

    exit_code: ExitCode = ExitCode.FAILURE
    needs_privilege: bool = False
    """Refused for want of a privilege root has: a directory this user may not
    write, a change of identity or ``chroot`` as non-root, a port below 1024.
    The CLI's ``start`` and ``restart`` then exit 4 (LSB's "user had
    insufficient privilege"); ``run()`` keeps ``exit_code``."""


class ConfigError(DaemonError, ValueError):
    """An option is invalid; raised before anything is acquired or forked.

    Attributes:
        option: the option's name (``umask``, ``listen[http]``).
        message: what is wrong with it; ``str()`` is ``"option: message"``.
        needs_privilege: see :attr:`DaemonError.needs_privilege`.
    """

    exit_code = ExitCode.USAGE

    def __init__(self, option: str, message: str, *, needs_privilege: bool = False) -> None:
        super().__init__(f"{option}: {message}")
        self.option = option
        self.message = message
        if needs_privilege:
            self.needs_privilege = True

    def __reduce__(self) -> tuple[object, ...]:
        # Pickled (a process pool's worker raising it) with the arguments the
        # constructor takes, not the one formatted message in ``args``.
        return type(self), (self.option, self.message), self.__dict__


class StartupError(DaemonError):
    """Acquiring a resource or starting the daemon failed.

    Args:
        option: the keyword option whose resource failed, when the message
            names it followed by a space (``cannot open log_file PATH: ...``):
            the CLI names the flag the user typed instead (``--log-file``).
        needs_privilege: see :attr:`DaemonError.needs_privilege`.
    """

    def __init__(
        self, *args: object, option: str | None = None, needs_privilege: bool = False
    ) -> None:
        super().__init__(*args)
        self.option = option
        if needs_privilege:
            self.needs_privilege = True


class AlreadyRunningError(StartupError):
    """The pidfile is locked by another live daemon.

    Attributes:
        path: the pidfile.
        pid: the holder's pid (None if it has not written it yet).
    """

    exit_code = ExitCode.ALREADY_RUNNING

    def __init__(self, path: str, pid: int | None) -> None:
        held = f"pid {pid}" if pid is not None else "pid not yet written"
        super().__init__(f"already running ({held}, pidfile {path})")
        self.path = path
        self.pid = pid

    def __reduce__(self) -> tuple[object, ...]:
        return type(self), (self.path, self.pid), self.__dict__
