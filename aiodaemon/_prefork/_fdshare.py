"""How many connections a server may hold open under the daemon's descriptor limit.

Anyone who can connect can hold connections open; a fixed cap larger than the
daemon's ``RLIMIT_NOFILE`` lets them take every descriptor the service has
left, and its own clients are then reset unseen. Every server the daemon runs
for others (control socket, health endpoint) keeps to a share of the soft
limit. Never imports asyncio.
"""

from __future__ import annotations

__all__ = ["NOFILE_PER_CONNECTION", "connection_cap"]

#: Descriptors of the soft RLIMIT_NOFILE per connection allowed at once.
NOFILE_PER_CONNECTION = 8


def connection_cap(ceiling: int, nofile: int, *, least: int = 2) -> int:
    """``ceiling``, lowered to an eighth of the soft limit ``nofile``, never below ``least``.

    ``nofile`` < 0 (RLIM_INFINITY): ``ceiling``.
    """
    if nofile < 0:
        return ceiling
    return max(least, min(ceiling, nofile // NOFILE_PER_CONNECTION))
