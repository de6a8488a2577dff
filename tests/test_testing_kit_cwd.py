"""aiodaemon.testing with ``cwd=``: relative paths mean the same to the kit as to the daemon."""

from __future__ import annotations

import shutil
from pathlib import Path

from aiodaemon.testing import launch

from .support import REPO

PROGRAM = REPO / "tests" / "programs" / "kit_app.py"


async def test_relative_script_pidfile_log_and_control_are_relative_to_cwd(
    tmp_path: Path,
) -> None:
    """The daemon started in ``cwd`` and the kit agree on its script, pidfile, log and socket."""
    service = tmp_path / "service"
    service.mkdir()
    shutil.copyfile(PROGRAM, service / "kit_app.py")
    async with launch(
        "kit_app.py",
        cwd=service,
        listen={"echo": "127.0.0.1:0"},
        pidfile="daemon.pid",
        log_file="daemon.jsonl",
        control="daemon.ctl",
    ) as daemon:
        assert (service / "daemon.pid").read_text() == f"{daemon.pid}\n"
        assert (service / "daemon.ctl").is_socket()
        host, port = daemon.inet_address("echo")
        assert (host, port > 0) == ("127.0.0.1", True)
        await daemon.reload()
        reloaded = await daemon.wait_for_record("reloaded")
        assert reloaded["pid"] == daemon.pid
        assert (await daemon.status())["pid"] == daemon.pid
        assert await daemon.stop() == 0
    assert not (service / "daemon.pid").exists()
