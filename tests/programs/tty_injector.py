"""What a compromised service account tries with root's terminal: inject and read keystrokes.

As a CLI target (``tests.programs.tty_injector:main``) it runs after the drop,
pushes ``$TTY_COMMAND`` into the terminal with ``TIOCSTI`` on fds 0 and 1 and
on ``/dev/tty``, looks for a descriptor that reads the terminal, and says
``$TTY_GREETING`` on stdout; run as a script (``python tty_injector.py UID GID``) it does the
same from inside a ``pep3143.DaemonContext(uid, gid, detach_process=False)``.
Either way it writes what happened as JSON to ``$TTY_REPORT`` and returns.
"""

from __future__ import annotations

import fcntl
import json
import os
import sys
import termios


def _inject(fd: int, command: str) -> str:
    """Push ``command`` into the input of the terminal on ``fd``: "ok" or the errno's name."""
    try:
        for char in command:
            fcntl.ioctl(fd, termios.TIOCSTI, char.encode())
    except OSError as exc:
        return str(exc.errno and os.strerror(exc.errno))
    return "ok"


def _readable_terminals() -> list[int]:
    """Which of fds 0-2 are a terminal open for reading (root's keystrokes)."""
    return [
        fd
        for fd in (0, 1, 2)
        if os.isatty(fd) and fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_ACCMODE != os.O_WRONLY
    ]


def _reopen(fd: int) -> str:
    """Open the terminal on ``fd`` again, for reading: "ok" or the errno's name."""
    try:
        os.close(os.open(os.ttyname(fd), os.O_RDONLY | os.O_NOCTTY))
    except OSError as exc:
        return str(exc.errno and os.strerror(exc.errno))
    return "ok"


def attack() -> dict[str, object]:
    """Try fds 0 and 1, then ``/dev/tty``; the outcome of each."""
    command = os.environ["TTY_COMMAND"] + "\n"
    report: dict[str, object] = {
        "uid": os.getuid(),
        "stdin": _inject(0, command),
        "stdout": _inject(1, command),
        "readable": _readable_terminals(),
        "reopen": _reopen(1),
    }
    try:
        tty = os.open("/dev/tty", os.O_RDWR)
    except OSError as exc:
        report["dev_tty"] = f"open: {os.strerror(exc.errno or 0)}"
    else:
        report["dev_tty"] = _inject(tty, command)
        os.close(tty)
    return report


def _write_report(report: dict[str, object]) -> None:
    with open(os.environ["TTY_REPORT"], "w") as f:
        json.dump(report, f)


def _greet() -> None:
    """Show that the daemon still writes to the terminal."""
    print(os.environ.get("TTY_GREETING", "hello"), flush=True)


async def main() -> None:
    """The daemon's whole life: one attack, reported."""
    _write_report(attack())
    _greet()


if __name__ == "__main__":
    from aiodaemon.pep3143 import DaemonContext

    uid, gid = int(sys.argv[1]), int(sys.argv[2])
    with DaemonContext(uid=uid, gid=gid, detach_process=False, working_directory="/"):
        _write_report(attack())
        _greet()
