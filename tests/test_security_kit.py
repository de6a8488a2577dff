"""The testing kit, run by root, against the account its daemon drops to (``user=``).

The kit hands its temporary directory to that account, so that the dropped
daemon can reopen its log there; a compromised account may then replace
anything in it. The kit (root) must never read, write or wait on what it put
there instead.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import pytest

from aiodaemon.testing import DaemonProcess, launch

from .security_support import User, arena, as_user, intruder, make_victim
from .support import REPO

pytestmark = pytest.mark.root  # the daemon drops to another user

__all__ = ["arena", "intruder"]  # fixtures, re-exported for pytest

PROGRAM = REPO / "tests" / "programs" / "kit_app.py"
#: kit_app serves an echo socket.
LISTEN = {"echo": "127.0.0.1:0"}


def _swap(path: Path, plant: Callable[[Path], object]) -> Callable[[], None]:
    """The account's action: remove ``path`` and plant something else there."""

    def swap() -> None:
        path.unlink()
        plant(path)

    return swap


def _symlink_to(victim: Path) -> Callable[[Path], object]:
    return lambda path: os.symlink(victim, path)


async def test_the_kits_files_swapped_for_symlinks_are_never_read(
    arena: Path, intruder: User
) -> None:
    """stderr, log and pidfile swapped for symlinks to root's secret: the kit reads none of it."""
    victim = make_victim(arena / "victims")
    async with launch(PROGRAM, listen=LISTEN, user=intruder.name) as daemon:
        await daemon.wait_for_record("ready")
        for path in (daemon.directory / "stderr", daemon.log_file, daemon.pidfile):
            as_user(intruder, _swap(path, _symlink_to(victim)))
        assert "root's secret" not in daemon.stderr
        assert "root's secret" not in repr(_records_or_error(daemon))
    assert "root's secret" not in daemon.stderr
    assert victim.read_bytes() == b"root's secret\n"


async def test_the_kits_files_swapped_for_fifos_never_hang_it(arena: Path, intruder: User) -> None:
    """stderr, log and pidfile swapped for FIFOs nobody writes: the kit goes on and stops it."""
    async with launch(PROGRAM, listen=LISTEN, user=intruder.name) as daemon:
        await daemon.wait_for_record("ready")
        for path in (daemon.directory / "stderr", daemon.log_file, daemon.pidfile):
            as_user(intruder, _swap(path, os.mkfifo))
        assert isinstance(daemon.stderr, str)
        _records_or_error(daemon)
    assert daemon.returncode == 0


def _records_or_error(daemon: DaemonProcess) -> object:
    """``daemon.records()``, or the kit's error saying why it cannot read them."""
    try:
        return daemon.records()
    except Exception as exc:
        return exc
