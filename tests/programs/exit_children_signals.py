"""Starts a child in ``main`` and two in an ``atexit`` function; records their ignored signals.

argv: options (JSON), record. Each child records ``WHEN SigIgn: MASK``; the
second one at exit is started through ``env --default-signal=HUP,USR1,USR2``,
as docs/production.md says.
"""

from __future__ import annotations

import atexit
import subprocess

import aiodaemon
from tests.programs.recorder import record, run

_SHOW = ["grep", "^SigIgn:", "/proc/self/status"]


def _start_child(when: str, prefix: tuple[str, ...] = ()) -> None:
    shown = subprocess.run([*prefix, *_SHOW], capture_output=True, text=True, check=True)
    record(f"{when} {shown.stdout.strip()}")


def _at_exit() -> None:
    _start_child("at-exit")
    _start_child("at-exit-env", ("env", "--default-signal=HUP,USR1,USR2"))


atexit.register(_at_exit)


async def main(ctx: aiodaemon.Context) -> None:
    _start_child("main")


if __name__ == "__main__":
    run(main)
