"""A detached daemon whose launcher is held up past ``start_timeout`` (argv: pidfile, seconds).

The intermediate child (the first fork's) sleeps that long before going on,
so the launcher's start timeout runs out before the daemon is even forked and
named: a first child descheduled on a loaded machine, made certain. The
launcher must still wait for the daemon's pid, to stop it. The daemon itself
starts at once after that, and would be ready well within ``start_timeout``
counted from its own start, but not from the fork.
"""

from __future__ import annotations

import os
import sys
import time

import aiodaemon

_HOLD = float(sys.argv[2])
_forks = 0


def _hold_up_the_first_child() -> None:
    global _forks
    _forks += 1
    if _forks == 1:
        time.sleep(_HOLD)


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()


os.register_at_fork(after_in_child=_hold_up_the_first_child)
aiodaemon.run(main, pidfile=sys.argv[1], detach=True, start_timeout=_HOLD / 2)
