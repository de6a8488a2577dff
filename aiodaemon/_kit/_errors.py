"""The testing kit's errors, and the daemon's own messages read off its stderr."""

from __future__ import annotations

import re

__all__ = ["LaunchError", "ReloadFailed", "StartFailed", "last_message", "startup_error"]


class LaunchError(Exception):
    """Base class of the testing kit's errors."""


class StartFailed(LaunchError):
    """The daemon exited, or was not ready in time, instead of becoming ready (or right after).

    Attributes:
        status: the daemon's exit status (None if it was killed for being too slow).
        message: the daemon's own error message (``aiodaemon: ...`` on its stderr),
            on one line as ``aiodaemon start`` prints it.
        stderr: everything the daemon wrote on stderr.
    """

    def __init__(self, message: str, status: int | None, stderr: str) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.stderr = stderr

    def __reduce__(self) -> tuple[object, ...]:
        # Pickled with the constructor's arguments (a process pool's worker
        # raising it): ``args`` holds the message alone.
        return type(self), (self.message, self.status, self.stderr), self.__dict__


class ReloadFailed(LaunchError):
    """A reload hook raised; the message is the hook's error, ``Type: message``."""


for _error in (LaunchError, StartFailed, ReloadFailed):
    # Users meet them as aiodaemon.testing's (tracebacks, pytest.raises reprs).
    _error.__module__ = "aiodaemon.testing"

#: ``aiodaemon: `` or ``aiodaemon reload: ``, the prefix of the command's own messages.
_PREFIX = re.compile(r"^aiodaemon(?: [a-z]+)?: ")


def startup_error(stderr: str, status: int) -> str:
    """The daemon's own error, on one line as ``aiodaemon start`` prints it.

    In the foreground the message is the last ``aiodaemon: `` line and the lines
    after it: an exception's multi-line message continues there.
    """
    lines = stderr.splitlines()
    for index in range(len(lines) - 1, -1, -1):
        if _PREFIX.match(lines[index]):
            text = _PREFIX.sub("", "\n".join(lines[index:]), count=1)
            return " ".join(text.split())
    return last_message(stderr) or f"exited with status {status} before it was ready"


def last_message(text: str) -> str:
    """The last non-blank line of a command's stderr, without its ``aiodaemon: `` prefix."""
    lines = [line for line in text.splitlines() if line.strip()]
    return _PREFIX.sub("", lines[-1], count=1) if lines else ""
