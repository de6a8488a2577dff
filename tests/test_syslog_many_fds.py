"""Syslog over TCP from a daemon holding more than 1,024 descriptors.

A socket past fd 1023 is out of ``select()``'s range: the writer's check for a
collector that closed the connection raised ``ValueError``, which ended the
log writer's thread, and with it the log file too, for the rest of the
daemon's life. A real daemon, a real TCP collector that comes up late.
"""

from __future__ import annotations

import json
import re
import signal
import socket
import subprocess
from pathlib import Path

from .support import PYTHON, clean_env, free_port, program, read_json_lines, wait_for


def _ticks(data: bytes) -> list[int]:
    return [int(n) for n in re.findall(rb'"event":"tick"[^}]*"n":(\d+)', data)]


def test_a_collector_reached_past_fd_1023_and_the_log_file_both_go_on(tmp_path: Path) -> None:
    """Up once the daemon holds 1,100 descriptors: syslog gets the ticks, the file keeps all."""
    port = free_port()  # nothing listens yet: the daemon retries every half second
    log_file = tmp_path / "app.jsonl"
    options = {"syslog": f"tcp://127.0.0.1:{port}", "log_file": str(log_file)}
    daemon = subprocess.Popen(
        [PYTHON, str(program("syslog_many_fds")), json.dumps(options)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        env=clean_env(),
    )
    received = bytearray()
    try:
        # Ticks come after the startup hook that took the descriptors.
        wait_for(lambda: log_file.exists() and "tick" in log_file.read_text(), 30, "the first tick")
        with socket.create_server(("127.0.0.1", port)) as server:
            server.settimeout(30)
            conn, _ = server.accept()
            with conn:
                conn.settimeout(30)
                while len(_ticks(bytes(received))) < 30:
                    chunk = conn.recv(65536)
                    assert chunk, "the daemon closed its syslog connection"
                    received += chunk
                in_file = len(_ticks(log_file.read_bytes()))
                wait_for(
                    lambda: len(_ticks(log_file.read_bytes())) > in_file + 30,
                    30,
                    "more ticks in the log file",
                )
                daemon.send_signal(signal.SIGTERM)
                while chunk := conn.recv(65536):
                    received += chunk
        _, stderr = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
    assert daemon.returncode == 0, stderr
    assert b"log writer failed" not in stderr
    records = read_json_lines(log_file)
    assert records[-1]["event"] == "exit"
    assert not [r for r in records if r["event"] == "cannot write to log sink"]
    # Every tick the file holds after the collector came up reached it too, in order.
    sent = _ticks(bytes(received))
    assert sent == list(range(sent[0], sent[0] + len(sent)))
    assert sent[-1] == max(_ticks(log_file.read_bytes()))
