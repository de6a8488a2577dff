"""Structured logging, driven through real child processes, files, pipes, logrotate and rsyslogd.

start_logging configures process-wide state (structlog, the root logger), so
every scenario runs in a child interpreter that opens the targets, starts
logging and logs like a daemon would.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import stat
import subprocess
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from aiodaemon._prefork._addresses import SyslogTarget
from aiodaemon._prefork._config import Options
from aiodaemon._prefork._logsinks import open_log_targets
from aiodaemon.exceptions import StartupError
from tests.support import (
    PYTHON,
    Rsyslog,
    clean_env,
    install_program,
    kill_quietly,
    log_child_env,
    open_fds,
    program,
    python,
    read_json_lines,
    run_logrotate,
    run_on_terminal,
    wait_for,
)

REQUIRED_KEYS = {"timestamp", "level", "event", "logger", "pid"}


def child(tmp_path: Path, name: str) -> Path:
    """Install ``tests/programs/NAME.py`` as ``tmp_path/child.py`` (its name shows in records)."""
    return install_program(name, tmp_path, "child.py")


def run_child(tmp_path: Path, name: str, options: dict[str, Any], **kw: Any) -> Any:
    """Run a logging child to completion and return the JSON it printed last on stdout."""
    result = python([child(tmp_path, name), json.dumps(options)], env=log_child_env(**kw))
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout.splitlines()[-1])


def spawn_child(
    tmp_path: Path, name: str, options: dict[str, Any], *args: str, **kw: Any
) -> subprocess.Popen[str]:
    """Start a logging child in the background, its stdin and stdout piped."""
    return subprocess.Popen(
        [PYTHON, str(child(tmp_path, name)), json.dumps(options), *args],
        env=clean_env(log_child_env(**kw)),
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def finish(proc: subprocess.Popen[str], sig: int | None = signal.SIGTERM) -> Any:
    """Signal the child, wait for it and return the JSON it printed last."""
    if sig is not None:
        os.kill(proc.pid, sig)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    return json.loads(out.splitlines()[-1])


def read_line(proc: subprocess.Popen[str], timeout: float = 10.0) -> str:
    """The child's next stdout line, failing after ``timeout``."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no output from the child within {timeout}s"
    return proc.stdout.readline()


def numbers(path: Path) -> list[int]:
    """The ``n`` of every tick line in a log file, in file order."""
    return [int(r["n"]) for r in read_json_lines(path) if r["event"] == "tick"]  # type: ignore[call-overload]


def line_count(path: Path, event: str = "tick") -> int:
    """How many lines of ``path`` carry ``event`` (0 while it does not exist)."""
    try:
        return path.read_bytes().count(f'"event":"{event}"'.encode())
    except FileNotFoundError:
        return 0


# --- format ----------------------------------------------------------------------


def test_structlog_and_stdlib_write_the_same_kind_of_json_line(tmp_path: Path) -> None:
    """Lines from structlog.get_logger() and logging.getLogger("x") both parse with every key."""
    log_file = tmp_path / "app.jsonl"
    result = run_child(tmp_path, "log_both_apis", {"log_file": str(log_file)})
    assert result["closed"]
    records = read_json_lines(log_file)
    assert [r["event"] for r in records] == [
        "from structlog",
        "from stdlib",
        "asyncio says hi",
        "structlog failure",
        "stdlib failure",
    ]
    for record in records:
        assert set(record) >= REQUIRED_KEYS, record
        assert record["pid"] == result["pid"]
        assert record["request_id"] == "r-1"
        stamp = datetime.fromisoformat(str(record["timestamp"]).replace("Z", "+00:00"))
        assert stamp.utcoffset() == timedelta(0)
    assert [r["logger"] for r in records] == ["__main__", "x", "asyncio", "__main__", "x"]
    assert [r["level"] for r in records] == ["info", "warning", "error", "error", "error"]
    assert records[0]["answer"] == 42
    assert records[1]["user"] == "ann"
    for failure in records[3:]:
        exceptions: Any = failure["exception"]
        (exc,) = exceptions
        assert exc["exc_type"] == "ZeroDivisionError"
        assert exc["frames"][-1]["filename"].endswith("child.py")


def test_log_level_filters_both_apis(tmp_path: Path) -> None:
    """Records below log_level are written by neither structlog nor stdlib."""
    log_file = tmp_path / "app.jsonl"
    run_child(tmp_path, "log_level_filter", {"log_file": str(log_file), "log_level": "warning"})
    assert [(r["event"], r["logger"]) for r in read_json_lines(log_file)] == [
        ("loud", "__main__"),
        ("loud", "x"),
    ]


def test_stderr_gets_json_without_a_file_and_without_a_tty(tmp_path: Path) -> None:
    """With neither log_file nor syslog, records go to stderr as JSON lines."""
    result = python([child(tmp_path, "log_to_stderr"), "{}"], env=log_child_env(detached=False))
    assert result.returncode == 0
    records = [json.loads(line) for line in result.stderr.splitlines()]
    assert [r["event"] for r in records] == ["to stderr", "stdlib to stderr"]
    assert all(set(r) >= REQUIRED_KEYS for r in records)


def test_console_format_on_a_terminal_in_the_foreground(tmp_path: Path) -> None:
    """A foreground daemon whose stderr is a TTY logs readable console lines, not JSON."""
    output, _ = run_on_terminal(
        [PYTHON, child(tmp_path, "log_console"), "{}"],
        {**log_child_env(detached=False), "TERM": "dumb"},
    )
    text = re.sub(r"\x1b\[[0-9;]*m", "", output)
    assert "hello console" in text
    assert "answer=42" in text
    assert not text.lstrip().startswith("{")


def test_a_bad_log_file_path_fails_with_one_clear_line(tmp_path: Path) -> None:
    """open_log_targets names the file and the reason, before anything is forked."""
    with pytest.raises(StartupError, match=r"^cannot open log_file .*: Is a directory$"):
        open_log_targets(Options(log_file=str(tmp_path)))
    missing = tmp_path / "no" / "such" / "app.log"
    with pytest.raises(StartupError, match=r"^cannot open log_file .*app.log: No such file"):
        open_log_targets(Options(log_file=str(missing)))


def test_an_unreachable_syslog_socket_fails_at_startup(tmp_path: Path) -> None:
    """syslog= pointing at no socket fails on the terminal, naming the target."""
    target = SyslogTarget("unix", path=str(tmp_path / "nothing.sock"))
    with pytest.raises(StartupError, match=r"^cannot connect to syslog .*nothing.sock: "):
        open_log_targets(Options(syslog=target))


def test_targets_keep_their_fds_and_give_the_file_away(tmp_path: Path) -> None:
    """keep_fds lists the open log file; chown hands it to the daemon's user; close closes it."""
    log_file = tmp_path / "app.log"
    targets = open_log_targets(Options(log_file=str(log_file)))
    try:
        (fd,) = targets.keep_fds()
        assert os.path.samefile(f"/proc/self/fd/{fd}", log_file)
        assert stat.S_IMODE(log_file.stat().st_mode) == 0o644 & ~_umask()
        if os.geteuid() == 0:
            targets.chown(65534, 65534)
            assert (log_file.stat().st_uid, log_file.stat().st_gid) == (65534, 65534)
    finally:
        targets.close()
    assert targets.keep_fds() == []
    with pytest.raises(OSError, match="Bad file descriptor"):
        os.fstat(fd)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# --- writing off the loop ----------------------------------------------------------


def test_close_writes_every_accepted_record(tmp_path: Path) -> None:
    """100,000 records logged in a burst are all on disk once close() returns True."""
    log_file = tmp_path / "app.jsonl"
    result = run_child(tmp_path, "log_burst", {"log_file": str(log_file)}, queue_size=200_000)
    assert result == {"closed": True, "dropped": 0}
    assert numbers(log_file) == list(range(100_000))


# A log_file is refused unless it is a regular file (tests/test_security_paths.py),
# so the stalled sink is stderr: a pipe the test does not read (yet).
STALLED_STDERR: dict[str, Any] = {}


def test_a_stalled_sink_does_not_stall_the_loop(tmp_path: Path) -> None:
    """Logging to a stderr pipe nobody reads: the loop keeps ticking, close() gives up in time."""
    proc = spawn_child(tmp_path, "log_stall_close", STALLED_STDERR, detached=False, queue_size=1000)
    stalled = json.loads(read_line(proc, timeout=30))
    # Read stdout only: draining stderr now would unstall the writer.
    result = json.loads(read_line(proc, timeout=30))
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    # 2 MB into a 64 kB pipe: the writer blocked for good, records beyond the queue were refused.
    assert stalled["dropped"] > 0
    # The loop never waited for the sink: blocked on it once, it would never have ticked
    # again (the pipe is read only after the program ends).
    assert stalled["ticks"] >= 50
    # close() gave up on the stalled writer instead of waiting for it forever.
    assert result["closed"] is False


def test_a_full_queue_refuses_records_and_then_says_how_many(tmp_path: Path) -> None:
    """Records refused while the sink stalls are counted, and a warning with the count follows."""
    proc = spawn_child(tmp_path, "log_stall_resume", STALLED_STDERR, detached=False, queue_size=100)
    assert proc.stderr is not None
    reader = proc.stderr.fileno()
    os.set_blocking(reader, False)
    stalled = json.loads(read_line(proc, timeout=30))
    assert stalled["dropped"] > 0
    data = bytearray()

    def drained() -> bool:
        data.extend(_read_available(reader))
        return b'"event":"log records dropped"' in data

    wait_for(drained, what="the dropped-records warning")
    assert proc.stdin is not None
    proc.stdin.write("go on\n")
    proc.stdin.flush()

    def exited() -> bool:
        # Records queued behind the warning can fill the pipe again: keep reading.
        data.extend(_read_available(reader))
        return proc.poll() is not None

    wait_for(exited, timeout=30, what="the child to close its log and exit")
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0, err
    result = json.loads(out.splitlines()[-1])
    data.extend(err.encode())
    records = [json.loads(line) for line in data.splitlines()]
    warnings = [r for r in records if r["event"] == "log records dropped"]
    assert sum(int(r["dropped"]) for r in warnings) == stalled["dropped"] == result["dropped"]
    assert all(r["level"] == "warning" for r in warnings)
    ticks = [r["n"] for r in records if r["event"] == "tick"]
    assert len(ticks) == 2000 - stalled["dropped"]
    assert ticks == sorted(ticks)
    assert records[-1]["event"] == "after the stall"


def test_a_thread_logging_through_the_exit_loses_no_record(tmp_path: Path) -> None:
    """Each record of a thread logging flat out through the exit is written: to the file,
    or to fd 2 once the queue was drained (docs/logging.md).

    Hundreds were lost unsaid in the writer's last milliseconds, and hundreds
    more refused as "queue full" while it drained the queue.
    """
    log_file = tmp_path / "app.jsonl"
    # The writer's last milliseconds: most runs hit the window, not every one.
    for _ in range(5):
        log_file.unlink(missing_ok=True)
        result = python([program("log_flood_at_exit"), log_file])
        assert result.returncode == 0, result.stderr[-2000:]
        late = [json.loads(line) for line in result.stderr.splitlines() if line.startswith("{")]
        records = read_json_lines(log_file) + late
        seen = {r["n"] for r in records if r["logger"] == "flood"}
        # Some 20,000 records: the queue (32,768) never fills, yet hundreds were
        # refused and said as "queue full" while the writer drained it.
        assert not [r for r in records if r["event"] == "log records dropped"]
        assert len(seen) == max(seen) + 1


def _read_available(fd: int) -> bytes:
    """Whatever a non-blocking pipe holds right now."""
    data = b""
    while True:
        try:
            chunk = os.read(fd, 1 << 16)
        except BlockingIOError:
            return data
        if not chunk:
            return data
        data += chunk


# --- reopening --------------------------------------------------------------------


def test_mv_and_sigusr1_lose_and_duplicate_nothing(tmp_path: Path) -> None:
    """After mv + SIGUSR1 the numbered lines continue in a new file, contiguous, none twice."""
    log_file = tmp_path / "app.log"
    proc = spawn_child(tmp_path, "log_ticker", {"log_file": str(log_file)})
    try:
        wait_for(lambda: line_count(log_file) >= 20, what="first ticks")
        log_file.rename(tmp_path / "app.log.1")
        os.kill(proc.pid, signal.SIGUSR1)
        wait_for(lambda: line_count(log_file) >= 20, what="ticks in the new file")
        # The old descriptor was closed by the reopen.
        assert not any(t.endswith("app.log.1") for t in open_fds(proc.pid).values())
    finally:
        result = finish(proc)
    assert result == {"closed": True, "dropped": 0}
    combined = numbers(tmp_path / "app.log.1") + numbers(log_file)
    assert combined == list(range(len(combined)))
    assert read_json_lines(log_file)[-1]["last"] == combined[-1]


def test_logrotate_create_and_postrotate_usr1(tmp_path: Path) -> None:
    """Three real logrotate runs while the daemon writes: every number appears once, in order."""
    log_file = tmp_path / "app.log"
    proc = spawn_child(tmp_path, "log_ticker", {"log_file": str(log_file)})
    config = tmp_path / "logrotate.conf"
    config.write_text(
        f"{log_file} {{\n"
        "    create 0640\n"
        "    rotate 10\n"
        "    postrotate\n"
        f"        kill -USR1 {proc.pid}\n"
        "    endscript\n"
        "}\n"
    )
    try:
        for _ in range(3):
            wait_for(lambda: line_count(log_file) >= 10, what="ticks in the current file")
            run_logrotate(config, tmp_path / "state")
        wait_for(lambda: line_count(log_file) >= 10, what="ticks after the last rotation")
        assert not any(".log." in t for t in open_fds(proc.pid).values())
    finally:
        result = finish(proc)
    assert result == {"closed": True, "dropped": 0}
    files = [tmp_path / f"app.log.{i}" for i in (3, 2, 1)] + [log_file]
    assert all(numbers(f) for f in files)
    combined = [n for f in files for n in numbers(f)]
    assert combined == list(range(len(combined)))
    assert stat.S_IMODE(log_file.stat().st_mode) == 0o640


def test_a_failed_reopen_keeps_writing_to_the_old_file(tmp_path: Path) -> None:
    """When the path cannot be reopened, an error is logged and nothing is lost."""
    log_file = tmp_path / "app.log"
    moved = tmp_path / "moved.log"
    proc = spawn_child(tmp_path, "log_ticker", {"log_file": str(log_file)})
    try:
        wait_for(lambda: line_count(log_file) >= 10, what="first ticks")
        log_file.rename(moved)
        log_file.mkdir()  # the path is now a directory: the reopen must fail
        os.kill(proc.pid, signal.SIGHUP)
        wait_for(
            lambda: line_count(moved, "cannot reopen log file, keeping the old one"), what="error"
        )
        count = line_count(moved)
        wait_for(lambda: line_count(moved) >= count + 10, what="ticks after the failed reopen")
    finally:
        result = finish(proc)
    assert result == {"closed": True, "dropped": 0}
    (error,) = [r for r in read_json_lines(moved) if r["level"] == "error"]
    assert "Is a directory" in str(error["error"])
    assert numbers(moved) == list(range(len(numbers(moved))))


# --- syslog -----------------------------------------------------------------------


def _events(server: Rsyslog) -> list[str]:
    return [msg for *_, msg in server.messages()]


@pytest.mark.parametrize("transport", ["unix", "tcp", "udp"])
def test_syslog_events_reach_rsyslogd_across_its_restart(
    tmp_path: Path, rsyslog: Rsyslog, transport: str
) -> None:
    """Events arrive with their severity, a long one whole in parts, and again after a restart."""
    target = {
        "unix": str(rsyslog.socket),
        "tcp": f"tcp://127.0.0.1:{rsyslog.tcp_port}",
        "udp": f"udp://127.0.0.1:{rsyslog.udp_port}",
    }[transport]
    blob = 20_000
    proc = spawn_child(tmp_path, "log_syslog", {"syslog": target}, str(blob), transport)
    try:
        wait_for(lambda: any("stdlib error" in m for m in _events(rsyslog)), what="first events")
        rsyslog.stop()
        assert proc.stdin is not None
        proc.stdin.write("go on\n")
        proc.stdin.flush()
        assert read_line(proc) == "logged while down\n"
        rsyslog.start()
        wait_for(lambda: any("while it is down" in m for m in _events(rsyslog)), what="backlog")
        proc.stdin.write("go on\n")
        proc.stdin.flush()
        wait_for(lambda: any("after the restart" in m for m in _events(rsyslog)), what="event")
    finally:
        result = finish(proc, sig=None)
    assert result["closed"]
    received = rsyslog.messages()
    assert {(sev, facility, app, pid) for sev, facility, app, pid, _, _ in received} == {
        (6, "daemon", "child.py", result["pid"]),
        (3, "daemon", "child.py", result["pid"]),
        (4, "daemon", "child.py", result["pid"]),
    }
    parts = [(data, msg) for _, _, _, _, data, msg in received if "part@32473" in data + msg]
    assert len(parts) == 3
    joined = "".join(re.sub(r"^\[part@32473 [^]]*\] ?", "", msg) for _, msg in parts)
    first = json.loads(joined)
    assert first["event"] == "first"
    assert first["blob"] == "x" * blob
    singles = [json.loads(msg) for _, _, _, _, data, msg in received if "part@" not in data + msg]
    events = [r["event"] for r in singles]
    assert events == ["stdlib error", "while it is down", "after the restart"]
    assert all(set(r) >= REQUIRED_KEYS for r in singles)


def test_a_forked_child_logs_its_own_records_once(tmp_path: Path) -> None:
    """A child forked after start_logging writes its records (with its pid), none duplicated."""
    log_file = tmp_path / "app.jsonl"
    result = run_child(tmp_path, "log_fork", {"log_file": str(log_file)})
    assert result["closed"]
    assert result["status"] == 0
    records = read_json_lines(log_file)
    assert numbers(log_file) == list(range(100))
    by_child = [r["event"] for r in records if r["pid"] == result["child"]]
    assert by_child == ["from the child", "stdlib from the child"]
    assert records[-1]["event"] == "from the parent"
    assert records[-1]["pid"] != result["child"]


def test_a_forked_child_follows_a_rotation_of_the_log_file(tmp_path: Path) -> None:
    """After logrotate's rename and SIGUSR1, a forked child's records reach the new file too.

    The signal reaches the daemon alone: a child (a worker forked from it)
    wrote into the rotated file for as long as it lived, and into nothing
    once logrotate compressed that file away.
    """
    log_file, rotated = tmp_path / "app.jsonl", tmp_path / "app.jsonl.1"
    daemon = subprocess.Popen(
        [PYTHON, program("log_forked_rotation"), log_file],
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    child = None
    try:

        def forked() -> int | None:
            """The child's pid, once it ticks."""
            records = read_json_lines(log_file) if log_file.exists() else []
            if not any(r["event"] == "child tick" for r in records):
                return None
            return next((int(str(r["child"])) for r in records if r["event"] == "forked"), None)

        child = wait_for(forked, what="the child's ticks")
        log_file.rename(rotated)
        os.kill(daemon.pid, signal.SIGUSR1)
        wait_for(
            lambda: log_file.exists() and any(r["pid"] == child for r in read_json_lines(log_file)),
            what="the child's records in the new file",
        )
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(15)
        if child is not None:
            kill_quietly(child)
    records = [*read_json_lines(rotated), *read_json_lines(log_file)]
    ticks = [r["n"] for r in records if r["event"] == "child tick"]
    # In order, none twice, none lost between the two files (the child's last,
    # still queued at its os._exit, may be missing at the end).
    assert ticks == list(range(len(ticks)))


def test_multiprocessing_children_log_through_the_same_sink(tmp_path: Path) -> None:
    """Records from multiprocessing workers (fork) reach the log file before they exit."""
    log_file = tmp_path / "app.jsonl"
    result = run_child(tmp_path, "log_multiprocessing", {"log_file": str(log_file)})
    assert result == {"closed": True, "codes": [0, 0, 0]}
    records = read_json_lines(log_file)
    assert sorted(r["n"] for r in records if r["event"] == "work") == [0, 1, 2]  # type: ignore[type-var]
    assert sum(r["event"] == "filler" for r in records) == 1500
