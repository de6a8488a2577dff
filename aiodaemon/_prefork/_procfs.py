"""What ``/proc`` tells about another process: parent, start time, uids, signals, open files.

Each reader answers None once the process is gone or the entry cannot be read
(another user's process under ``hidepid``), so callers decide on what they know.
"""

from __future__ import annotations

import errno
import os

TYPE_CHECKING = False  # not typing's: see aiodaemon/__init__.py
if TYPE_CHECKING:
    from collections.abc import Callable

__all__ = [
    "Suspension",
    "any_open_file",
    "claim_name",
    "descriptors",
    "effective_capabilities",
    "exists",
    "is_suspended",
    "is_zombie",
    "pids",
    "signal_claim",
    "signal_ends",
    "signal_meets",
    "stat_field",
    "suspension",
    "uids",
]


def stat_field(pid: int, index: int) -> int | None:
    """Field ``index`` of ``/proc/PID/stat`` after the command name (0 is the state).

    1 is the parent pid, 19 the start time in clock ticks. The command name
    may hold spaces and parentheses, hence the split at the last ")".
    """
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return int(f.read().rsplit(b")", 1)[1].split()[index])
    except (OSError, ValueError, IndexError):
        return None


def pids() -> list[int]:
    """Every pid ``/proc`` shows (none without it)."""
    try:
        return [int(entry) for entry in os.listdir("/proc") if entry.isdigit()]
    except OSError:
        return []


def signal_claim(action: str, pid: int) -> str | None:
    """The abstract socket name a command claims ``action``'s signal to ``pid`` under.

    Named after the process's start time too: a recycled pid names another
    (see aiodaemon._cli._stop_claim). None when ``/proc`` will not tell.
    """
    started = stat_field(pid, 19)
    return None if started is None else claim_name(action, pid, started)


def claim_name(action: str, pid: int, started: int) -> str:
    """:func:`signal_claim`'s name for the process ``pid`` of our pid namespace started then.

    With the namespace (see :mod:`._pidns`): two daemons may both be pid 2 of
    two pid namespaces sharing abstract names, started in the same tick.
    """
    from ._pidns import PID_NAMESPACE

    return f"\0aiodaemon-{action}-{PID_NAMESPACE}-{pid}-{started}"


def is_suspended(pid: int) -> bool | None:
    """Whether ``pid`` is stopped by a signal (SIGSTOP, SIGTSTP: state ``T``).

    None when ``/proc`` cannot tell (the process is gone, or hidden).
    """
    state = _state(pid)
    return None if state is None else state == b"T"


class Suspension:
    """Why a process runs no code now, in the commands' words.

    Attributes:
        state: "suspended (SIGSTOP)", or its frozen cgroup named with the
            command that thaws it.
        until: what runs it again: "it is continued", "it is thawed".
        frozen: its cgroup is frozen: SIGCONT does not run it again, and what
            is sent to it (SIGKILL included, under cgroup v1) waits for the thaw.
    """

    __slots__ = ("frozen", "state", "until")

    def __init__(self, state: str, until: str, *, frozen: bool = False) -> None:
        self.state = state
        self.until = until
        self.frozen = frozen


def suspension(pid: int) -> Suspension | None:
    """Whether ``pid`` is suspended: stopped by a signal, or in a frozen cgroup; None if not.

    None too when ``/proc`` cannot tell. A frozen cgroup is looked for first:
    a process both stopped and frozen runs again only once thawed.
    """
    from ._freezer import frozen_cgroup  # only for a daemon that does not answer

    frozen = frozen_cgroup(pid)
    if frozen is not None:
        state = f"suspended (its cgroup {frozen.cgroup} is frozen: thaw it with {frozen.thaw})"
        return Suspension(state, "it is thawed", frozen=True)
    if is_suspended(pid):
        return Suspension("suspended (SIGSTOP)", "it is continued")
    return None


def is_zombie(pid: int) -> bool:
    """Whether ``pid`` has exited and waits to be reaped (state ``Z``); False if unknown."""
    return _state(pid) == b"Z"


def _state(pid: int) -> bytes | None:
    """``pid``'s state letter in ``/proc/PID/stat``; None when ``/proc`` cannot tell."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            fields = f.read().rsplit(b")", 1)[1].split()
    except OSError:
        return None
    # The command name may hold spaces and parentheses: split at the last ")".
    return fields[0] if fields else b""


def _status(pid: int | str, *names: bytes) -> dict[bytes, list[bytes]] | None:
    """The ``names`` lines of ``/proc/PID/status`` found, each as its fields after the name."""
    wanted = {name + b":": name for name in names}
    found: dict[bytes, list[bytes]] = {}
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                fields = line.split()
                if fields and fields[0] in wanted:
                    found[wanted[fields[0]]] = fields[1:]
    except OSError:
        return None
    return found


def uids(pid: int) -> tuple[int, int, int, int] | None:
    """The real, effective, saved and file-system uids of ``pid``."""
    lines = _status(pid, b"Uid")
    if lines is None or b"Uid" not in lines:
        return None
    try:
        real, effective, saved, fs = (int(field) for field in lines[b"Uid"][:4])
    except ValueError:
        return None
    return real, effective, saved, fs


def effective_capabilities(pid: int | str = "self") -> int | None:
    """The effective capability set of ``pid`` (ours by default), as a bit mask."""
    fields = (_status(pid, b"CapEff") or {}).get(b"CapEff")
    try:
        return None if not fields else int(fields[0], 16)
    except ValueError:
        return None


def signal_ends(pid: int, signum: int) -> bool | None:
    """Whether ``signum`` sent to ``pid`` now would end it: neither caught, ignored nor blocked.

    SIGHUP and SIGUSR2 end a process that has no handler for them: a daemon
    of aiodaemon 0.1.0 (no upgrade, hence no SIGUSR2 handler) or a program
    that is no aiodaemon daemon (``aiodaemon.pep3143`` handles no SIGHUP).
    A blocked signal waits for the handler the daemon is about to install.
    None when ``/proc`` cannot tell (the process is gone, or hidden).
    """
    meets = signal_meets(pid, signum)
    return None if meets is None else meets == "default"


#: /proc/PID/status's signal masks, in the order signal_meets reads them.
_SIGNAL_MASKS = (b"SigBlk", b"SigIgn", b"SigCgt")


def signal_meets(pid: int, signum: int) -> str | None:
    """What ``signum`` sent to ``pid`` now would meet: "caught", "blocked", "ignored" or "default".

    A blocked signal waits for a handler the daemon is about to install, so
    it counts before "ignored". None when ``/proc`` cannot tell.
    """
    bit = 1 << (signum - 1)
    lines = _status(pid, *_SIGNAL_MASKS)
    if lines is None:
        return None
    try:
        blocked, ignored, caught = (int(lines[key][0], 16) & bit for key in _SIGNAL_MASKS)
    except (KeyError, ValueError, IndexError):
        return None
    if caught:
        return "caught"
    if blocked:
        return "blocked"
    return "ignored" if ignored else "default"


def any_open_file(pid: int, matches: Callable[[str], bool]) -> bool | None:
    """Whether ``matches`` holds for one of ``pid``'s descriptors, given as ``/proc/PID/fd/N``.

    False once the process is gone; None when none matched but some could not
    be looked at (another user's process, one no longer dumpable after its
    drop, or listed but not followed with CAP_DAC_READ_SEARCH), which proves
    nothing, or when /proc does not show the process at all (``hidepid=2``
    hides such a process; /proc may not be mounted). ``matches`` may raise
    OSError for a descriptor it cannot look at.
    """
    fd_dir = f"/proc/{pid}/fd"
    try:
        names = os.listdir(fd_dir)
    except FileNotFoundError:
        # Shown in /proc, the process is gone (a zombie has no descriptors);
        # missing from it, only the kernel says whether it lives.
        return None if not os.path.exists(f"/proc/{pid}") and exists(pid) else False
    except OSError:
        return None
    denied = False
    for name in names:
        # try/except, not contextlib.suppress: `aiodaemon status` need not import it.
        try:
            if matches(f"{fd_dir}/{name}"):
                return True
        except OSError as exc:
            denied = denied or exc.errno in (errno.EACCES, errno.EPERM)
    return None if denied else False


def descriptors(pid: int) -> tuple[int, int] | None:
    """How many descriptors ``pid`` has open, and its soft ``RLIMIT_NOFILE``.

    None when either cannot be read (another user's process, one no longer
    dumpable after its drop, gone) or the limit is unlimited.
    """
    try:
        count = len(os.listdir(f"/proc/{pid}/fd"))
        with open(f"/proc/{pid}/limits", "rb") as f:
            for line in f:
                if line.startswith(b"Max open files"):
                    return count, int(line.split()[3])
    except (OSError, ValueError, IndexError):
        pass
    return None


def exists(pid: int) -> bool:
    """Whether ``pid`` exists, asked of the kernel (signal 0 sends nothing)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # another user's: it exists
    return True
