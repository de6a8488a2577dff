"""What pep3143daemon and aiodaemon.pep3143 make of the same arguments (docs/migrating.md).

Usage: ``pep3143_differences.py MODULE``. Prints, one line each: the context
built from six positional arguments, and the handlers of SIGHUP and SIGTERM
after ``open()`` (in the foreground, in a child each) for a ``signal_map`` of
``{SIGHUP: SIG_DFL}``, ``{SIGHUP: 0}``, ``{SIGHUP: ""}`` and ``{}``.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys
from typing import Any

library: Any = importlib.import_module(sys.argv[1])


def handler(signum: int) -> str:
    """The handler of ``signum``, by name."""
    found = signal.getsignal(signum)
    if isinstance(found, signal.Handlers):
        return found.name
    return getattr(found, "__name__", repr(found))


def opened(out: int, label: str, signal_map: dict[int, object]) -> None:
    """In a child: open a foreground context with ``signal_map``; write what it set to ``out``."""
    pid = os.fork()
    if pid:
        os.waitpid(pid, 0)
        return
    try:
        context = library.DaemonContext(
            detach_process=False, signal_map=signal_map, files_preserve=[out]
        )
        context.open()
        line = f"HUP {handler(signal.SIGHUP)} TERM {handler(signal.SIGTERM)}"
    except Exception as exc:
        line = type(exc).__name__
    os.write(out, f"{label}: {line}\n".encode())
    os._exit(0)


def main() -> None:
    """Print what the library makes of each case."""
    positional = library.DaemonContext(None, "/", 0o22, os.getuid(), os.getgid(), False)
    initgroups = getattr(positional, "initgroups", "none")
    print(f"positional: prevent_core {positional.prevent_core} initgroups {initgroups}", flush=True)
    out = os.dup(1)
    opened(out, "SIGHUP: SIG_DFL", {signal.SIGHUP: signal.SIG_DFL})
    opened(out, "SIGHUP: 0", {signal.SIGHUP: 0})
    opened(out, "SIGHUP: ''", {signal.SIGHUP: ""})
    opened(out, "{}", {})


if __name__ == "__main__":
    main()
