"""PID 1 in a PID namespace: orphans reaped, signals honoured, the daemon's status kept."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
from pathlib import Path

import pytest

from .support import (
    AIODAEMON,
    PYTHON,
    children,
    clean_env,
    free_port,
    has_line,
    install_program,
    open_fds,
    proc_state,
    program,
    require_tool,
    wait_for,
)


@pytest.mark.root
def test_pid1_reaps_orphans_and_exits_gracefully(tmp_path: Path) -> None:
    """As PID 1: no zombie remains, subprocess statuses are right, SIGTERM exits 0."""
    require_tool("unshare")
    record = tmp_path / "record.txt"
    record.touch()
    script = program("init_app")
    proc = subprocess.Popen(
        ["unshare", "--pid", "--fork", "--kill-child", PYTHON, str(script), str(record)],
        env=clean_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        # unshare's child is PID 1 of the new namespace: our init.
        init = wait_for(lambda: children(proc.pid), what="the namespace's init")[0]
        wait_for(lambda: "subprocess 7" in record.read_text(), what="the subprocess status")
        assert record.read_text().splitlines()[0] == "pid 2"  # the daemon runs under init

        def no_orphans_left() -> bool:
            # Every orphan (sleep) has exited and been reaped: only the daemon remains.
            kids = children(init)
            return len(kids) == 1 and all(proc_state(k) not in ("Z", None) for k in kids)

        wait_for(no_orphans_left, timeout=10, what="orphans to be reaped")
        os.kill(init, signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
        assert record.read_text().splitlines()[-1] == "stopping"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _, err = proc.communicate()
    assert '"event":"exit"' in err.replace(" ", "")


@pytest.mark.root
def test_pid1_passes_on_the_daemon_status(tmp_path: Path) -> None:
    """PID 1 exits with the daemon's own status (1 when main raises)."""
    script = program("init_crash")
    result = subprocess.run(
        ["unshare", "--pid", "--fork", "--kill-child", PYTHON, str(script)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert "crash in a container" in result.stderr


@pytest.mark.root
def test_pid1_holds_none_of_the_daemons_descriptors(tmp_path: Path) -> None:
    """As PID 1 the init keeps only fds 0-2: once the daemon closes its listener, connects fail."""
    unshare = require_tool("unshare")
    record = tmp_path / "record.txt"
    record.touch()
    port = free_port()
    daemon = [PYTHON, str(program("init_server")), str(port), str(record)]
    proc = subprocess.Popen(
        [unshare, "--pid", "--fork", "--mount-proc", "--kill-child", *daemon],
        env=clean_env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        init = wait_for(lambda: children(proc.pid), what="the namespace's init")[0]
        wait_for(lambda: "serving" in record.read_text(), what="the daemon to serve")
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            assert client.recv(16) == b"hi\n"
        os.kill(init, signal.SIGTERM)  # passed on to the daemon, whose hook closes the server
        wait_for(lambda: "closed" in record.read_text(), what="the daemon to close its server")
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", port), timeout=10).close()
        assert sorted(open_fds(init)) == [0, 1, 2]
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.root
def test_pid1_a_sigterm_while_the_program_imports_ends_the_container(tmp_path: Path) -> None:
    """As PID 1, SIGTERM before the daemon exists ends the start (143), as for any process."""
    unshare = require_tool("unshare")
    install_program("init_slow_import", tmp_path, "slowimport.py")
    record = tmp_path / "record.txt"
    record.touch()
    gate = tmp_path / "gate"
    os.mkfifo(gate)
    env = clean_env({"RECORD": str(record), "GATE": str(gate)})
    env["PYTHONPATH"] = os.pathsep.join([str(tmp_path), env["PYTHONPATH"]])
    proc = subprocess.Popen(
        [unshare, "--pid", "--fork", "--kill-child", str(AIODAEMON), "run", "slowimport:main"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        init = wait_for(lambda: children(proc.pid), what="the namespace's init")[0]
        wait_for(lambda: has_line(record, "importing"), what="the program's import")
        # docker stop, a deleted pod: the kernel drops it for an init without a handler.
        os.kill(init, signal.SIGTERM)
        # The import goes on, if the signal was dropped, to a daemon that runs on.
        # Non-blocking: a program the signal ended no longer has the FIFO open.
        with contextlib.suppress(OSError):
            os.close(os.open(gate, os.O_WRONLY | os.O_NONBLOCK))
        assert proc.wait(timeout=15) == 128 + signal.SIGTERM
        assert not has_line(record, "running")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _, err = proc.communicate()
    assert "Traceback" not in err
