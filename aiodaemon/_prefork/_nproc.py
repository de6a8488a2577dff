"""Why a fork or a thread was refused: RLIMIT_NPROC named when it is the limit reached.

``EAGAIN`` from ``fork`` or ``pthread_create`` says only "Resource temporarily
unavailable" (Python: "can't start new thread"), for a cgroup's ``pids.max``
as for the user's process limit. The out-of-descriptors messages name
RLIMIT_NOFILE; these name RLIMIT_NPROC and its value when the user's
processes and threads have reached it. Never imports asyncio.
"""

from __future__ import annotations

import os
import resource

__all__ = ["nproc_note"]


def nproc_note() -> str:
    """`` (RLIMIT_NPROC N reached: uid U has M processes and threads)``, or "" when it is not.

    Root is not bound by the limit (the kernel lets CAP_SYS_RESOURCE pass).
    Only called after a refusal: counting the user's tasks reads /proc.
    """
    soft = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    uid = os.getuid()
    if soft == resource.RLIM_INFINITY or os.geteuid() == 0:
        return ""
    count = _tasks_of(uid)
    # Counted after the refusal, a thread or two may have ended meanwhile.
    if count is None or count + 2 < soft:
        return ""
    return f" (RLIMIT_NPROC {soft} reached: uid {uid} has {count} processes and threads)"


def _tasks_of(uid: int) -> int | None:
    """The threads of every process whose real uid is ``uid``, as /proc shows them."""
    total = 0
    try:
        entries = os.listdir("/proc")
    except OSError:
        return None
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status", encoding="ascii", errors="replace") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
        except OSError:
            continue
        try:
            if int(fields["Uid"].split()[0]) == uid:
                total += int(fields["Threads"])
        except (KeyError, ValueError, IndexError):
            continue
    return total
