"""The control server's connection cap under a low RLIMIT_NOFILE: the service keeps serving."""

from __future__ import annotations

import contextlib
import resource
import select
import socket
import subprocess
from pathlib import Path

from .support import (
    AIODAEMON,
    aiodaemon_cli,
    clean_env,
    free_port,
    install_program,
    read_pid,
    wait_for,
    wait_gone,
)


def _nofile_32() -> None:
    resource.setrlimit(resource.RLIMIT_NOFILE, (32, 32))


def test_idle_control_clients_leave_descriptors_for_the_service(tmp_path: Path) -> None:
    """At RLIMIT_NOFILE 32, 20 silent control clients: most are told busy, HTTP still answers."""
    install_program("upgrade_app", tmp_path)
    pidfile, port = tmp_path / "app.pid", free_port()
    started = subprocess.run(
        [AIODAEMON, "start", "app:main", "--pidfile", pidfile, "--log-file",
         tmp_path / "app.jsonl", "--listen", f"http=127.0.0.1:{port}"],
        capture_output=True, text=True, cwd=tmp_path, env=clean_env(),
        stdin=subprocess.DEVNULL, timeout=45, preexec_fn=_nofile_32, check=False,
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    with contextlib.ExitStack() as stack:
        idle = []
        for _ in range(20):
            client = stack.enter_context(socket.socket(socket.AF_UNIX))
            client.connect(f"{pidfile}.ctl")
            idle.append(client)

        def answered() -> bool:
            readable, _, _ = select.select(idle, [], [], 0.05)
            return len(readable) >= 16

        # Past the cap (4 at 32 descriptors), each is told "busy" and closed at once.
        wait_for(answered, what="busy answers to the clients past the cap")
        assert b"busy: 4 control connections open" in idle[-1].recv(4096)
        with socket.create_connection(("127.0.0.1", port), timeout=10) as http:
            http.sendall(b"GET / HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
            assert f" {pid}".encode() in http.recv(4096)
    stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
    assert stopped.returncode == 0, stopped.stderr
    wait_gone(pid)
