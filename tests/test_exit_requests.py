"""sys.exit() and KeyboardInterrupt raised by the program: a graceful end with that status."""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from .support import PYTHON, clean_env, kill_quietly, program, python, read_json_lines, wait_for


class Run:
    """``tests/programs/exit_request.py`` with one case, its log and its record."""

    def __init__(self, tmp_path: Path, case: str, **options: object) -> None:
        self.log, self.record = tmp_path / "log.jsonl", tmp_path / "record.txt"
        self.record.touch()
        options = {"detach": False, "log_file": str(self.log), **options}
        self.proc = subprocess.Popen(
            [PYTHON, str(program("exit_request")), json.dumps(options), str(self.record), case],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )

    def finish(self) -> tuple[int, str]:
        """The exit status and stderr, once the process ended (killed after 30 s)."""
        try:
            _, err = self.proc.communicate(timeout=30)
        finally:
            kill_quietly(self.proc.pid)
            self.proc.wait()
        return self.proc.returncode, err

    def recorded(self) -> list[str]:
        """What the program's hooks recorded."""
        return self.record.read_text().splitlines()

    def records(self) -> list[dict[str, object]]:
        """The daemon's log records."""
        return read_json_lines(self.log)

    def events(self) -> list[str]:
        """The event of each log record."""
        return [str(r["event"]) for r in self.records()]


def _assert_graceful(run: Run, status: int, err: str) -> None:
    """The shutdown ran (hook, records) and nothing claims an internal failure."""
    events = run.events()
    assert "shutdown hook" in run.recorded()
    assert "shutdown started" in events
    assert events[-1] == "exit"
    assert run.records()[-1]["status"] == status
    assert "internal task failed" not in events
    assert "unhandled exception in event loop" not in events
    assert "Task was destroyed" not in err


@pytest.mark.parametrize(
    ("what", "status"),
    [("none", 0), ("5", 5), ("interrupt", 128 + signal.SIGINT)],
    ids=["exit", "exit-5", "KeyboardInterrupt"],
)
def test_main_asking_to_exit_gets_a_graceful_shutdown_with_that_status(
    tmp_path: Path, what: str, status: int
) -> None:
    """sys.exit()/sys.exit(5)/KeyboardInterrupt in main: shutdown hooks run, exit with 0/5/130."""
    run = Run(tmp_path, f"main:{what}")
    code, err = run.finish()
    assert code == status, err
    _assert_graceful(run, status, err)
    (request,) = [r for r in run.records() if r["event"] == "exit requested"]
    assert request["by"] == "main"


def test_main_exiting_with_a_message_logs_it_and_exits_1(tmp_path: Path) -> None:
    """sys.exit("missing config") in main: status 1, the text logged at error and on stderr."""
    run = Run(tmp_path, "main:missing config")
    code, err = run.finish()
    assert code == 1, err
    _assert_graceful(run, 1, err)
    (request,) = [r for r in run.records() if r["event"] == "exit requested"]
    assert request["level"] == "error"
    assert request["error"] == "missing config"
    assert "missing config" in err


@pytest.mark.parametrize("end", ["main returns", "SIGTERM", "sys.exit(5)"])
def test_the_exit_record_of_a_graceful_end_has_a_null_reason(tmp_path: Path, end: str) -> None:
    """``exit`` always carries ``reason``: null after a graceful end, as a watching stop hears.

    It was left out, where docs/logging.md lists ``status``, ``reason``.
    """
    case = {"main returns": "return:0", "SIGTERM": "stopping:0", "sys.exit(5)": "main:5"}[end]
    run = Run(tmp_path, case)
    if end == "SIGTERM":
        wait_for(lambda: "main" in run.recorded(), what="main running")
        run.proc.send_signal(signal.SIGTERM)
    code, err = run.finish()
    status = 5 if end == "sys.exit(5)" else 0
    assert code == status, err
    last = run.records()[-1]
    assert (last["event"], last["status"], last["reason"]) == ("exit", status, None)


def test_framework_records_do_not_carry_what_main_bound(tmp_path: Path) -> None:
    """request_id bound in main is on main's records, never on aiodaemon's ("main returned")."""
    run = Run(tmp_path, "shutdown:none")
    code, err = run.finish()
    assert code == 0, err
    records = run.records()
    (handling,) = [r for r in records if r["event"] == "handling"]
    assert handling["request_id"] == "r-1"
    framework = [r for r in records if r["logger"] == "aiodaemon"]
    assert "main returned" in [r["event"] for r in framework]
    assert [r["event"] for r in framework if "request_id" in r] == []


@pytest.mark.parametrize("use_uvloop", [False, None], ids=["asyncio", "default-loop"])
@pytest.mark.parametrize("where", ["task", "orphan"], ids=["kept-task", "unreferenced-task"])
def test_a_task_asking_to_exit_gets_a_graceful_shutdown(
    tmp_path: Path, use_uvloop: bool | None, where: str
) -> None:
    """sys.exit(3) in a task main created (asyncio lets it out of the loop): graceful, status 3."""
    run = Run(tmp_path, f"{where}:3", uvloop=use_uvloop)
    code, err = run.finish()
    assert code == 3, err
    _assert_graceful(run, 3, err)


def test_a_reload_hook_asking_to_exit_fails_the_reload_and_stops(tmp_path: Path) -> None:
    """sys.exit(4) in a reload hook: the reload fails (recorded), the daemon stops with 4."""
    run = Run(tmp_path, "reload:4")
    wait_for(lambda: "main" in run.recorded(), what="main running")
    run.proc.send_signal(signal.SIGHUP)
    code, err = run.finish()
    assert code == 4, err
    _assert_graceful(run, 4, err)
    (finished,) = [r for r in run.records() if r["event"] == "reload finished"]
    assert finished["ok"] is False
    assert finished["error"] == "SystemExit: 4"


def test_a_signal_handler_asking_to_exit_is_named_and_stops(tmp_path: Path) -> None:
    """sys.exit(5) in an on_signal handler: graceful, status 5, the handler named as asking."""
    run = Run(tmp_path, "signal:5")
    wait_for(lambda: "main" in run.recorded(), what="main running")
    run.proc.send_signal(signal.SIGWINCH)
    code, err = run.finish()
    assert code == 5, err
    _assert_graceful(run, 5, err)
    assert "signal handler" in run.recorded()
    (request,) = [r for r in run.records() if r["event"] == "exit requested"]
    assert request["by"] == "signal handler __main__.on_winch"
    assert "signal handler failed" not in run.events()


def test_a_shutdown_hook_asking_to_exit_is_logged_and_the_shutdown_goes_on(
    tmp_path: Path,
) -> None:
    """sys.exit(6) in a shutdown hook after main returned: logged, the exit completes with 6."""
    run = Run(tmp_path, "shutdown:6")
    code, err = run.finish()
    assert code == 6, err
    _assert_graceful(run, 6, err)
    assert "shutdown finished" in run.events()


def test_a_shutdown_request_while_stopping_sets_the_status_and_says_so(tmp_path: Path) -> None:
    """ctx.request_shutdown(7) after a SIGTERM: exit 7, logged as the program's request."""
    run = Run(tmp_path, "stopping:7")
    wait_for(lambda: "main" in run.recorded(), what="main running")
    run.proc.send_signal(signal.SIGTERM)
    code, err = run.finish()
    assert code == 7, err
    _assert_graceful(run, 7, err)
    events = run.events()
    assert events.index("signal received") < events.index("shutdown requested by the program")
    (request,) = [r for r in run.records() if r["event"] == "shutdown requested by the program"]
    assert request["status"] == 7


@pytest.mark.parametrize(
    ("what", "message", "status"),
    [
        ("missing config", "missing config", 1),
        ("3", "sys.exit(3) in startup hook", 3),
        ("interrupt", "KeyboardInterrupt in startup hook", 128 + signal.SIGINT),
        ("0", "the daemon ended before it was ready (sys.exit(0) in startup hook", 0),
        ("none", "the daemon ended before it was ready (sys.exit() in startup hook", 0),
    ],
    ids=["message", "status", "KeyboardInterrupt", "zero", "none"],
)
def test_a_startup_hook_asking_to_exit_ends_the_detached_start_with_its_status(
    tmp_path: Path, what: str, message: str, status: int
) -> None:
    """sys.exit(...) in a startup hook, detached: the launcher prints why and exits with its status.

    ``sys.exit(0)`` is the program deciding there is nothing to run: the
    daemon's status is 0, the launcher's 1 (no daemon runs), with a line saying why.
    """
    pidfile, log, record = tmp_path / "d.pid", tmp_path / "log.jsonl", tmp_path / "record.txt"
    record.touch()
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log)}
    launcher = python(
        [str(program("exit_request")), json.dumps(options), str(record), f"startup:{what}"]
    )
    assert launcher.returncode == (status or 1), launcher.stderr
    assert message in launcher.stderr
    assert "exited before it was ready" not in launcher.stderr
    wait_for(lambda: not pidfile.exists(), what="the daemon's exit")
    wait_for(lambda: [r["event"] for r in read_json_lines(log)][-1:] == ["exit"], what="exit")
    assert read_json_lines(log)[-1]["status"] == status
    assert record.read_text().splitlines() == ["startup hook", "shutdown hook"]


@pytest.mark.parametrize(
    ("case", "status"),
    [("main:256", 1), ("main:-1", 255), ("main:1027", 3), ("request:512", 1)],
    ids=["exit-256", "exit-minus-1", "exit-1027", "request_shutdown-512"],
)
def test_a_status_outside_0_255_is_the_one_the_process_exits_with(
    tmp_path: Path, case: str, status: int
) -> None:
    """sys.exit(n)/ctx.request_shutdown(n) outside 0-255: its low byte, never 0 for n != 0.

    The records say the status the process exits with (not n, which the
    kernel would cut: 256 read as a clean exit 0).
    """
    run = Run(tmp_path, case)
    code, err = run.finish()
    assert code == status, err
    _assert_graceful(run, status, err)
    asked = [
        r
        for r in run.records()
        if r["event"] in ("exit requested", "shutdown requested by the program")
    ]
    assert [r["status"] for r in asked] == [status]


def test_a_startup_hook_exiting_256_fails_the_detached_start(tmp_path: Path) -> None:
    """sys.exit(256) in a startup hook, detached: the launcher exits 1, not the kernel's 0."""
    pidfile, log, record = tmp_path / "d.pid", tmp_path / "log.jsonl", tmp_path / "record.txt"
    record.touch()
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log)}
    launcher = python(
        [str(program("exit_request")), json.dumps(options), str(record), "startup:256"]
    )
    assert launcher.returncode == 1, launcher.stderr
    assert launcher.stderr == "aiodaemon: sys.exit(256) in startup hook __main__.startup\n"
    wait_for(lambda: [r["event"] for r in read_json_lines(log)][-1:] == ["exit"], what="exit")
    assert read_json_lines(log)[-1]["status"] == 1


def test_a_value_main_returns_is_no_exit_status(tmp_path: Path) -> None:
    """main returning 1 (as for sys.exit(main())): exit 0, and a warning saying what sets it."""
    run = Run(tmp_path, "return:1")
    code, err = run.finish()
    assert code == 0, err
    _assert_graceful(run, 0, err)
    (returned,) = [r for r in run.records() if r["event"] == "main returned"]
    assert returned["level"] == "warning"
    assert returned["value"] == "1"
    assert returned["ignored"] == "sys.exit(n) or ctx.request_shutdown(n) sets the exit status"
