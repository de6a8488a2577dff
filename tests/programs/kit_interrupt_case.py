"""A user's test that is interrupted with Ctrl-C while its daemon runs (run by pytest).

Writes the daemon's pid and its child's pid to $KIT_PIDS, then waits forever.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest

from aiodaemon.testing import launch

pytestmark = pytest.mark.asyncio

PROGRAM = Path(__file__).with_name("kit_app.py")


async def test_waits_forever() -> None:
    """Launch a daemon with a child, report both pids, then hang until interrupted."""
    async with launch(PROGRAM, listen={"echo": "127.0.0.1:0"}, env={"KIT_CHILD": "1"}) as daemon:
        child = (await daemon.wait_for_record("child started"))["child"]
        await asyncio.to_thread(Path(os.environ["KIT_PIDS"]).write_text, f"{daemon.pid} {child}\n")
        await asyncio.Event().wait()
