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


#: What the daemon logs when it has handled each signal, by signal.
_HANDLED = {
    "SIGHUP": "reload finished",
    "SIGUSR1": "signal received",
    "SIGUSR2": "upgrade refused",
    "SIGALRM": "alarm handled",
    "SIGTERM": "shutdown started",
    "SIGINT": "shutdown started",
}


@pytest.mark.root
@pytest.mark.parametrize("name", list(_HANDLED))
def test_a_signal_just_after_the_split_waits_for_the_run_phase(tmp_path: Path, name: str) -> None:
    """A signal forwarded before the daemon's run phase is handled by it, never its default action.

    Every signal the run phase handles (and an ``on_signal`` one) stays held in
    the daemon half from the split until its loop lets it in.
    """
    log = tmp_path / "log.jsonl"
    namespace = [require_tool("unshare"), "--pid", "--fork", "--mount-proc", "--kill-child"]
    argv = [PYTHON, str(program("init_early_signal")), json.dumps({"log_file": str(log)}), name]
    proc = subprocess.Popen(
        [*namespace, *argv], env=clean_env(), stdin=subprocess.DEVNULL, start_new_session=True
    )
    stops = name in ("SIGTERM", "SIGINT")
    try:

        def handled_or_gone() -> bool:
            if proc.poll() is not None:
                return True
            return log.exists() and any(r["event"] == _HANDLED[name] for r in read_json_lines(log))

        wait_for(handled_or_gone, what=f"the daemon's handling of {name}")
        if not stops:
            assert proc.poll() is None, f"exit status {proc.returncode}"
            init = wait_for(lambda: child_of(proc.pid), what="PID 1")
            os.kill(init, signal.SIGTERM)
        # Stopped before it was ready: a failed start (1), not killed (128 + N).
        assert proc.wait(timeout=30) == (1 if stops else 0)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    records = read_json_lines(log)
    assert _HANDLED[name] in [r["event"] for r in records]
    received = [r["signal"] for r in records if r["event"] == "signal received"]
    # An on_signal handler's signal has no "signal received" record of its own.
    first = [] if name == "SIGALRM" else [name]
    assert received == (first if stops else [*first, "SIGTERM"])
