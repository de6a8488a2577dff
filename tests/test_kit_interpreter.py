"""The testing kit under the interpreter flags careful suites run with (-X dev, -W error, -bb)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from .support import REPO

#: A daemon whose startup hook logs the flags its interpreter runs with.
APP = """\
import sys

import structlog

import aiodaemon


@aiodaemon.on_startup
async def say_flags() -> None:
    structlog.get_logger().info(
        "flags", dev=sys.flags.dev_mode, bytes_warning=sys.flags.bytes_warning,
        warnoptions=sys.warnoptions,
    )


async def main(ctx: aiodaemon.Context) -> None:
    await ctx.wait_stopping()
"""

#: A user's test, as a script: launch the app, print its flags record, stop it.
DRIVER = """\
import asyncio, json, sys

from aiodaemon.testing import launch


async def test() -> None:
    async with launch(sys.argv[2], cwd=sys.argv[1]) as daemon:
        record = await daemon.wait_for_record("flags")
        status = await daemon.stop()
    print(json.dumps({"record": record, "status": status}))


asyncio.run(test())
"""


def _drive(tmp_path: Path, *flags: str, target: str = "flagged:main") -> dict[str, object]:
    (tmp_path / "flagged.py").write_text(APP)
    (tmp_path / "driver.py").write_text(DRIVER)
    result = subprocess.run(
        [sys.executable, *flags, str(tmp_path / "driver.py"), str(tmp_path), target],
        capture_output=True,
        text=True,
        timeout=60,
        cwd=REPO,
    )
    assert result.returncode == 0, result.stderr
    outcome: dict[str, object] = json.loads(result.stdout)
    return outcome


def test_launch_works_where_bytes_warnings_are_errors(tmp_path: Path) -> None:
    """Under ``-bb`` the kit's own wait for READY=1 raised BytesWarning: every launch failed.

    The notify socket's abstract address is bytes; a reader registered by
    socket object made the selector build its repr.
    """
    outcome = _drive(tmp_path, "-bb", "-W", "error")
    assert outcome["status"] == 0
    record = outcome["record"]
    assert isinstance(record, dict)
    assert record["bytes_warning"] == 2


def test_the_daemons_run_with_the_test_processs_flags(tmp_path: Path) -> None:
    """A suite run under ``-X dev -W error::ResourceWarning`` gets daemons that run so too."""
    outcome = _drive(tmp_path, "-X", "dev", "-W", "error::ResourceWarning")
    record = outcome["record"]
    assert isinstance(record, dict)
    assert record["dev"] is True
    assert "error::ResourceWarning" in record["warnoptions"]
    assert outcome["status"] == 0


def test_a_script_outside_cwd_runs_under_isolated_mode(tmp_path: Path) -> None:
    """``-I`` (or ``-E``) is not passed on: the daemon finds the script by PYTHONPATH."""
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    script = tmp_path / "scripts" / "flagged_script.py"
    script.parent.mkdir()
    script.write_text(APP)
    outcome = _drive(elsewhere, "-I", target=str(script))
    assert outcome["status"] == 0
    record = outcome["record"]
    assert isinstance(record, dict)
    assert record["event"] == "flags"
