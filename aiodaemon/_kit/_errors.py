"""The testing kit's errors, and the daemon's own messages read off its stderr."""

from __future__ import annotations

import re
import signal

from ._options import TRANSLATORS

__all__ = [
    "LaunchError",
    "ReloadFailed",
    "StartFailed",
    "exit_error",
    "keyword_message",
    "last_message",
    "own_error",
    "startup_error",
]


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
    error = own_error(stderr)
    if error is not None:
        return keyword_message(error)
    return last_message(stderr) or f"exited with status {status} before it was ready"


#: The pointer to a command's ``--help`` that its usage errors end with.
_HELP_HINT = re.compile(r" \(see '[^']*--help'\)$")
#: A usage error's subject: ``--start-timeout: `` or ``--listen kv: ``.
_FLAG_SUBJECT = re.compile(r"^--([a-z][a-z-]*)(?: ([^\s:]+))?: ")
#: A flag a message suggests (``give --group too``).
_FLAG_WORD = re.compile(r"(?<![\w-])--([a-z][a-z-]*)(?=[\s;,.)]|$)")


def keyword_message(text: str) -> str:
    """``run()``'s wording of the command's error about an option: the keyword, not the flag.

    The kit passes ``launch()``'s keywords to ``aiodaemon run`` as flags, and
    the command names those (``--start-timeout: ...``, ``--listen kv: ...``);
    the test never wrote one: it reads ``start_timeout: ...`` and
    ``listen[kv]: ...``, as ``run()`` says, without the pointer to ``--help``.
    """
    text = _HELP_HINT.sub("", text)

    def keyword(flag: str) -> str | None:
        name = flag.replace("-", "_")
        return name if name in TRANSLATORS else None

    subject = _FLAG_SUBJECT.match(text)
    if subject is not None and (name := keyword(subject[1])) is not None:
        key = f"[{subject[2]}]" if subject[2] else ""
        text = f"{name}{key}: {text[subject.end() :]}"
    return _FLAG_WORD.sub(lambda m: f"{name}=" if (name := keyword(m[1])) else m[0], text)


def exit_error(stderr: str, status: int) -> str:
    """How a daemon that was running ended: its exit status, and its own last error.

    ``the daemon exited (status 1): main failed: RuntimeError: ...``; a daemon
    killed by a signal says which. A clean exit (0) names no error: an earlier
    ``aiodaemon: `` line was not what ended it.
    """
    if status < 0:
        try:
            how = f"killed by {signal.Signals(-status).name}"
        except ValueError:
            how = f"killed by signal {-status}"
    else:
        how = f"status {status}"
    error = own_error(stderr) if status != 0 else None
    return f"the daemon exited ({how}): {error}" if error else f"the daemon exited ({how})"


def own_error(stderr: str) -> str | None:
    """The daemon's last ``aiodaemon: `` message on one line (with the lines after it:
    an exception's multi-line message continues there), or None."""
    lines = stderr.splitlines()
    for index in range(len(lines) - 1, -1, -1):
        if _PREFIX.match(lines[index]):
            text = _PREFIX.sub("", "\n".join(lines[index:]), count=1)
            return " ".join(text.split())
    return None


def last_message(text: str) -> str:
    """The last non-blank line of a command's stderr, without its ``aiodaemon: `` prefix."""
    lines = [line for line in text.splitlines() if line.strip()]
    return _PREFIX.sub("", lines[-1], count=1) if lines else ""
