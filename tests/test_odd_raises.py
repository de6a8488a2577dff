"""What ``except Exception`` misses, raised by the program, is a failure like any other.

Before, a CancelledError that ended ``main`` or a startup hook (raised by the
program, or its own ``task.cancel()``) was taken for the daemon's own
cancellation: the shutdown never began, and the daemon ran on for ever. A
GeneratorExit or a BaseException subclass was reported as aiodaemon's
"internal task failed", left a startup hanging, or stopped the daemon from a
reload hook; an exception whose ``__str__`` raises put aiodaemon's own
traceback on the terminal and named the wrong error.
"""

from __future__ import annotations

import json
import signal
import socket
from pathlib import Path

import pytest

from .support import ForegroundDaemon

#: Each WHAT of ``tests/programs/odd_raise.py`` and the error it is reported as.
RAISED = {
    "cancelled": "CancelledError",
    "self-cancel": "CancelledError",
    "generatorexit": "GeneratorExit",
    "base": "ProgramBase: the program's own",
    "badstr": "Unprintable: <exception str() failed>",
    "huge": f"ValueError: {'x' * 2000}... (98000 more characters)",
}


def finish(d: ForegroundDaemon) -> tuple[int, str]:
    """The exit status and stderr of ``d``, killed if it does not end by itself."""
    try:
        # Read while it runs: a long traceback fills the pipe.
        _, err = d.proc.communicate(timeout=20)
        return d.proc.returncode, err
    finally:
        d.kill()


def assert_no_internal_failure(d: ForegroundDaemon, err: str) -> None:
    """Nothing claims a failure of aiodaemon's own; the run ended with its ``exit`` record."""
    events = d.events()
    assert events[-1] == "exit"
    assert "internal task failed" not in events
    assert "unhandled exception in event loop" not in events
    assert "During handling of the above exception" not in err


@pytest.mark.parametrize("what", list(RAISED))
def test_main_raising_it_fails_the_run(tmp_path: Path, what: str) -> None:
    """``main`` ends with it: "main failed: <error>" (2,000 characters at most), exit 1."""
    d = ForegroundDaemon(tmp_path, "odd_raise", f"main:{what}", pidfile=str(tmp_path / "d.pid"))
    code, err = finish(d)
    assert code == 1, err
    assert_no_internal_failure(d, err)
    assert d.recorded() == ["startup hook", "main", "shutdown hook"]
    (failed,) = [r for r in d.lines() if r["event"] == "main failed"]
    assert failed["level"] == "error"
    assert d.lines()[-1]["reason"] == f"main failed: {RAISED[what]}"
    assert err.endswith(f"aiodaemon: main failed: {RAISED[what]}\n")
    assert not (tmp_path / "d.pid").exists()


@pytest.mark.parametrize("what", ["cancelled", "self-cancel", "generatorexit", "base"])
def test_a_startup_hook_raising_it_fails_the_start(tmp_path: Path, what: str) -> None:
    """A startup hook ends with it: the start fails at once (not after start_timeout), exit 1."""
    d = ForegroundDaemon(tmp_path, "odd_raise", f"startup:{what}", start_timeout=60)
    code, err = finish(d)
    assert code == 1, err
    assert_no_internal_failure(d, err)
    assert "ready" not in d.events()
    assert d.recorded() == ["startup hook", "shutdown hook"]
    assert d.lines()[-1]["reason"] == f"startup hook __main__.startup failed: {RAISED[what]}"


@pytest.mark.parametrize("what", ["cancelled", "generatorexit", "base"])
def test_a_reload_hook_raising_it_fails_the_reload_only(tmp_path: Path, what: str) -> None:
    """A reload hook ends with it: the reload failed (not "cancelled"), the daemon runs on."""
    d = ForegroundDaemon(tmp_path, "odd_raise", f"reload:{what}")
    try:
        d.wait_event("reload finished")
        (finished,) = [r for r in d.lines() if r["event"] == "reload finished"]
        assert finished["ok"] is False
        assert finished["error"] == RAISED[what]
        assert "reload cancelled" not in d.events()
        d.signal(signal.SIGTERM)
        code, err = finish(d)
    finally:
        d.kill()
    assert code == 0, err
    assert_no_internal_failure(d, err)


@pytest.mark.parametrize("what", ["cancelled", "generatorexit", "base"])
def test_a_shutdown_hook_raising_it_is_logged(tmp_path: Path, what: str) -> None:
    """A shutdown hook ends with it: "shutdown hook failed" with its traceback; the exit goes on."""
    d = ForegroundDaemon(tmp_path, "odd_raise", f"shutdown:{what}")
    code, err = finish(d)  # main returns at once
    assert code == 0, err
    assert_no_internal_failure(d, err)
    (failed,) = [r for r in d.lines() if r["event"] == "shutdown hook failed"]
    assert failed["hook"] == "__main__.shutdown"
    assert "exception" in failed


@pytest.mark.parametrize("what", ["cancelled", "generatorexit", "base"])
def test_an_on_signal_handler_raising_it_is_logged(tmp_path: Path, what: str) -> None:
    """An on_signal handler ends with it: "signal handler failed", and the daemon runs on."""
    d = ForegroundDaemon(tmp_path, "odd_raise", f"signal:{what}")
    try:
        d.wait_event("signal handler failed")
        d.signal(signal.SIGTERM)
        code, err = finish(d)
    finally:
        d.kill()
    assert code == 0, err
    assert_no_internal_failure(d, err)
    (failed,) = [r for r in d.lines() if r["event"] == "signal handler failed"]
    assert failed["handler"] == "__main__.winch"
    assert RAISED[what].split(":")[0] in json.dumps(failed["exception"])


@pytest.mark.parametrize("what", ["cancelled", "self-cancel", "generatorexit", "base"])
def test_a_readiness_check_raising_it_fails_readyz_with_a_reason(tmp_path: Path, what: str) -> None:
    """A readiness check ends with it: /readyz 503 and "readiness check failed" naming it."""
    health = tmp_path / "health.sock"
    d = ForegroundDaemon(tmp_path, "odd_raise", f"readiness:{what}", health=f"unix:{health}")
    try:
        d.wait_event("ready")
        with socket.socket(socket.AF_UNIX) as probe:
            probe.settimeout(10)
            probe.connect(str(health))
            probe.sendall(b"GET /readyz HTTP/1.1\r\nHost: d\r\n\r\n")
            answer = b"".join(iter(lambda: probe.recv(4096), b""))
        assert answer.startswith(b"HTTP/1.1 503 ")
        d.wait_event("readiness check failed")
        (failed,) = [r for r in d.lines() if r["event"] == "readiness check failed"]
        assert failed["reason"] == f"__main__.check: {RAISED[what]}"
        d.signal(signal.SIGTERM)
        code, err = finish(d)
    finally:
        d.kill()
    assert code == 0, err
    assert_no_internal_failure(d, err)


def test_a_failure_after_main_closed_stderr_is_in_the_log_only(tmp_path: Path) -> None:
    """main closes sys.stderr, then raises: exit 1, the log says why, nothing on fd 2."""
    d = ForegroundDaemon(tmp_path, "odd_raise", "main:closed-stderr")
    code, err = finish(d)
    assert code == 1
    assert err == ""
    assert_no_internal_failure(d, err)
    assert d.lines()[-1]["reason"] == "main failed: ValueError: after closing stderr"
