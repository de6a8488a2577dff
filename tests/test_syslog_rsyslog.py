"""Daemons logging to a real rsyslogd, as deployed: bursts, a stalled collector, the tag it parses.

Each test starts its own rsyslogd (the ``rsyslog`` fixture: a private Unix
socket, TCP and UDP inputs on loopback, every message into one file) and a
real daemon from ``tests/programs`` that logs to it through ``run(syslog=...)``.
"""

from __future__ import annotations

import json
import os
import re
import select
import signal
import subprocess
from datetime import UTC, datetime
from pathlib import Path

import pytest

from tests.support import (
    PROGRAMS,
    PYTHON,
    Rsyslog,
    aiodaemon_cli,
    clean_env,
    install_program,
    log_child_env,
    program,
    read_json_lines,
    spawn_program,
    wait_for,
)


def _read_line(proc: subprocess.Popen[str], timeout: float = 30.0) -> str:
    """The daemon's next stdout line, failing after ``timeout``."""
    assert proc.stdout is not None
    ready, _, _ = select.select([proc.stdout], [], [], timeout)
    assert ready, f"no output from the daemon within {timeout}s"
    return proc.stdout.readline()


def _records(server: Rsyslog) -> list[dict[str, object]]:
    """The JSON records rsyslogd wrote so far, in arrival order (parts of long ones left out)."""
    return [json.loads(msg) for *_, data, msg in server.messages() if "part@" not in data + msg]


def test_a_burst_held_back_by_a_stalled_rsyslogd_arrives_whole(
    tmp_path: Path, rsyslog: Rsyslog
) -> None:
    """30,000 records logged while rsyslogd is stopped all arrive once it resumes, none lost."""
    count = 30_000
    assert rsyslog.proc is not None
    # rsyslogd stops reading: its socket's queue fills at once, the writer
    # waits in send() and the daemon's queue takes the burst (it holds 32,768).
    os.kill(rsyslog.proc.pid, signal.SIGSTOP)
    try:
        daemon = subprocess.Popen(
            [PYTHON, str(program("syslog_burst")), str(rsyslog.socket), str(count)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=clean_env(),
        )
        try:
            assert _read_line(daemon) == f"logged {count}\n"
        finally:
            os.kill(rsyslog.proc.pid, signal.SIGCONT)
        _, stderr = daemon.communicate("go on\n", timeout=60)
    finally:
        os.kill(rsyslog.proc.pid, signal.SIGCONT)
    assert daemon.returncode == 0, stderr
    wait_for(lambda: any(r["event"] == "exit" for r in _records(rsyslog)), 30, "the exit record")
    records = _records(rsyslog)
    events = [r["event"] for r in records if r["event"] != "tick"]
    # The collector was there all along, only slow: nothing was given up on.
    assert "syslog records lost" not in events
    assert "log records dropped" not in events
    assert [r["n"] for r in records if r["event"] == "tick"] == list(range(count))
    assert events[-1] == "exit"


@pytest.mark.parametrize(
    ("transport", "module"), [("unix", False), ("udp", False), ("tcp", False), ("unix", True)]
)
def test_each_record_reaches_rsyslogd_once_with_its_level_tag_and_body(
    tmp_path: Path, rsyslog: Rsyslog, transport: str, module: bool
) -> None:
    """`aiodaemon run` with --syslog: rsyslogd parses severity, tag and pid; bodies arrive whole.

    ``module``: started as ``python -m aiodaemon run``, the tag is the same.
    """
    target = {
        "unix": str(rsyslog.socket),
        "udp": f"udp://127.0.0.1:{rsyslog.udp_port}",
        "tcp": f"tcp://127.0.0.1:{rsyslog.tcp_port}",
    }[transport]
    result = aiodaemon_cli(
        "run",
        "syslog_levels:main",
        "--syslog",
        target,
        "--log-level",
        "debug",
        cwd=PROGRAMS,
        module=module,
    )
    assert result.returncode == 0, result.stderr
    wait_for(lambda: any(r["event"] == "exit" for r in _records(rsyslog)), 30, "the exit record")
    received = rsyslog.messages()
    pid = int(json.loads(received[0][-1])["pid"])
    # The tag is the TARGET's module, not "aiodaemon" for every service on the host.
    assert {(facility, app, procid) for _, facility, app, procid, _, _ in received} == {
        ("daemon", "syslog_levels", pid)
    }
    whole = [
        (sev, json.loads(msg)) for sev, _, _, _, data, msg in received if "part@" not in data + msg
    ]
    by_event = {record["event"]: sev for sev, record in whole}
    assert [
        by_event[f"at {level}"] for level in ("debug", "info", "warning", "error", "critical")
    ] == [7, 6, 4, 3, 2]
    assert by_event["stdlib warning"] == 4
    (odd,) = [r for _, r in whole if str(r["event"]).startswith("caf")]
    assert odd["event"] == "caf\u00e9 \u65e5\u672c \u2028 end"
    assert odd["text"] == "two\nlines"
    # Above 8,000 bytes a record comes in parts (structured data on the network,
    # a prefix of the message on the Unix socket) that join into its JSON line.
    parts: dict[str, dict[int, str]] = {}
    for _, _, _, _, data, msg in received:
        text = msg if data == "-" else f"{data} {msg}"
        found = re.match(r'\[part@32473 seq="(\d+)" of="\d+" id="([^"]+)"\] ?', text)
        if found:
            parts.setdefault(found[2], {})[int(found[1])] = text[found.end() :]
    joined = [json.loads("".join(p[n] for n in sorted(p))) for p in parts.values()]
    long = [r for _, r in whole if r["event"] == "long"] + joined
    assert sorted((r["size"], r["blob"] == "y" * r["size"]) for r in long) == [
        (1500, True),
        (9000, True),
        (70_000, True),
    ]
    # Each record once: no message duplicated by a retry.
    events = [r["event"] for _, r in whole]
    assert len(events) == len(set(events))
    assert events[-1] == "exit"


def _after(log_file: Path, since: str) -> list[dict[str, object]]:
    """The records of ``log_file`` stamped after ``since``."""
    return [r for r in read_json_lines(log_file) if str(r["timestamp"]) > since]


def test_records_waiting_for_rsyslogd_at_exit_are_counted_in_the_log_file(
    tmp_path: Path, rsyslog: Rsyslog
) -> None:
    """A daemon stopped while rsyslogd is down says in its log file how many never reached it."""
    log_file = tmp_path / "app.jsonl"
    options = {"syslog": str(rsyslog.socket), "log_file": str(log_file)}
    daemon = spawn_program("syslog_ticker", json.dumps(options))
    try:
        wait_for(lambda: any(r["event"] == "tick" for r in _records(rsyslog)), 30, "a tick")
        rsyslog.stop()
        gone = datetime.now(UTC).isoformat(timespec="microseconds").replace("+00:00", "Z")
        # Ticks logged while rsyslogd is down wait for it in the daemon. Counted
        # by their time, as below: the file's count past what rsyslogd wrote
        # includes ticks from before its stop that its socket took unwritten.
        wait_for(lambda: len(_after(log_file, gone)) > 20, 30, "20 more ticks")
        daemon.send_signal(signal.SIGTERM)
        _, stderr = daemon.communicate(timeout=30)
    finally:
        if daemon.poll() is None:
            daemon.kill()
            daemon.communicate()
    assert daemon.returncode == 0, stderr
    *written, notice = read_json_lines(log_file)
    assert written[-1]["event"] == "exit"
    assert notice["event"] == "syslog records lost"
    # Every record logged once rsyslogd was gone is counted; so may be a few
    # that its socket took just before it closed (lost with it, unseen).
    after = [r for r in written if str(r["timestamp"]) > gone]
    assert len(after) > 20
    lost = notice["lost"]
    assert isinstance(lost, int)
    assert len(after) <= lost <= len(written) - len(_records(rsyslog))


def test_a_child_forked_while_records_wait_does_not_send_them_again(
    tmp_path: Path, rsyslog: Rsyslog
) -> None:
    """Records waiting for rsyslogd when a child is forked reach it once (from the parent)."""
    proc = subprocess.Popen(
        [PYTHON, str(program("log_syslog_fork")), json.dumps({"syslog": str(rsyslog.socket)})],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(log_child_env()),
    )
    try:
        wait_for(lambda: any(r["event"] == "before" for r in _records(rsyslog)), 30, "before")
        rsyslog.stop()
        assert proc.stdin is not None
        proc.stdin.write("go on\n")
        proc.stdin.flush()
        assert _read_line(proc) == "forked\n"
        rsyslog.start()
        proc.stdin.write("go on\n")
        proc.stdin.flush()
        result = json.loads(_read_line(proc))
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()
    assert proc.returncode == 0, stderr
    assert result == {"closed": True, "child": result["child"], "status": 0}
    wait_for(
        lambda: any(r["event"] == "from the child" for r in _records(rsyslog)), 30, "the child"
    )
    records = _records(rsyslog)
    assert [r["event"] for r in records if r["event"] != "while down"] == [
        "before",
        "from the child",
    ]
    assert [r["n"] for r in records if r["event"] == "while down"] == list(range(5))
    assert [r["pid"] for r in records if r["event"] == "from the child"] == [result["child"]]


def test_a_target_named_in_another_script_is_still_the_tag(
    tmp_path: Path, rsyslog: Rsyslog
) -> None:
    """``aiodaemon run été:main`` tags ``_t_`` (ASCII, as RFC 5424 asks), not ``aiodaemon``."""
    install_program("syslog_levels", tmp_path, "été.py")
    result = aiodaemon_cli("run", "été:main", "--syslog", str(rsyslog.socket), cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    wait_for(lambda: any(r["event"] == "exit" for r in _records(rsyslog)), 30, "the exit record")
    assert {app for _, _, app, _, _, _ in rsyslog.messages()} == {"_t_"}


def test_a_target_given_as_its_module_alone_is_the_tag(tmp_path: Path, rsyslog: Rsyslog) -> None:
    """``aiodaemon run shop`` (``MODULE`` alone: ``shop:main``) tags ``shop``, not ``aiodaemon``."""
    install_program("syslog_levels", tmp_path, "shop.py")
    result = aiodaemon_cli(
        "run", "--log-level", "info", "shop", "--syslog", str(rsyslog.socket), cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    wait_for(lambda: any(r["event"] == "exit" for r in _records(rsyslog)), 30, "the exit record")
    assert {app for _, _, app, _, _, _ in rsyslog.messages()} == {"shop"}
