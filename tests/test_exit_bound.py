"""The daemon's end stays within its shutdown budget whatever the program left running.

A non-daemon thread (a plain ``threading.Thread``, a ``ThreadPoolExecutor`` of
the program's) would be joined by the interpreter for ever, an ``atexit``
function (multiprocessing's joins its children) may never return: the
process still ends, status 4, saying why. Real daemons, real signals.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .support import (
    PYTHON,
    aiodaemon_cli,
    clean_env,
    free_port,
    has_line,
    is_alive,
    kill_quietly,
    past_duplicate_window,
    program,
    python,
    read_json_lines,
    read_pid,
    wait_for,
    wait_gone,
)

#: How long a test waits for an exit that should come after about 1-2 s (the
#: 1 s budget, the drain, a second's grace): generous for a loaded machine,
#: far below the hour the program's leftovers would keep it alive.
EXIT_BOUND = 30.0


class Leftovers:
    """``tests/programs/exit_leftovers.py KIND`` with a pidfile and a log file in ``tmp_path``."""

    def __init__(self, tmp_path: Path, kind: str, **options: Any) -> None:
        self.record, self.log = tmp_path / "record.txt", tmp_path / "log.jsonl"
        self.pidfile = tmp_path / "d.pid"
        self.record.touch()
        self.options = {
            "detach": False,
            "pidfile": str(self.pidfile),
            "log_file": str(self.log),
            "shutdown_timeout": 1,
            **options,
        }
        self.argv = [PYTHON, str(program("exit_leftovers")), json.dumps(self.options)]
        self.argv += [str(self.record), kind]

    def start(self) -> subprocess.Popen[str]:
        """Start it; the process is the daemon (foreground) or its launcher (detached)."""
        return subprocess.Popen(
            self.argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
            cwd=self.pidfile.parent,
        )

    def start_detached(self, procs: list[subprocess.Popen[str]]) -> int:
        """Start it detached (``detach=True`` given); the daemon's pid once main runs."""
        launcher = self.start()
        procs.append(launcher)
        _, err = launcher.communicate(timeout=60)
        assert launcher.returncode == 0, err
        pid = read_pid(self.pidfile)
        self.wait_main()
        return pid

    def wait_main(self) -> None:
        wait_for(lambda: has_line(self.record, "main running"), 30, "main running")

    def records(self, event: str) -> list[dict[str, object]]:
        return [r for r in read_json_lines(self.log) if r["event"] == event]


@pytest.fixture
def procs() -> Iterator[list[subprocess.Popen[str]]]:
    """Processes a test started: killed and reaped if it leaves any."""
    started: list[subprocess.Popen[str]] = []
    yield started
    for proc in started:
        kill_quietly(proc.pid)
        proc.communicate()


def _stop_foreground(
    d: Leftovers, procs: list[subprocess.Popen[str]]
) -> tuple[int, str, list[str]]:
    """Start in the foreground, SIGTERM once main runs; the status, stderr and the log's events."""
    proc = d.start()
    procs.append(proc)
    d.wait_main()
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=EXIT_BOUND)
    return proc.returncode, err, [str(r["event"]) for r in read_json_lines(d.log)]


def test_a_thread_left_by_a_shutdown_hook_cannot_keep_the_daemon_alive(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    """An hour-long non-daemon thread: exit 4 within the budget, the thread named, pidfile gone.

    The threads that end in time (a short one, an idle executor of the
    program's) are waited for and not named.
    """
    d = Leftovers(tmp_path, "thread", shutdown_timeout=2)
    status, err, events = _stop_foreground(d, procs)
    assert status == 4, err
    assert (
        "aiodaemon: forced exit (shutdown took longer than 2.0s; "
        "threads still running: leftover-sleeper), status 4"
    ) in err
    [stuck] = d.records("thread still running at exit")
    assert stuck["thread"] == "leftover-sleeper"
    assert "threading.py" in str(stuck["stack"])
    assert events[-3:] == ["exit", "thread still running at exit", "forced exit"]
    assert d.records("forced exit")[0]["status"] == 4
    assert not d.pidfile.exists()
    assert not (tmp_path / "d.pid.ctl").exists()


def test_a_daemon_waiting_for_a_leftover_thread_holds_nothing_any_more(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    """After the exit record, while the thread is waited for: no pidfile, no socket, no listener.

    They were held until the budget's end: `start` said "already running"
    and started nothing, and clients queued in the listener, never answered.
    """
    port = free_port()
    health = tmp_path / "health.sock"
    d = Leftovers(tmp_path, "thread", shutdown_timeout=5,
                  listen={"app": f"127.0.0.1:{port}"}, health=f"unix:{health}")  # fmt: skip
    proc = d.start()
    procs.append(proc)
    d.wait_main()
    control = tmp_path / "d.pid.ctl"
    assert [f.exists() for f in (d.pidfile, control, health)] == [True, True, True]
    proc.send_signal(signal.SIGTERM)
    wait_for(lambda: d.records("exit"), EXIT_BOUND, "the exit record")
    # Released right after the exit record, when only the thread keeps the process.
    files = (d.pidfile, control, health)
    wait_for(lambda: not any(f.exists() for f in files), EXIT_BOUND, "the files removed")
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", port), timeout=5).close()
    # Still a process in its last steps, found by its exit mark as `stop` finds it.
    status = aiodaemon_cli("status", "--pidfile", d.pidfile)
    assert (status.returncode, status.stdout) == (
        0,
        f"stopping (pid {proc.pid}, pidfile {d.pidfile} removed as it exits)\n",
    )
    # All that while the process waited for its thread (within its budget).
    assert proc.poll() is None
    _, err = proc.communicate(timeout=EXIT_BOUND)
    assert proc.returncode == 4, err
    assert "threads still running: leftover-sleeper), status 4" in err


def test_an_executor_of_the_program_cannot_keep_the_daemon_alive(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    """main's hour-long call in its own ThreadPoolExecutor: exit 4 in the budget, worker named."""
    d = Leftovers(tmp_path, "pool")
    status, err, _ = _stop_foreground(d, procs)
    assert status == 4, err
    # Executor workers are the interpreter exit's to end (it joins them): the
    # backstop names the busy one, the log is closed by then.
    assert "threads still running: own-pool_0), status 4" in err
    assert read_json_lines(d.log)[-1]["event"] == "exit"
    assert not d.pidfile.exists()


def test_an_idle_process_pool_of_the_program_ends_with_the_daemon(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    """A ProcessPoolExecutor never shut down: exit 0 at once, its worker processes gone."""
    d = Leftovers(tmp_path, "process-pool", shutdown_timeout=5)
    proc = d.start()
    procs.append(proc)
    d.wait_main()
    lines = d.record.read_text().splitlines()
    workers = [int(line.split()[1]) for line in lines if line.startswith("worker ")]
    assert workers
    try:
        proc.send_signal(signal.SIGTERM)
        # Not communicate(): a worker left running would hold the stderr pipe open.
        assert proc.wait(timeout=EXIT_BOUND) == 0
        events = [str(r["event"]) for r in read_json_lines(d.log)]
        assert "thread still running at exit" not in events
        assert "forced exit" not in events
        assert not [pid for pid in workers if is_alive(pid)]
    finally:
        for pid in workers:
            kill_quietly(pid)


def test_a_busy_process_pool_cannot_outlive_the_daemon(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    """An hour-long call in the program's process pool: exit 4 in the budget, said by the log.

    The call and the workers killed are named, and the ``exit`` record has the
    status the process leaves with: before, the log ended with ``exit`` status
    0 and only stderr (``/dev/null`` when detached) said what was killed.
    """
    d = Leftovers(tmp_path, "busy-process-pool")
    proc = d.start()
    procs.append(proc)
    d.wait_main()
    workers = _recorded(d, "worker")
    assert workers
    try:
        proc.send_signal(signal.SIGTERM)
        # Not communicate(): a worker left running would hold the stderr pipe open.
        assert proc.wait(timeout=EXIT_BOUND) == 4
        wait_for(lambda: not [pid for pid in workers if is_alive(pid)], 10, "the workers' end")
    finally:
        for pid in workers:
            kill_quietly(pid)
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert "process pool calls still running: time.sleep; child processes killed: " in err
    [call] = d.records("process pool call killed at exit")
    assert (call["call"], call["args"]) == ("time.sleep", "(3600,)")
    killed = d.records("child process killed at exit")
    assert sorted(int(str(r["child_pid"])) for r in killed) == sorted(workers)
    events = [str(r["event"]) for r in read_json_lines(d.log)]
    assert events[-2:] == ["forced exit", "exit"]
    [last] = d.records("exit")
    assert last["status"] == 4
    assert str(last["reason"]).startswith("shutdown took longer than 1.0s; process pool calls")


def test_multiprocessing_children_the_program_never_stopped_cannot_keep_its_port(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    """Non-daemonic workers blocked on a queue: killed at the budget's end, named; the port is free.

    multiprocessing's exit joins them for ever: the backstop ended the daemon
    (status 4, its log's last record ``exit`` status 0) and left them running
    under init, holding the ``listen=`` port, so the next start failed with
    "Address already in use".
    """
    port = free_port()
    d = Leftovers(tmp_path, "mp-workers", listen={"http": f"127.0.0.1:{port}"})
    proc = d.start()
    procs.append(proc)
    d.wait_main()
    children = _recorded(d, "child")
    assert len(children) == 2
    try:
        proc.send_signal(signal.SIGTERM)
        # Not communicate(): a child left running would hold the stderr pipe open.
        assert proc.wait(timeout=EXIT_BOUND) == 4
        wait_for(lambda: not [pid for pid in children if is_alive(pid)], 10, "the children's end")
    finally:
        for pid in children:
            kill_quietly(pid)
    assert not listening_on(port)
    killed = d.records("child process killed at exit")
    assert sorted(int(str(r["child_pid"])) for r in killed) == sorted(children)
    assert all(str(r["process"]).startswith("ForkProcess-") for r in killed)
    events = [str(r["event"]) for r in read_json_lines(d.log)]
    assert events[-2:] == ["forced exit", "exit"]
    assert d.records("exit")[0]["status"] == 4
    assert proc.stderr is not None
    err = proc.stderr.read()
    assert "aiodaemon: forced exit (shutdown took longer than 1.0s; child processes killed: " in err
    assert all(f"(pid {pid})" in err for pid in children)
    assert not d.pidfile.exists()


def test_an_atexit_function_that_never_returns_cannot_keep_the_daemon_alive(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    """An hour-long atexit function: the process still ends, status 4, one line on stderr."""
    d = Leftovers(tmp_path, "atexit")
    status, err, events = _stop_foreground(d, procs)
    assert status == 4, err
    assert (
        "aiodaemon: forced exit (the process's exit took longer than the 1.0s "
        "shutdown budget; atexit functions still running), status 4"
    ) in err
    assert events[-1] == "exit"
    assert not d.pidfile.exists()


NEVER_BEGAN = (
    "forced exit (shutdown took longer than 1.0s (event loop blocked: the shutdown never began))"
)


def test_a_lone_sigterm_the_blocked_loop_never_reads_still_ends_the_daemon(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    """``main`` blocking the loop for good: one SIGTERM still ends it, within the budget, status 4.

    The loop never read the signal, so no shutdown began and no deadline ran:
    one Ctrl-C did nothing at all, and only a second stop signal or SIGKILL
    ended the daemon. The log says where the loop is stuck.
    """
    d = Leftovers(tmp_path, "busy-main")
    status, err, events = _stop_foreground(d, procs)
    assert status == 4, err
    assert f"aiodaemon: {NEVER_BEGAN}, status 4" in err
    [stuck] = d.records("task stuck at shutdown")
    assert "time.sleep(0.05)" in str(stuck["stack"])
    assert events[-2:] == ["forced exit", "exit"]
    assert not d.pidfile.exists()


def test_stop_of_a_daemon_whose_loop_never_reads_the_sigterm_says_how_it_ended(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    """``aiodaemon stop``: no answer, SIGTERM, then the forced exit a budget later; not SIGKILL."""
    d = Leftovers(tmp_path, "busy-main", detach=True)
    pid = d.start_detached(procs)
    result = aiodaemon_cli("stop", "--pidfile", d.pidfile, "--timeout", str(EXIT_BOUND))
    assert result.returncode == 0, result.stderr
    assert f"stopped (pid {pid}); it exited with status 4: {NEVER_BEGAN}" in result.stderr
    assert "SIGKILL" not in result.stderr
    assert not d.pidfile.exists()


@pytest.mark.parametrize("uvloop", [True, False], ids=["uvloop", "asyncio"])
def test_status_of_a_daemon_whose_loop_never_reads_the_sigterm_says_stopping(
    tmp_path: Path, procs: list[subprocess.Popen[str]], uvloop: bool
) -> None:
    """From the SIGTERM on, ``status`` says "stopping" (0), though the blocked loop cannot answer.

    The stopping mark was set by the loop alone: unanswered, ``status`` said
    "unknown" (4), and "running" from the pidfile once the forced exit had
    closed the control socket.
    """
    d = Leftovers(tmp_path, "busy-main", detach=True, shutdown_timeout=4, uvloop=uvloop)
    pid = d.start_detached(procs)
    os.kill(pid, signal.SIGTERM)

    def ask() -> subprocess.CompletedProcess[str] | None:
        result = aiodaemon_cli("status", "--pidfile", d.pidfile, "--timeout", "0.2")
        return result if result.stdout.startswith("stopping") else None

    result = wait_for(ask, 3, "status saying stopping")
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"stopping (pid {pid}, pidfile {d.pidfile}")
    assert is_alive(pid)
    wait_gone(pid, EXIT_BOUND)


def _stop_leaving(
    d: Leftovers, procs: list[subprocess.Popen[str]], kind: str
) -> tuple[int, int, str]:
    """Start in the foreground, SIGTERM it, wait for it and for the child it recorded as ``kind``.

    Returns:
        The child's pid, the daemon's exit status and its stderr.
    """
    child = 0
    try:
        proc = d.start()
        procs.append(proc)
        d.wait_main()
        child = _recorded(d, kind)[0]
        proc.send_signal(signal.SIGTERM)
        # Not communicate(): the child holds the daemon's stderr open.
        proc.wait(timeout=EXIT_BOUND)
        # Killed as multiprocessing's exit would have ended it, not left running.
        wait_gone(child, EXIT_BOUND)
    finally:
        if child:
            kill_quietly(child)
    _, err = proc.communicate(timeout=EXIT_BOUND)
    return child, proc.returncode, err


def test_a_manager_whose_finalizer_an_atexit_function_kept_from_running_is_killed(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    """The backstop also ends a ``multiprocessing.Manager()``'s server, saying so.

    Its finalizer (multiprocessing's exit function) would have shut it down,
    but a later ``atexit`` function, run first, never returned: left, the
    server ran on for ever, holding the daemon's stderr and its sockets.
    """
    d = Leftovers(tmp_path, "atexit-manager")
    server, status, err = _stop_leaving(d, procs, "manager")
    assert status == 4, err
    assert f"atexit functions still running; manager servers killed: {server}), status 4" in err


def test_a_multiprocessing_child_that_ignores_sigterm_cannot_keep_the_daemon_alive(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    """multiprocessing's atexit joins a child that ignores its SIGTERM: bounded, status 4."""
    d = Leftovers(tmp_path, "mp-child")
    child, status, err = _stop_leaving(d, procs, "child")
    assert status == 4, err
    assert (
        f"atexit functions still running; multiprocessing children killed: {child}), status 4"
    ) in err
    assert not d.pidfile.exists()


def _recorded(d: Leftovers, *kinds: str) -> list[int]:
    """The pids the program recorded as ``KIND PID`` lines, for each of ``kinds``."""
    lines = d.record.read_text().splitlines()
    return [int(line.split()[1]) for line in lines if line.split()[0] in kinds]


def _children_of(d: Leftovers) -> set[int]:
    """The pids of the program's daemonic child, process pool workers and manager server."""
    return set(_recorded(d, "child", "worker", "manager"))


@pytest.mark.parametrize("second_signal", [False, True], ids=["budget-exceeded", "second-sigterm"])
def test_a_forced_exit_leaves_no_child_the_usual_exit_would_end(
    tmp_path: Path, procs: list[subprocess.Popen[str]], second_signal: bool
) -> None:
    """A forced exit kills the daemonic children and pool workers; left, they kept the port.

    The usual exit ends them (multiprocessing's exit function, the pool's
    shutdown); ``os._exit`` skipped both, and forked from the daemon they held
    its ``listen=`` socket: the next start failed with "Address already in use".
    """
    port = free_port()
    # With a second signal, a budget it cannot run out before that signal comes.
    budget = 60 if second_signal else 1
    listen = {"http": f"127.0.0.1:{port}"}
    d = Leftovers(tmp_path, "stuck-with-children", listen=listen, shutdown_timeout=budget)
    proc = d.start()
    procs.append(proc)
    d.wait_main()
    children = _children_of(d)
    try:
        # The daemonic child, the manager's server, and the pool's workers.
        assert len(children) >= 3
        assert _recorded(d, "manager")
        proc.send_signal(signal.SIGTERM)
        if second_signal:
            wait_for(lambda: has_line(d.record, "hook stuck"), 30, "the stuck shutdown hook")
            past_duplicate_window()
            proc.send_signal(signal.SIGTERM)
        # Not communicate(): a child left running would hold the stderr pipe open.
        assert proc.wait(timeout=EXIT_BOUND) == (143 if second_signal else 4)
        wait_for(lambda: not [pid for pid in children if is_alive(pid)], 10, "the children's end")
    finally:
        for pid in children:
            kill_quietly(pid)
    if not second_signal:
        # Past the budget (not in a signal handler), each is named in the log first.
        killed = d.records("child process killed at exit")
        assert {int(str(r["child_pid"])) for r in killed} == children
    # Nothing listens on the port any more (a child that kept the listen=
    # socket would). Not a bind of it: another test's worker may be using the
    # port meanwhile as a client's ephemeral one, which says nothing of ours.
    assert not listening_on(port)


def test_a_detached_daemon_with_a_thread_left_is_stopped_without_sigkill(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    """`aiodaemon stop` of a detached daemon leaving a thread: it exits by itself, no SIGKILL."""
    d = Leftovers(tmp_path, "thread", detach=True)
    pid = d.start_detached(procs)
    try:
        # Without the bound, stop waits its whole --timeout, then sends SIGKILL and says so.
        result = aiodaemon_cli("stop", "--pidfile", d.pidfile, "--timeout", "20", timeout=60)
        assert result.returncode == 0, result.stderr
        assert "SIGKILL" not in result.stderr
        wait_gone(pid, EXIT_BOUND)
    finally:
        kill_quietly(pid)
    assert [r["thread"] for r in d.records("thread still running at exit")] == ["leftover-sleeper"]
    assert not d.pidfile.exists()


def test_an_upgraded_daemon_leaving_a_thread_still_exits(
    tmp_path: Path, procs: list[subprocess.Popen[str]]
) -> None:
    """After an upgrade's hand-over, the old daemon's leftover thread cannot keep it alive."""
    d = Leftovers(tmp_path, "thread", detach=True)
    old = d.start_detached(procs)
    new = 0
    try:
        result = aiodaemon_cli("upgrade", "--pidfile", d.pidfile, "--timeout", "60", timeout=90)
        assert result.returncode == 0, result.stderr
        new = int(result.stdout.split()[0])
        wait_gone(old, EXIT_BOUND)
        stuck = d.records("thread still running at exit")
        assert [(r["pid"], r["thread"]) for r in stuck] == [(old, "leftover-sleeper")]
        stopped = aiodaemon_cli("stop", "--pidfile", d.pidfile, "--timeout", "20", timeout=60)
        assert stopped.returncode == 0, stopped.stderr
        wait_gone(new, EXIT_BOUND)
    finally:
        for pid in (old, new):
            if pid:
                kill_quietly(pid)


def test_a_program_may_go_on_after_run(tmp_path: Path) -> None:
    """Work after run()'s SystemExit, and a second run(), outlast the budget: not cut short.

    The exit's bound is for the interpreter's exit: before, it was armed when
    run() returned, so both were killed a second past the first budget; and
    the program's idle executor made run() shut every thread pool down.
    """
    record = tmp_path / "record.txt"
    options = {"detach": False, "shutdown_timeout": 1, "log_file": str(tmp_path / "log.jsonl")}
    result = python([program("after_run"), json.dumps(options), record, "2.5"], timeout=60)
    assert result.returncode == 0, result.stderr
    assert "forced exit" not in result.stderr
    assert record.read_text().splitlines() == [
        "run 1 ended 0",
        "program's executor after run 1: 3",
        "new executor after run 1: 4",
        "work after run 1 done",
        "to_thread in run 2: 4",
        "run 2 ended 0",
        "done",
    ]


def test_a_second_run_may_detach(tmp_path: Path) -> None:
    """The exit bound parked by a first run() does not keep a second one from detaching.

    Before, its thread was still there: "cannot detach while other threads run
    (aiodaemon-exit-backstop)", exit 1.
    """
    pidfile = tmp_path / "second.pid"
    result = python([program("run_twice_detached"), pidfile], timeout=60)
    assert result.returncode == 0, result.stderr
    pid = read_pid(pidfile)
    try:
        assert is_alive(pid)
        assert "cannot detach" not in result.stderr
    finally:
        kill_quietly(pid, signal.SIGTERM)
        wait_gone(pid)


def listening_on(port: int) -> bool:
    """Whether a TCP socket listens on 127.0.0.1:``port`` (/proc/net/tcp, state 0A)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        if fields[1] == f"0100007F:{port:04X}" and fields[3] == "0A":
            return True
    return False
