"""A program's own tests with aiodaemon.testing and its pytest fixture."""

from __future__ import annotations

import signal
from pathlib import Path
from typing import Any, assert_type

import pytest

from aiodaemon.testing import (
    DaemonProcess,
    Launch,
    LaunchError,
    ReloadFailed,
    StartFailed,
    launch,
)

pytestmark = pytest.mark.asyncio


async def test_with_the_fixture(aiodaemon_launch: Launch, tmp_path: Path) -> None:
    async with aiodaemon_launch(
        tmp_path / "app.py",
        listen={"http": "127.0.0.1:0", "admin": "unix:admin.sock"},
        env={"APP_MODE": "test"},
        cwd=tmp_path,
    ) as daemon:
        assert_type(daemon, DaemonProcess)
        assert_type(daemon.pid, int)
        assert_type(daemon.address("http"), tuple[str, int] | str)
        assert_type(daemon.inet_address("http"), tuple[str, int])
        assert_type(daemon.unix_address("admin"), str)
        daemon.signal(signal.SIGUSR1)
        assert_type(daemon.records(), list[dict[str, Any]])
        record = await daemon.wait_for_record("ready")
        assert record["event"] == "ready"
        status = await daemon.status()
        assert status["state"] == "running"
        with pytest.raises(ReloadFailed, match="is empty"):
            await daemon.reload()
        assert_type(await daemon.stop(), int)
        assert_type(daemon.returncode, int | None)
        assert_type(daemon.stderr, str)


async def test_with_the_function() -> None:
    try:
        async with launch("app:main", log_level="DEBUG", shutdown_timeout=3) as daemon:
            assert await daemon.wait(timeout=5) == 0
    except StartFailed as exc:
        assert_type(exc.status, int | None)
        assert_type(exc.stderr, str)
    except LaunchError:
        raise
