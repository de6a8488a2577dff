"""``prctl(2)`` through ctypes, and the dumpable flag it sets.

Loaded only by a process that uses it (a drop from root, a daemon with
``user=``/``group=``, an upgrade's successor): ctypes is not cheap to import.
Never imports asyncio.
"""

from __future__ import annotations

import errno
import os

from ..exceptions import StartupError

TYPE_CHECKING = False
if TYPE_CHECKING:
    from collections.abc import Callable

    #: prctl(option, arg2) -> 0, or an errno.
    Prctl = Callable[[int, int], int]

__all__ = ["Prctl", "load_prctl", "set_dumpable"]

#: From <linux/prctl.h>.
_PR_SET_DUMPABLE = 4


def load_prctl() -> Prctl:
    """libc's ``prctl`` through ctypes (load it before a chroot hides ctypes' files)."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    function = libc.prctl
    function.restype = ctypes.c_int
    # All five arguments: the kernel refuses NO_NEW_PRIVS when an unused one is not 0.
    function.argtypes = [ctypes.c_int] + [ctypes.c_ulong] * 4

    def prctl(option: int, arg2: int) -> int:
        if function(option, arg2, 0, 0, 0) == 0:
            return 0
        return ctypes.get_errno() or errno.EINVAL

    return prctl


def set_dumpable(dumpable: bool, prctl: Prctl | None = None) -> None:
    """Set ``PR_SET_DUMPABLE``: 0 forbids ptrace, ``pidfd_getfd`` and ``/proc/PID/fd``
    to the other processes of our own user (root keeps access), and core dumps.

    Raises:
        StartupError: the kernel refused.
    """
    error = (prctl or load_prctl())(_PR_SET_DUMPABLE, int(dumpable))
    if error:
        raise StartupError(f"cannot set the dumpable flag to {int(dumpable)}: {os.strerror(error)}")
