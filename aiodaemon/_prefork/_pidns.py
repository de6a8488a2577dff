"""Our pid namespace, part of every abstract socket name made of a pid.

Abstract unix socket names belong to the network namespace, which several
pid namespaces may share (containers on the host's network, ``unshare
--pid``): two daemons there may both be pid 2, started in the same clock
tick even. A name made of the pid alone was one name for both: one daemon
could not mark its stop, and one's ``stop`` took the other's claim on the
SIGTERM for its own and sent none. Read once, at import: a daemon that
chroots may have no ``/proc`` by the time it names a mark. Never imports
asyncio.
"""

from __future__ import annotations

import os

__all__ = ["PID_NAMESPACE"]


def _own() -> int:
    try:
        return os.stat("/proc/self/ns/pid").st_ino
    except OSError:
        return 0


#: This process's pid namespace: its inode in nsfs; 0 where ``/proc`` will not say.
PID_NAMESPACE = _own()
