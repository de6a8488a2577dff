"""An upgrade to a release whose options differ: unix socket files, and what needs a restart."""

from __future__ import annotations

import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import free_port, wait_for, wait_gone
from .test_upgrade import PROGRAM, App, cli

#: The options line of upgrade_app.py that the releases below edit.
LISTEN = '"listen": {"http": os.environ.get("APP_LISTEN", "127.0.0.1:0")},'


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    """The upgrade test program, started as ``python upgrade_app.py`` (options in the file)."""
    shutil.copy(PROGRAM, tmp_path / "upgrade_app.py")
    application = App(tmp_path, "script")
    yield application
    cli("stop", "--pidfile", str(application.pidfile), "--timeout", "5")


def _with_unix(name: str, path: Path) -> str:
    """The listen line of ``app``'s file with a unix listener ``name`` added."""
    return LISTEN.replace("},", f', "{name}": "unix:{path}"}},')


def _upgrade(app: App) -> int:
    result = cli("upgrade", "--pidfile", str(app.pidfile))
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


def _accepts(path: Path) -> bool:
    with socket.socket(socket.AF_UNIX) as sock:
        sock.settimeout(5)
        try:
            sock.connect(str(path))
        except OSError:
            return False
    return True


@pytest.mark.parametrize("option", ["listen", "health"])
def test_a_unix_socket_an_upgrade_adds_is_removed_at_stop(app: App, option: str) -> None:
    """A unix listener (or health endpoint) the new release adds is served, and gone after stop."""
    path = app.directory / "added.sock"
    old = app.start()
    if option == "listen":
        app.edit(LISTEN, _with_unix("u", path))
    else:
        app.edit('"shutdown_timeout": 10.0,', f'"shutdown_timeout": 10.0, "health": "unix:{path}",')
    new = _upgrade(app)
    wait_gone(old)
    assert _accepts(path)
    stopped = cli("stop", "--pidfile", str(app.pidfile))
    assert stopped.returncode == 0, stopped.stderr
    wait_gone(new)
    assert not path.exists()


def test_a_unix_listener_added_then_dropped_leaves_no_file(app: App) -> None:
    """Added by one upgrade, dropped by the next: its file goes at that hand-over."""
    path = app.directory / "u.sock"
    app.start()
    app.edit(LISTEN, _with_unix("u", path))
    _upgrade(app)
    assert _accepts(path)
    app.edit(_with_unix("u", path), LISTEN)
    new = _upgrade(app)
    # Removed by the new process just after it answered the hand-over.
    wait_for(lambda: not path.exists(), what="the dropped listener's file removed")
    assert app.get() == f"v1 {new}"


def test_a_unix_listener_the_new_release_drops_is_removed_at_the_hand_over(app: App) -> None:
    """The old daemon's file for a name the new release dropped does not outlive the hand-over."""
    path = app.directory / "u.sock"
    app.edit(LISTEN, _with_unix("u", path))
    old = app.start()
    assert _accepts(path)
    app.edit(_with_unix("u", path), LISTEN)
    new = _upgrade(app)
    wait_gone(old)
    wait_for(lambda: not path.exists(), what="the dropped listener's file removed")
    assert app.get() == f"v1 {new}"


def test_a_failed_upgrade_removes_the_unix_file_its_release_added(app: App) -> None:
    """A new release adding a unix listener fails to start: rolled back, and no file left."""
    path = app.directory / "n.sock"
    old = app.start()
    app.edit(LISTEN, _with_unix("n", path))
    app.edit('MODE = ""', 'MODE = "raise"')
    result = cli("upgrade", "--pidfile", str(app.pidfile))
    assert result.returncode == 1
    assert "RuntimeError: cannot start v1" in result.stderr
    [failed] = wait_for(lambda: app.records("upgrade failed"), 10, "the upgrade failed record")
    successor = failed["successor"]
    assert isinstance(successor, int)
    wait_gone(successor)
    assert not path.exists()
    assert app.pid() == old
    assert app.get() == f"v1 {old}"


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
