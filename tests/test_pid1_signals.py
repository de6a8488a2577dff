"""As PID 1, a signal sent to the init's process group reaches the daemon once, through the init."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from .support import PYTHON, clean_env, program, read_json_lines, require_tool, wait_for
from .test_container import child_of


@pytest.mark.root
def test_a_stop_signal_to_the_inits_group_is_one_request(tmp_path: Path) -> None:
    """kill -TERM -PGID of PID 1: the daemon (in a group of its own) stops gracefully, exit 0."""
    log, release = tmp_path / "log.jsonl", tmp_path / "release"
    options = {"log_file": str(log), "listen": {"http": "127.0.0.1:0"}}
    # setsid: PID 1 leads a process group of its own, which unshare is not in.
    namespace = [require_tool("unshare"), "--pid", "--fork", "--mount-proc", "--kill-child"]
    argv = [PYTHON, str(program("held_shutdown")), json.dumps(options), str(release)]
    proc = subprocess.Popen(
        [*namespace, require_tool("setsid"), *argv],
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        start_new_session=True,
    )
    try:
        init = wait_for(lambda: child_of(proc.pid), what="PID 1")
        daemon = wait_for(lambda: child_of(init), what="the daemon behind the init")
        wait_for(lambda: any(r["event"] == "ready" for r in read_json_lines(log)), what="ready")
        assert os.getpgid(daemon) == daemon != os.getpgid(init)
        os.killpg(os.getpgid(init), signal.SIGTERM)
        wait_for(
            lambda: any(r["event"] == "shutdown started" for r in read_json_lines(log)),
            what="the shutdown",
        )
        release.touch()
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    received = [r for r in read_json_lines(log) if r["event"] == "signal received"]
    assert [r["signal"] for r in received] == ["SIGTERM"]
    assert read_json_lines(log)[-1]["status"] == 0


@pytest.mark.root
def test_a_reload_signal_just_after_the_split_waits_for_the_daemon(tmp_path: Path) -> None:
    """SIGHUP forwarded to the daemon before its run phase: it reloads once and runs, not killed."""
    log = tmp_path / "log.jsonl"
    namespace = [require_tool("unshare"), "--pid", "--fork", "--mount-proc", "--kill-child"]
    argv = [PYTHON, str(program("init_early_signal")), json.dumps({"log_file": str(log)})]
    proc = subprocess.Popen(
        [*namespace, *argv], env=clean_env(), stdin=subprocess.DEVNULL, start_new_session=True
    )
    try:

        def reloaded_or_gone() -> bool:
            if proc.poll() is not None:
                return True
            return log.exists() and any(
                r["event"] == "reload finished" for r in read_json_lines(log)
            )

        wait_for(reloaded_or_gone, what="the reload")
        assert proc.poll() is None, f"exit status {proc.returncode}"
        init = wait_for(lambda: child_of(proc.pid), what="PID 1")
        os.kill(init, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    received = [r["signal"] for r in read_json_lines(log) if r["event"] == "signal received"]
    assert received == ["SIGHUP", "SIGTERM"]
