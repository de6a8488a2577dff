"""An upgrade to a release whose options differ: what needs a restart is refused, saying so."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import free_port
from .test_upgrade import PROGRAM, App, cli


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    """The upgrade test program, started as ``python upgrade_app.py`` (options in the file)."""
    shutil.copy(PROGRAM, tmp_path / "upgrade_app.py")
    application = App(tmp_path, "script")
    yield application
    cli("stop", "--pidfile", str(application.pidfile), "--timeout", "5")


def test_a_renamed_listener_is_refused_saying_to_restart(app: App) -> None:
    """A listen name renamed on the same address: the upgrade says so, and to use restart."""
    port = free_port()
    old = app.start(APP_LISTEN=f"127.0.0.1:{port}")
    app.edit('{"http": os.environ', '{"web": os.environ')
    result = cli("upgrade", "--pidfile", str(app.pidfile))
    assert result.returncode == 1
    assert result.stderr == (
        f"aiodaemon: upgrade failed: listen[web]: 127.0.0.1:{port} is the old daemon's "
        "listen[http]; an upgrade keeps the listening sockets by name "
        "(use restart to rename one)\n"
    )
    assert app.pid() == old
    assert app.get() == f"v1 {old}"


def test_a_new_user_is_refused_saying_to_restart(app: App) -> None:
    """A release adding user= cannot be upgraded to: the user changes, which needs a restart."""
    old = app.start()
    app.edit('"shutdown_timeout": 10.0,', '"shutdown_timeout": 10.0, "user": "nobody",')
    result = cli("upgrade", "--pidfile", str(app.pidfile))
    assert result.returncode == 1
    assert "upgrade failed: user changed: the old daemon runs as uid " in result.stderr
    assert "the new options say uid 65534; an upgrade keeps the user" in result.stderr
    assert "(use restart to change it)" in result.stderr
    assert app.pid() == old
    assert app.get() == f"v1 {old}"
