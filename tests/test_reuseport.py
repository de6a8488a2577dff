"""Several daemons on one port: ``?reuseport`` shares it, without it the port stays refused."""

from __future__ import annotations

import json
from pathlib import Path

from .serving_support import http_get
from .support import aiodaemon_cli, free_port, install_program

REQUEST = b"GET / HTTP/1.1\r\nhost: t\r\nconnection: close\r\n\r\n"


def start(directory: Path, name: str, address: str) -> int:
    """``aiodaemon start`` one instance of the upgrade test app on ``address``; its pid."""
    result = aiodaemon_cli(
        "start",
        "upgrade_app:main",
        "--pidfile",
        directory / f"{name}.pid",
        "--log-file",
        directory / "shared.log",
        "--listen",
        f"http={address}",
        cwd=directory,
    )
    assert result.returncode == 0, result.stderr
    return int(result.stdout)


async def answered_by(port: int) -> int:
    """The pid of the daemon that answered one request on a new connection."""
    status, _, response = await http_get(("127.0.0.1", port), "/", raw=REQUEST)
    assert status == 200, response
    return int(response.rsplit(b" ", 1)[1])


async def test_instances_share_a_port_only_when_asked(tmp_path: Path) -> None:
    """Two instances with ?reuseport both serve one port; a third without it is refused."""
    install_program("upgrade_app", tmp_path, "upgrade_app.py")
    port = free_port()
    shared = f"127.0.0.1:{port}?reuseport"
    first = start(tmp_path, "a", shared)
    try:
        second = start(tmp_path, "b", shared)
        try:
            refused = aiodaemon_cli(
                "start",
                "upgrade_app:main",
                "--pidfile",
                tmp_path / "c.pid",
                "--listen",
                f"http=127.0.0.1:{port}",
                cwd=tmp_path,
            )
            assert refused.returncode == 1
            assert "Address already in use" in refused.stderr
            status = aiodaemon_cli("status", "--pidfile", tmp_path / "b.pid", "--json")
            assert json.loads(status.stdout)["sockets"] == {"http": f"127.0.0.1:{port}"}
            seen: set[int] = set()
            for _ in range(200):  # the kernel spreads new connections by their ports
                seen.add(await answered_by(port))
                if seen == {first, second}:
                    break
            assert seen == {first, second}
            stopped = aiodaemon_cli("stop", "--pidfile", tmp_path / "a.pid")
            assert stopped.returncode == 0, stopped.stderr
            # The one left serves every connection on the port.
            assert {await answered_by(port) for _ in range(5)} == {second}
        finally:
            aiodaemon_cli("stop", "--pidfile", tmp_path / "b.pid")
    finally:
        aiodaemon_cli("stop", "--pidfile", tmp_path / "a.pid")


def test_reuseport_is_refused_where_it_cannot_mean_anything(tmp_path: Path) -> None:
    """A misspelt query, and any query on the health socket, are usage errors (exit 2)."""
    install_program("upgrade_app", tmp_path, "upgrade_app.py")
    port = free_port()
    for option, address, message in (
        ("--listen", f"http=127.0.0.1:{port}?reuse", "expected ?reuseport after the port"),
        ("--health", f"127.0.0.1:{port}?reuseport", "?reuseport is for --listen sockets only"),
        # Not "expected ?reuseport after the port": the health socket refuses that too.
        ("--health", f"127.0.0.1:{port}?mode=0600", "takes nothing after the port"),
        ("--health", f"[::1]:{port}?", "takes nothing after the port"),
    ):
        result = aiodaemon_cli(
            "run",
            "upgrade_app:main",
            "--pidfile",
            tmp_path / "x.pid",
            option,
            address,
            cwd=tmp_path,
        )
        assert result.returncode == 2, result.stderr
        assert message in result.stderr
        assert "expected ?reuseport" not in result.stderr or option == "--listen"
        assert not (tmp_path / "x.pid").exists()
