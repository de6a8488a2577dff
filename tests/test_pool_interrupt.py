"""Ctrl-C with a call running in a forked process pool: the graceful stop, exit 0.

The pool's worker, in the terminal's process group, gets the SIGINT too and
hands its ``KeyboardInterrupt`` back as the call's result. Awaited in a
connection's handler it used to be taken as the program asking to end:
"exit requested by a task", status 130. It is that call's failure instead:
the handler's, logged; the stop the SIGINT began goes on, and the other
requests in flight are answered.
"""

from __future__ import annotations

import concurrent.futures
import json
import multiprocessing
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from .support import PYTHON, clean_env, free_port, kill_quietly, program, read_json_lines, wait_for

pytestmark = pytest.mark.filterwarnings(
    # Python 3.12+ warns about forking pytest's threaded process: the pool is short-lived.
    "ignore:This process .* is multi-threaded, use of fork:DeprecationWarning"
)


def _interrupted() -> None:
    raise KeyboardInterrupt


def test_a_pool_workers_keyboardinterrupt_is_told_from_the_programs_own() -> None:
    """A pool's KeyboardInterrupt is from another process; one raised here is not."""
    from aiodaemon._run._user_exit import from_another_process

    context = multiprocessing.get_context("fork")
    with concurrent.futures.ProcessPoolExecutor(1, mp_context=context) as pool:
        remote = pool.submit(_interrupted).exception(timeout=10)
    assert isinstance(remote, KeyboardInterrupt)
    assert from_another_process(remote)
    with pytest.raises(KeyboardInterrupt) as local:
        _interrupted()
    assert not from_another_process(local.value)


def _ask(port: int, line: bytes) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port), timeout=10)
    client.sendall(line)
    return client


def test_ctrl_c_with_a_busy_process_pool_stops_gracefully(tmp_path: Path) -> None:
    """SIGINT to the group: status 0, no exit request, the loop's request answered."""
    port = free_port()
    log, record = tmp_path / "log.jsonl", tmp_path / "record.txt"
    record.touch()
    options = {"detach": False, "log_file": str(log), "listen": {"tcp": f"127.0.0.1:{port}"}}
    proc = subprocess.Popen(
        [PYTHON, str(program("pool_interrupted")), json.dumps(options), str(record)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
        # Its own process group, as on a terminal: the Ctrl-C reaches the pool's worker.
        start_new_session=True,
    )
    try:
        wait_for(lambda: log.exists() and "ready" in log.read_text(), 10, "ready")
        cpu = _ask(port, b"CPU\n")
        slow = _ask(port, b"SLOW\n")
        in_flight = {"cpu started", "slow started"}
        wait_for(lambda: in_flight <= set(record.read_text().splitlines()), 10, "both in flight")
        os.killpg(proc.pid, signal.SIGINT)
        with slow, cpu:
            assert slow.makefile("rb").readline() == b"SLOW done\n"
            assert cpu.makefile("rb").readline() == b""
        _, err = proc.communicate(timeout=15)
    finally:
        kill_quietly(proc.pid)
        proc.wait()
    assert proc.returncode == 0, err
    records = read_json_lines(log)
    events = [r["event"] for r in records]
    assert "exit requested" not in events
    (failed,) = [r for r in records if r["event"] == "connection handler failed"]
    assert "KeyboardInterrupt" in json.dumps(failed)
    assert records[-1]["event"] == "exit"
    assert records[-1]["status"] == 0
