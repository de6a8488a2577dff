"""The testing kit with a daemon that drops to a real unprivileged user."""

from __future__ import annotations

from pathlib import Path

import pytest

from aiodaemon.testing import launch

from .security_support import User, arena, intruder, shared_python_as
from .support import REPO, proc_status

pytestmark = pytest.mark.root  # the daemon drops to another user

__all__ = ["arena", "intruder"]  # fixtures, re-exported for pytest

PROGRAM = REPO / "tests" / "programs" / "kit_app.py"


async def test_a_dropped_daemon_reopens_its_log_in_the_kits_directory(intruder: User) -> None:
    """After a rotation, a reload of a daemon run as user= writes a new log, warning-free."""
    async with launch(PROGRAM, listen={"echo": "127.0.0.1:0"}, user=intruder.name) as daemon:
        assert proc_status(daemon.pid)["Uid"].split() == [str(intruder.uid)] * 4
        await daemon.wait_for_record("ready")
        rotated = daemon.log_file.with_name("rotated.jsonl")
        daemon.log_file.rename(rotated)  # logrotate's `create` + `postrotate`
        await daemon.reload()
        await daemon.wait_for_record("reloaded")
        assert daemon.log_file.stat().st_uid == intruder.uid
        assert [r["event"] for r in daemon.records() if r["level"] != "info"] == []
        assert await daemon.stop() == 0


@pytest.mark.parametrize(("value", "flag"), [(True, "1"), (False, "0")])
async def test_no_new_privileges_reaches_a_launched_daemon(
    intruder: User, value: bool, flag: str
) -> None:
    """no_new_privileges= is what the dropped daemon's kernel flag says (both values start)."""
    async with launch(
        PROGRAM, listen={"echo": "127.0.0.1:0"}, user=intruder.name, no_new_privileges=value
    ) as daemon:
        assert proc_status(daemon.pid)["NoNewPrivs"] == flag


def test_a_test_run_without_root_gets_the_daemons_own_error_for_user(
    intruder: User, arena: Path
) -> None:
    """Not root, launch(user=...) fails with the daemon's "needs root", not the kit's EPERM."""
    script = arena / "kit_run.py"
    script.write_text(
        "import asyncio\n"
        "from aiodaemon.testing import StartFailed, launch\n"
        "async def main() -> None:\n"
        "    try:\n"
        f"        async with launch({str(PROGRAM)!r}, user='root'):\n"
        "            print('started')\n"
        "    except StartFailed as failed:\n"
        "        print(failed.message)\n"
        "asyncio.run(main())\n",
        encoding="utf-8",
    )
    script.chmod(0o644)
    ran = shared_python_as(intruder, script, cwd="/", timeout=60)
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout == "user: changing identity needs root\n"
