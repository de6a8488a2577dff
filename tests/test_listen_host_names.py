"""A host name bound to its first address: the others are named in a warning; abstract refused."""

from __future__ import annotations

import subprocess
from pathlib import Path

from .support import (
    AIODAEMON,
    aiodaemon_cli,
    clean_env,
    free_port,
    install_program,
    read_json_lines,
    require_tool,
    wait_for,
)

#: ``localhost`` resolves to ::1 first, then 127.0.0.1 (as on some stock hosts).
_IPV6_FIRST = "::1\t\tlocalhost ip6-localhost ip6-loopback\n127.0.0.1\tlocalhost\n"


def test_localhost_resolving_to_two_addresses_warns_of_the_one_left_out(tmp_path: Path) -> None:
    """``localhost:PORT`` with ::1 listed first: [::1] is bound and 127.0.0.1 named as left out."""
    hosts = tmp_path / "hosts"
    hosts.write_text(_IPV6_FIRST)
    install_program("noop", tmp_path)
    log = tmp_path / "d.jsonl"
    pidfile = tmp_path / "d.pid"
    port = free_port()
    # A private mount namespace: /etc/hosts changes for the daemon alone.
    script = 'mount --bind "$0" /etc/hosts && exec "$@"'
    private = [require_tool("unshare"), "-m", "sh", "-c", script, str(hosts)]
    options = ["--pidfile", str(pidfile), "--log-file", str(log)]
    started = subprocess.run(
        [
            *private,
            str(AIODAEMON),
            "start",
            "app:main",
            *options,
            "--listen",
            f"web=localhost:{port}",
        ],
        capture_output=True,
        text=True,
        cwd=tmp_path,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    try:
        assert started.returncode == 0, started.stderr
        # Ready is said before the log writer's thread has written every record.
        warnings = wait_for(
            lambda: [r for r in read_json_lines(log) if r["event"] == "listen address left out"],
            what="the listen address left out record",
        )
        assert warnings == [
            {
                **warnings[0],
                "level": "warning",
                "socket": "web",
                "address": f"localhost:{port}",
                "bound": f"[::1]:{port}",
                "left_out": [f"127.0.0.1:{port}"],
            }
        ]
    finally:
        aiodaemon_cli("stop", "--pidfile", str(pidfile))


def test_an_ip_literal_is_bound_without_a_warning(tmp_path: Path) -> None:
    """Nothing to leave out: no warning."""
    install_program("noop", tmp_path)
    log = tmp_path / "d.jsonl"
    pidfile = tmp_path / "d.pid"
    options = ["--pidfile", str(pidfile), "--log-file", str(log)]
    started = aiodaemon_cli(
        "start", "app:main", *options, "--listen", f"web=127.0.0.1:{free_port()}", cwd=tmp_path
    )
    try:
        assert started.returncode == 0, started.stderr
        # "ready" is written after any left-out warning: once it is there, none came.
        wait_for(lambda: "ready" in [r["event"] for r in read_json_lines(log)], what="ready")
        assert "listen address left out" not in [r["event"] for r in read_json_lines(log)]
    finally:
        aiodaemon_cli("stop", "--pidfile", str(pidfile))


def test_an_abstract_unix_socket_is_refused_as_such(tmp_path: Path) -> None:
    """``unix:@name``: one line saying abstract sockets are not supported, exit 2."""
    install_program("noop", tmp_path)
    for option in (["--listen", "web=unix:@app"], ["--health", "unix:@app"]):
        result = aiodaemon_cli("start", "app:main", *option, cwd=tmp_path)
        assert result.returncode == 2
        lines = result.stderr.splitlines()
        assert len(lines) == 1, result.stderr
        assert "abstract unix sockets are not supported: 'unix:@app'" in lines[0]
        assert "absolute" in lines[0]
