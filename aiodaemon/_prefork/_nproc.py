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
            # Bytes: a text file would need its codec's module, which a
            # dropped user may no longer be able to import (the interpreter
            # under root's home), and the refusal's message would be a LookupError.
            with open(f"/proc/{entry}/status", "rb") as f:
                fields = dict(line.split(b":", 1) for line in f if b":" in line)
        except OSError:
            continue
        try:
            if int(fields[b"Uid"].split()[0]) == uid:
                total += int(fields[b"Threads"])
        except (KeyError, ValueError, IndexError):
            continue
    return total
