"""``aiodaemon reload``: SIGHUP the daemon holding a pidfile, or ask it and wait for the result.

Through the daemon's control socket the command learns how the reload went.
A daemon without one (no socket at the path, one not served yet, or one that
is not the daemon's: see :mod:`._control_trust`) gets SIGHUP, and the command
says the result is not known. Synchronous and light, for the CLI.
"""

from __future__ import annotations

import os
import time

from ._control import ControlCode, _holder, _say, _send
from ._control_client import (
    ControlAbsent,
    ControlDenied,
    ControlError,
    ControlRefused,
    ControlTimeout,
)
from ._control_protocol import VERSION
from ._control_trust import ControlUntrusted, ask_holder, say_ignored

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from typing import TypeAlias

    StrPath: TypeAlias = str | os.PathLike[str]

__all__ = ["reload"]

#: How long ``reload`` retries a control socket that is not served yet (a
#: daemon between its acquire and its event loop) before falling back to SIGHUP.
_NOT_SERVING_GRACE = 2.0
#: Seconds ``reload`` gives the daemon's answer beyond the reload's own timeout.
_ANSWER_GRACE = 2.0


def reload(
    path: StrPath,
    control: StrPath | None,
    *,
    timeout: float,
    wait: bool,
    owner: int | None = None,
) -> int:
    """Reload the daemon holding ``path`` and, with ``wait``, report how the reload went.

    Returns 0 when every reload hook succeeded (or, without ``wait`` or a
    control socket of the daemon's own, once SIGHUP is sent), 1 when one failed
    or the reload did not finish within ``timeout``, 7 when no daemon runs.
    """
    import signal  # here: `status` never signals, and the import costs it ~0.5 ms

    holder = _holder(path, not_running=ControlCode.NOT_RUNNING, control=control, owner=owner)
    if isinstance(holder, int):
        return holder
    pid, pidfd = holder
    note = ""
    try:
        if wait and control is not None:
            code = _reload_and_wait(control, pid, timeout)
            if isinstance(code, int):
                return code
            note = f"; {code}, so the result is not known"
        if not _send(pidfd, pid, signal.SIGHUP):
            return ControlCode.NO_PERMISSION
    finally:
        os.close(pidfd)
    _say(f"reload requested (pid {pid}, SIGHUP){note}")
    return ControlCode.OK


def _reload_and_wait(control: StrPath, pid: int, timeout: float) -> int | str:
    """Ask for a reload over the control socket: the exit code, or why SIGHUP must do."""
    request = {"v": VERSION, "cmd": "reload", "timeout": timeout}
    deadline = time.monotonic() + _NOT_SERVING_GRACE
    absent = f"no control socket served at {control}"
    while True:
        try:
            # Never `follow`: the SIGHUP of a fallback goes to the verified `pid`.
            answer, _ = ask_holder(control, request, holder=pid, timeout=timeout + _ANSWER_GRACE)
            break
        except ControlAbsent:
            return absent
        except ControlRefused:
            # Bound but not listening yet: a daemon on its way to its event loop.
            if time.monotonic() > deadline:
                return absent
            time.sleep(0.05)
        except ControlUntrusted as exc:
            # Not the daemon's socket: it has none there, as with --no-control.
            say_ignored(exc, f"sending SIGHUP to pid {pid}")
            return f"no trusted control socket at {control}"
        except ControlTimeout:
            _say(f"still reloading after {timeout:g} s (pid {pid} did not answer)")
            return ControlCode.FAILURE
        except ControlDenied as exc:
            _say(str(exc))
            return ControlCode.NO_PERMISSION
        except ControlError as exc:
            _say(str(exc))
            return ControlCode.FAILURE
    if not answer.get("ok"):
        _say(f"{answer.get('error') or 'the daemon refused the reload'} (pid {pid})")
        return ControlCode.FAILURE
    result = answer.get("reload")
    if not isinstance(result, dict) or not isinstance(result.get("ok"), bool):
        _say(f"unreadable reload answer from pid {pid}")
        return ControlCode.FAILURE
    if not result["ok"]:
        error = str(result.get("error"))
        exiting = result.get("exiting")
        if error.startswith("cancelled:"):
            # A stop cut the reload short: the daemon is on its way out.
            _say(f"reload {error} (pid {pid})")
        elif isinstance(exiting, int) and not isinstance(exiting, bool):
            # A hook's sys.exit(n): the daemon is not still running, it is leaving.
            _say(f"reload failed (pid {pid}, shutting down with status {exiting}): {error}")
        else:
            _say(f"reload failed (pid {pid}, still running): {error}")
        return ControlCode.FAILURE
    _say(f"reloaded (pid {pid})")
    return ControlCode.OK
