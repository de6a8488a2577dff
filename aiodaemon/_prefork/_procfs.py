"""What ``/proc`` tells about another process: its parent, start time and uids.

Each reader answers None once the process is gone or the entry cannot be read
(another user's process under ``hidepid``), so callers decide on what they know.
"""

from __future__ import annotations

__all__ = ["stat_field", "uids"]


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


def uids(pid: int) -> tuple[int, int, int, int] | None:
    """The real, effective, saved and file-system uids of ``pid``."""
    try:
        with open(f"/proc/{pid}/status", "rb") as f:
            for line in f:
                if line.startswith(b"Uid:"):
                    real, effective, saved, fs = (int(field) for field in line.split()[1:5])
                    return real, effective, saved, fs
    except (OSError, ValueError):
        pass
    return None
