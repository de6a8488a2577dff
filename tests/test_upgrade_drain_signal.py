"""An old daemon draining after an upgrade's hand-over takes one SIGTERM as joining its shutdown.

systemd's default ``KillMode=control-group`` sends SIGTERM to every process of
the unit on ``systemctl stop``, the old daemon still draining included: its
requests in flight must still be answered (audit-race R8).
"""

from __future__ import annotations

import json
import os
import signal
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import aiodaemon_cli, read_json_lines, wait_for, wait_gone


@pytest.fixture
def pidfile(tmp_path: Path) -> Iterator[Path]:
    """The daemon's pidfile; whoever holds it is stopped at the end."""
    path = tmp_path / "d.pid"
    yield path
    aiodaemon_cli("stop", "--pidfile", path, "--timeout", "5")


def start_slow_answer(tmp_path: Path, pidfile: Path, log: Path, env: dict[str, str]) -> int:
    """``tests/programs/slow_answer.py`` started with a long shutdown timeout; its pid."""
    started = aiodaemon_cli(
        "start", "tests.programs.slow_answer:main", "--pidfile", pidfile,
        "--listen", "http=127.0.0.1:0", "--log-file", log, "--shutdown-timeout", "30",
        cwd=tmp_path, env=env,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    return int(started.stdout)


def test_sigterm_to_the_draining_old_daemon_lets_its_request_finish(
    tmp_path: Path, pidfile: Path
) -> None:
    """A request in flight on the old daemon, upgrade, SIGTERM to the old one: still answered."""
    log, release = tmp_path / "d.jsonl", tmp_path / "release"
    env = {"SLOW_RELEASE": str(release)}
    old = start_slow_answer(tmp_path, pidfile, log, env)

    def records(event: str, pid: int) -> list[dict[str, object]]:
        lines = read_json_lines(log) if log.exists() else []
        return [r for r in lines if r["event"] == event and r["pid"] == pid]

    [starting] = wait_for(lambda: records("starting", old), what="the starting record")
    sockets = starting["sockets"]
    assert isinstance(sockets, dict)
    port = int(str(sockets["http"]).rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(b"slow\n")
        upgrade = aiodaemon_cli("upgrade", "--pidfile", pidfile, cwd=tmp_path, env=env)
        assert upgrade.returncode == 0, upgrade.stderr
        assert int(upgrade.stdout) != old
        wait_for(lambda: records("shutdown started", old), what="the old daemon's shutdown")
        os.kill(old, signal.SIGTERM)
        wait_for(lambda: records("already stopping", old), what="the SIGTERM joining it")
        release.touch()
        answer = client.makefile("rb").readline()
    assert answer == b"done %d\n" % old
    wait_gone(old)
    assert records("exit", old)


def test_a_new_process_upgraded_again_while_the_old_one_drains_is_reaped(
    tmp_path: Path, pidfile: Path
) -> None:
    """Two upgrades while the first daemon still answers a request: the middle one,
    the first's child, is reaped when it exits, not left a zombie until the first exits."""
    log, release = tmp_path / "d.jsonl", tmp_path / "release"
    env = {"SLOW_RELEASE": str(release)}
    first = start_slow_answer(tmp_path, pidfile, log, env)
    status = aiodaemon_cli("status", "--pidfile", pidfile, "--json")
    port = int(json.loads(status.stdout)["sockets"]["http"].rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=30) as client:
        client.sendall(b"slow\n")
        middle = aiodaemon_cli("upgrade", "--pidfile", pidfile, cwd=tmp_path, env=env)
        assert middle.returncode == 0, middle.stderr
        last = aiodaemon_cli("upgrade", "--pidfile", pidfile, cwd=tmp_path, env=env)
        assert last.returncode == 0, last.stderr
        # Gone from /proc: reaped (a zombie keeps its entry, and its pid).
        wait_for(
            lambda: not os.path.exists(f"/proc/{int(middle.stdout)}"),
            30,
            "the middle process to be reaped",
        )
        assert _state(first) not in ("Z", None)  # still draining: the request waits
        release.touch()
        answer = client.makefile("rb").readline()
    assert answer == b"done %d\n" % first
    wait_gone(first)


def _state(pid: int) -> str | None:
    """``pid``'s state letter, None when it is gone."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return None
