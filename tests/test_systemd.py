"""sd_notify, the watchdog and supervision detection, observed from a real receiver socket."""

from __future__ import annotations

import array
import contextlib
import json
import os
import select
import shlex
import signal
import socket
import subprocess
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from aiodaemon._run._systemd import WATCHDOG_FLOOR, Notifier, is_supervised
from aiodaemon.exceptions import StartupError
from tests.support import (
    PYTHON,
    REPO,
    SESSION_VARIABLE,
    aiodaemon_cli,
    clean_env,
    free_port,
    is_alive,
    program,
    python,
    read_json_lines,
    require_tool,
    wait_for,
    wait_gone,
)


@dataclass
class Datagram:
    """One notify message: its assignments in order and the sender's pid (SCM_CREDENTIALS)."""

    lines: list[str]
    pid: int

    @property
    def fields(self) -> dict[str, str]:
        """The assignments as a mapping."""
        return dict(line.split("=", 1) for line in self.lines)


class NotifyReceiver:
    """A service manager's notify socket: records every datagram sent to it."""

    def __init__(self, address: str) -> None:
        """Bind at ``address``: a path, or ``@name`` for the abstract namespace."""
        self.env_value = address
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        # What systemd does: the kernel then attaches the sender's pid to each datagram.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind("\0" + address[1:] if address.startswith("@") else address)

    def env(self, **extra: str) -> dict[str, str]:
        """A child environment pointing NOTIFY_SOCKET here."""
        return clean_env({"NOTIFY_SOCKET": self.env_value, **extra})

    def receive(self, timeout: float = 10.0) -> Datagram:
        """The next datagram, failing after ``timeout`` seconds."""
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            raise AssertionError(f"no notify datagram within {timeout}s")
        creds_size = socket.CMSG_SPACE(12)
        rights_size = socket.CMSG_SPACE(16 * 4)
        data, ancdata, _, _ = self.sock.recvmsg(65536, creds_size + rights_size)
        pid = -1
        for level, kind, payload in ancdata:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = int.from_bytes(payload[:4], "little")
            elif level == socket.SOL_SOCKET and kind == socket.SCM_RIGHTS:
                # BARRIER=1 passes a pipe: closing it is the manager's answer.
                fds = array.array("i")
                fds.frombytes(payload[: len(payload) - len(payload) % fds.itemsize])
                for fd in fds:
                    os.close(fd)
        return Datagram(data.decode().split("\n"), pid)

    def receive_until(self, predicate: str, timeout: float = 10.0) -> list[Datagram]:
        """Every datagram up to and including the first containing the line ``predicate``."""
        deadline = time.monotonic() + timeout
        seen = []
        while True:
            datagram = self.receive(max(0.01, deadline - time.monotonic()))
            seen.append(datagram)
            if predicate in datagram.lines:
                return seen

    def pending(self) -> bool:
        """Whether a datagram is waiting."""
        return bool(select.select([self.sock], [], [], 0)[0])

    def close(self) -> None:
        """Close the socket (and remove its file)."""
        self.sock.close()
        if not self.env_value.startswith("@"):
            Path(self.env_value).unlink(missing_ok=True)


@pytest.fixture(params=["path", "abstract"])
def receiver(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[NotifyReceiver]:
    """A notify receiver on a filesystem path or in the abstract namespace."""
    if request.param == "path":
        address = str(tmp_path / "notify.sock")
    else:
        address = f"@aiodaemon-test-{uuid.uuid4().hex}"
    recv = NotifyReceiver(address)
    yield recv
    recv.close()


@pytest.fixture
def path_receiver(tmp_path: Path) -> Iterator[NotifyReceiver]:
    """A notify receiver on a filesystem path."""
    recv = NotifyReceiver(str(tmp_path / "notify.sock"))
    yield recv
    recv.close()


# -- the receiver, checked against systemd's own sender ---------------------------------


@pytest.mark.root
def test_receiver_records_systemd_notify(receiver: NotifyReceiver) -> None:
    """The real systemd-notify's READY=1 and STATUS= arrive as one datagram, with credentials."""
    tool = require_tool("systemd-notify")
    proc = subprocess.Popen(
        [tool, "--ready", "--status=serving"],
        env=receiver.env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        first = receiver.receive()
        assert first.lines == ["READY=1", "STATUS=serving"]
        # systemd-notify speaks for its parent (the shell script of a service): as
        # root it sends the parent's pid in its credentials, here the test's.
        assert first.pid == os.getpid()
        # systemd 252+ then waits on a barrier (a passed pipe) the receiver closes.

        def drained_and_exited() -> bool:
            while receiver.pending():
                receiver.receive()
            return proc.poll() is not None

        wait_for(drained_and_exited, 10, "systemd-notify to exit")
        _, err = proc.communicate()
        assert proc.returncode == 0, err
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def test_receiver_records_systemd_notify_mainpid(receiver: NotifyReceiver) -> None:
    """systemd-notify --pid sends MAINPID= next to READY=1 (what a forking daemon reports)."""
    tool = require_tool("systemd-notify")
    result = subprocess.run(
        [tool, "--ready", "--pid=4242", "--no-block"],
        env=receiver.env(),
        capture_output=True,
        text=True,
        timeout=10,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert receiver.receive().fields == {"READY": "1", "MAINPID": "4242"}


# -- Notifier, from a real child process --------------------------------------------------


def test_notifier_sends_each_message_in_order(receiver: NotifyReceiver, tmp_path: Path) -> None:
    """Each Notifier call arrives as one datagram, in order, credited to the sending process."""
    script = program("systemd_notifier")
    before_usec = time.monotonic_ns() // 1000
    proc = subprocess.Popen(
        [PYTHON, str(script)], env=receiver.env(), stdout=subprocess.PIPE, text=True
    )
    out, _ = proc.communicate(timeout=30)
    after_usec = time.monotonic_ns() // 1000
    assert proc.returncode == 0
    assert out.strip() == "False"  # a closed notifier reports, never raises
    received = [receiver.receive() for _ in range(7)]
    assert not receiver.pending()
    assert {d.pid for d in received} == {proc.pid}
    lines = [d.lines for d in received]
    assert lines[0] == ["READY=1", f"MAINPID={proc.pid}", "STATUS=started"]
    assert lines[1][0] == "RELOADING=1"
    assert lines[1][1].startswith("MONOTONIC_USEC=")
    assert lines[1][2] == "STATUS=reloading"
    assert before_usec <= int(received[1].fields["MONOTONIC_USEC"]) <= after_usec
    assert lines[2:] == [
        ["READY=1", f"MAINPID={proc.pid}", "STATUS=running"],
        ["STATUS=two lines"],
        ["STATUS=database down", "ERRNO=111"],
        ["WATCHDOG=1"],
        ["STOPPING=1", "STATUS=stopping"],
    ]


def test_notifier_survives_a_vanished_manager_socket(path_receiver: NotifyReceiver) -> None:
    """Sends return False while the manager's socket is gone and work again once it is back."""
    notifier = Notifier.from_env({"NOTIFY_SOCKET": path_receiver.env_value})
    assert notifier is not None
    try:
        assert notifier.send("STATUS=one") is True
        assert path_receiver.receive().lines == ["STATUS=one"]
        path_receiver.close()
        assert notifier.send("STATUS=lost") is False
        # A stale socket file nobody reads counts as gone too.
        stale = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        stale.bind(path_receiver.env_value)
        stale.close()
        assert notifier.send("STATUS=lost again") is False
        Path(path_receiver.env_value).unlink()
        back = NotifyReceiver(path_receiver.env_value)
        try:
            assert notifier.send("STATUS=two") is True
            assert back.receive().lines == ["STATUS=two"]
        finally:
            back.close()
    finally:
        notifier.close()


def test_notifier_from_env_needs_notify_socket() -> None:
    """No NOTIFY_SOCKET (or an empty one) means no notifier; an unusable one is an error."""
    assert Notifier.from_env({}) is None
    assert Notifier.from_env({"NOTIFY_SOCKET": ""}) is None
    with pytest.raises(StartupError, match="NOTIFY_SOCKET: unsupported address 'vsock:2:9'"):
        Notifier.from_env({"NOTIFY_SOCKET": "vsock:2:9"})
    with pytest.raises(StartupError, match="too long"):
        Notifier.from_env({"NOTIFY_SOCKET": "/" + "x" * 200})


@pytest.mark.parametrize(
    ("extra", "interval"),
    [
        ({}, None),
        ({"WATCHDOG_USEC": "3000000"}, 1.5),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "ours"}, 1.5),
        ({"WATCHDOG_USEC": "3000000", "WATCHDOG_PID": "1"}, None),
        ({"WATCHDOG_USEC": "0"}, None),
        ({"WATCHDOG_USEC": "soon"}, None),
        # Not two million pings a second: at most one per WATCHDOG_FLOOR.
        ({"WATCHDOG_USEC": "1"}, WATCHDOG_FLOOR),
        ({"WATCHDOG_USEC": "20000"}, WATCHDOG_FLOOR),
        ({"WATCHDOG_USEC": "30000"}, 0.015),
    ],
)
def test_watchdog_interval_is_half_of_watchdog_usec(
    path_receiver: NotifyReceiver, extra: dict[str, str], interval: float | None
) -> None:
    """The ping interval is half of WATCHDOG_USEC, only when WATCHDOG_PID is unset or ours."""
    env = {"NOTIFY_SOCKET": path_receiver.env_value, **extra}
    if env.get("WATCHDOG_PID") == "ours":
        env["WATCHDOG_PID"] = str(os.getpid())
    notifier = Notifier.from_env(env)
    assert notifier is not None
    try:
        assert notifier.watchdog_interval == interval
    finally:
        notifier.close()


def test_watchdog_pings_while_the_loop_runs(path_receiver: NotifyReceiver, tmp_path: Path) -> None:
    """WATCHDOG=1 comes about every interval from a running loop, and stops while it is stuck."""
    script = program("systemd_watchdog")
    # 200 ms timeout -> a ping every 100 ms: about ten in the one-second window.
    env = path_receiver.env(WATCHDOG_USEC="200000")
    proc = subprocess.Popen([PYTHON, str(script)], env=env)
    try:
        received = path_receiver.receive_until("STATUS=done", timeout=30)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    events = [d.lines[0] for d in received]
    running = events.index("STATUS=running")
    blocked = events.index("STATUS=blocked")
    unblocked = events.index("STATUS=unblocked")
    pings_running = events[running:blocked].count("WATCHDOG=1")
    # Generous bounds: a loaded machine may be late, but never silent nor bursting.
    assert 4 <= pings_running <= 15, events
    assert "WATCHDOG=1" not in events[blocked:unblocked]
    assert "WATCHDOG=1" in events[unblocked:]


# -- supervision and the public helper ----------------------------------------------------


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({}, False),
        ({"NOTIFY_SOCKET": "/run/systemd/notify"}, True),
        ({"LISTEN_FDS": "1"}, True),
        ({"INVOCATION_ID": "0123456789abcdef"}, True),
        ({"NOTIFY_SOCKET": "", "INVOCATION_ID": ""}, False),
        ({"TERM": "xterm"}, False),
    ],
)
def test_is_supervised_reads_service_manager_variables(
    env: dict[str, str], *, expected: bool
) -> None:
    """A service manager's variables mean supervised; their absence means not."""
    assert is_supervised(env) is expected


@pytest.mark.root
def test_is_supervised_as_pid_1() -> None:
    """As PID 1 of a new PID namespace (a container's init) the process is supervised."""
    unshare = require_tool("unshare")
    result = subprocess.run(
        [
            unshare,
            "--pid",
            "--fork",
            "--kill-child",
            PYTHON,
            "-c",
            "import os; from aiodaemon._run._systemd import is_supervised;"
            "print(os.getpid(), is_supervised({}))",
        ],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["1", "True"]


def test_sd_notify_helper_sends_program_status(path_receiver: NotifyReceiver) -> None:
    """aiodaemon.sd_notify sends a program's own assignments, and says False without a manager."""
    code = (
        "import aiodaemon;"
        "print(aiodaemon.sd_notify('STATUS=warming cache', 'EXTEND_TIMEOUT_USEC=5000000'))"
    )
    sent = python(["-c", code], env={"NOTIFY_SOCKET": path_receiver.env_value})
    assert sent.returncode == 0, sent.stderr
    assert sent.stdout.strip() == "True"
    assert path_receiver.receive().lines == ["STATUS=warming cache", "EXTEND_TIMEOUT_USEC=5000000"]
    unsupervised = python(["-c", code])
    assert unsupervised.stdout.strip() == "False"
    assert not path_receiver.pending()


def test_sd_notify_escapes_a_nul_for_which_systemd_would_ignore_the_message(
    path_receiver: NotifyReceiver,
) -> None:
    """A NUL in a program's status goes as ``\\x00``, as ctx.set_status() sends it."""
    code = "import aiodaemon; print(aiodaemon.sd_notify('STATUS=nul\\x00here', 'READY=1'))"
    sent = python(["-c", code], env={"NOTIFY_SOCKET": path_receiver.env_value})
    assert sent.stdout.strip() == "True", sent.stderr
    assert path_receiver.receive().lines == ["STATUS=nul\\x00here", "READY=1"]


# -- end to end, through aiodaemon.run ----------------------------------------------------


@contextlib.contextmanager
def _notifying(
    receiver: NotifyReceiver, name: str, *args: str | Path, **env: str
) -> Iterator[subprocess.Popen[bytes]]:
    """Run program NAME with ARGS, ``NOTIFY_SOCKET`` at ``receiver``; killed if still running."""
    proc = subprocess.Popen(
        [PYTHON, str(program(name)), *map(str, args)],
        env=receiver.env(**env),
        stdin=subprocess.DEVNULL,
    )
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_daemon_reports_ready_reload_and_stop(
    path_receiver: NotifyReceiver, tmp_path: Path
) -> None:
    """Under NOTIFY_SOCKET: READY=1, RELOADING=1+MONOTONIC_USEC then READY=1 on HUP, STOPPING=1."""
    with _notifying(path_receiver, "systemd_daemon", tmp_path / "log.jsonl") as proc:
        ready = path_receiver.receive_until("READY=1", timeout=30)[-1]
        # detach=None stays in the foreground under a service manager: the
        # process systemd started is the daemon itself.
        assert ready.pid == proc.pid
        assert ready.fields["MAINPID"] == str(proc.pid)
        assert proc.poll() is None
        hup_usec = time.monotonic_ns() // 1000
        os.kill(proc.pid, signal.SIGHUP)
        reloading = path_receiver.receive_until("RELOADING=1")[-1]
        assert reloading.lines[0] == "RELOADING=1"
        assert int(reloading.fields["MONOTONIC_USEC"]) >= hup_usec
        assert path_receiver.receive_until("READY=1")[-1].pid == proc.pid
        os.kill(proc.pid, signal.SIGTERM)
        path_receiver.receive_until("STOPPING=1")
        assert proc.wait(timeout=30) == 0


def test_daemon_status_lines_follow_the_lifecycle(
    path_receiver: NotifyReceiver, tmp_path: Path
) -> None:
    """STATUS= says running, reloading, a failed reload, stopping: what `systemctl status` shows."""
    fail = tmp_path / "fail-reloads"
    with _notifying(path_receiver, "systemd_daemon", tmp_path / "log.jsonl", fail) as proc:
        assert path_receiver.receive_until("READY=1", timeout=30)[-1].fields["STATUS"] == "running"
        fail.touch()
        os.kill(proc.pid, signal.SIGHUP)
        assert path_receiver.receive_until("RELOADING=1")[-1].fields["STATUS"] == "reloading"
        after = path_receiver.receive_until("READY=1")[-1]
        assert after.fields["STATUS"] == "running; last reload failed: RuntimeError: bad config"
        os.kill(proc.pid, signal.SIGTERM)
        assert path_receiver.receive_until("STOPPING=1")[-1].fields["STATUS"] == "stopping"
        assert proc.wait(timeout=30) == 0


def test_ready_keeps_the_status_a_hook_just_set(
    path_receiver: NotifyReceiver, tmp_path: Path
) -> None:
    """A status a startup or reload hook set is not replaced by READY=1; a failed reload is said."""
    fail = tmp_path / "fail-reloads"

    def statuses(datagrams: list[Datagram]) -> list[str]:
        return [d.fields["STATUS"] for d in datagrams if "STATUS" in d.fields]

    with _notifying(path_receiver, "systemd_own_status", tmp_path / "log.jsonl", fail) as proc:
        started = path_receiver.receive_until("READY=1", timeout=30)
        assert "STATUS" not in started[-1].fields, started[-1].lines
        assert statuses(started)[-1] == "loaded 42 rules"
        os.kill(proc.pid, signal.SIGHUP)
        reloaded = path_receiver.receive_until("READY=1")
        assert "STATUS" not in reloaded[-1].fields, reloaded[-1].lines
        assert statuses(reloaded) == ["reloading", "config v1 loaded"]
        # A failed reload: the failure matters more than the hook's own word.
        fail.touch()
        os.kill(proc.pid, signal.SIGHUP)
        failed = path_receiver.receive_until("READY=1")
        assert statuses(failed) == [
            "reloading",
            "config v2 loaded",
            "running; last reload failed: RuntimeError: bad config",
        ]
        os.kill(proc.pid, signal.SIGTERM)
        assert path_receiver.receive_until("STOPPING=1")[-1].fields["STATUS"] == "stopping"
        assert proc.wait(timeout=30) == 0


def test_an_upgraded_daemon_keeps_the_status_its_startup_hook_set(
    path_receiver: NotifyReceiver, tmp_path: Path
) -> None:
    """After an upgrade `systemctl status` shows what the new process's startup hook set,
    as after a fresh start, not "running"."""
    pidfile = tmp_path / "app.pid"
    args = (tmp_path / "log.jsonl", tmp_path / "fail-reloads", pidfile)
    with _notifying(path_receiver, "systemd_own_status", *args) as proc:
        first = path_receiver.receive_until("READY=1", timeout=30)[-1]
        assert "STATUS" not in first.fields, first.lines
        result = aiodaemon_cli("upgrade", "--pidfile", str(pidfile))
        assert result.returncode == 0, result.stderr
        new = int(result.stdout)
        try:
            ready = path_receiver.receive_until("READY=1", timeout=30)[-1]
            assert ready.pid == new
            assert ready.fields["STATUS"] == "loaded 42 rules"
            assert proc.wait(timeout=30) == 0
        finally:
            # The new process is nobody's child here: stop it, or it outlives the test.
            os.kill(new, signal.SIGTERM)
            wait_gone(new, 30)


def test_a_status_with_an_undecodable_byte_and_a_nul_is_sent_escaped(
    path_receiver: NotifyReceiver, tmp_path: Path
) -> None:
    """A file name's byte 0xE9 and a NUL in STATUS=: escaped; the failed reload keeps it running.

    systemd ignores a whole message holding a NUL (the READY=1 ending the
    reload with it); a surrogate made the send raise, and the daemon exit 1.
    """
    with _notifying(path_receiver, "systemd_odd_status", tmp_path / "log.jsonl") as proc:
        started = path_receiver.receive_until(r"STATUS=serving caf\udce9", timeout=30)
        assert any("READY=1" in datagram.lines for datagram in started)
        os.kill(proc.pid, signal.SIGHUP)
        after = path_receiver.receive_until("READY=1")[-1]
        assert after.fields["STATUS"] == (
            r"running; last reload failed: RuntimeError: bad config caf\udce9\x00"
        )
        assert proc.poll() is None
        os.kill(proc.pid, signal.SIGTERM)
        path_receiver.receive_until("STOPPING=1")
        assert proc.wait(timeout=30) == 0


def test_a_long_reload_error_leaves_the_ready_message_under_systemds_limit(
    path_receiver: NotifyReceiver, tmp_path: Path
) -> None:
    """2,000 Chinese characters (6,000 bytes): READY=1 fits in PIPE_BUF, STATUS= cut with "…".

    systemd ignores a whole notify message of 4096 bytes or more: the reload
    that failed would never have ended for it.
    """
    with _notifying(path_receiver, "systemd_long_error", tmp_path / "log.jsonl") as proc:
        path_receiver.receive_until("READY=1", timeout=30)
        os.kill(proc.pid, signal.SIGHUP)
        after = path_receiver.receive_until("READY=1")[-1]
        assert len("\n".join(after.lines).encode()) < 4096
        status = after.fields["STATUS"]
        assert status.startswith("running; last reload failed: RuntimeError: 配置无效 字段值不合法")
        assert status.endswith("\u2026")
        os.kill(proc.pid, signal.SIGTERM)
        path_receiver.receive_until("STOPPING=1")
        assert proc.wait(timeout=30) == 0


def test_daemon_feeds_the_watchdog(path_receiver: NotifyReceiver, tmp_path: Path) -> None:
    """With WATCHDOG_USEC set, a running daemon sends WATCHDOG=1 again and again."""
    log = tmp_path / "log.jsonl"
    with _notifying(path_receiver, "systemd_daemon", log, WATCHDOG_USEC="400000") as proc:
        path_receiver.receive_until("READY=1", timeout=30)
        for _ in range(3):
            assert path_receiver.receive_until("WATCHDOG=1")[-1].pid == proc.pid
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0


def test_children_of_the_daemon_do_not_speak_for_it(
    path_receiver: NotifyReceiver, tmp_path: Path
) -> None:
    """The program's children inherit neither NOTIFY_SOCKET nor WATCHDOG_*: a child that is a
    daemon itself sends the manager nothing (no READY=1, MAINPID= or STOPPING=1 of its own)."""
    log = tmp_path / "log.jsonl"
    with _notifying(path_receiver, "notify_children", log, WATCHDOG_USEC="10000000") as proc:
        seen = path_receiver.receive_until("READY=1", timeout=30)
        assert seen[-1].fields["MAINPID"] == str(proc.pid)
        os.kill(proc.pid, signal.SIGTERM)
        seen += path_receiver.receive_until("STOPPING=1")
        assert proc.wait(timeout=30) == 0
    assert {datagram.pid for datagram in seen} == {proc.pid}
    assert ["STATUS=children saw []"] in [datagram.lines for datagram in seen]
    # The child daemon did run, in the foreground, to its end.
    child_events = [record["event"] for record in read_json_lines(Path(f"{log}.child"))]
    assert "ready" in child_events
    assert "exit" in child_events


def test_a_second_run_in_the_process_speaks_to_the_manager_too(
    path_receiver: NotifyReceiver, tmp_path: Path
) -> None:
    """Two run() calls under NOTIFY_SOCKET: each sends READY=1, then STOPPING=1.

    The first run withheld the variable from the program's children and kept
    it withheld: the second run found no service manager and told it nothing.
    """
    record = tmp_path / "record.txt"
    record.touch()
    logs = [tmp_path / "1.jsonl", tmp_path / "2.jsonl"]
    options = json.dumps({"detach": False})
    with _notifying(path_receiver, "run_twice", options, record, *logs) as proc:
        seen = path_receiver.receive_until("STOPPING=1", timeout=30)
        seen += path_receiver.receive_until("STOPPING=1", timeout=30)
        assert proc.wait(timeout=30) == 0
    assert record.read_text().splitlines() == ["run ended 0", "run ended 0"]
    said = [line for datagram in seen for line in datagram.lines if line.endswith("=1")]
    assert said == ["READY=1", "STOPPING=1", "READY=1", "STOPPING=1"]
    assert {datagram.pid for datagram in seen} == {proc.pid}


def test_failed_startup_is_reported_as_status(
    path_receiver: NotifyReceiver, tmp_path: Path
) -> None:
    """A failing startup hook sends STATUS= with its error, never READY=1, and exits non-zero."""
    script = program("systemd_failing")
    result = subprocess.run(
        [PYTHON, str(script)],
        env=path_receiver.env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode != 0
    received = []
    while path_receiver.pending():
        received.append(path_receiver.receive())
    lines = [line for d in received for line in d.lines]
    assert "READY=1" not in lines
    statuses = [line for line in lines if line.startswith("STATUS=")]
    assert any("database at db:5432 refused" in line for line in statuses), lines


def test_forced_detach_reports_the_daemon_as_mainpid(
    path_receiver: NotifyReceiver, tmp_path: Path
) -> None:
    """detach=True under NOTIFY_SOCKET: the launcher exits 0 and READY=1 names the daemon's pid."""
    script = program("detached_waits")
    pidfile = tmp_path / "d.pid"
    launcher = python([script, pidfile], env={"NOTIFY_SOCKET": path_receiver.env_value})
    assert launcher.returncode == 0, launcher.stderr
    # Type=forking reads the pidfile once the launcher exits: it must be there already.
    pid = int(pidfile.read_text())
    try:
        ready = path_receiver.receive_until("READY=1")[-1]
        assert ready.fields["MAINPID"] == str(pid)
        assert ready.pid == pid
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_gone(pid)


# -- the example units' command lines, run the way systemd runs them -----------------------

UNITS = REPO / "examples" / "systemd"


def unit_setting(unit: str, key: str) -> str:
    """The value of ``key=`` in an example unit file."""
    for line in (UNITS / unit).read_text().splitlines():
        if line.startswith(f"{key}="):
            return line.split("=", 1)[1]
    raise AssertionError(f"{unit} has no {key}=")


def exec_start(unit: str) -> list[str]:
    """The unit's ExecStart with the installed ``aiodaemon`` replaced by this checkout's."""
    argv = shlex.split(unit_setting(unit, "ExecStart"))
    assert argv[0].endswith("/aiodaemon")
    assert unit_setting(unit, "WorkingDirectory") == "/opt/aiodaemon"
    return [PYTHON, "-m", "aiodaemon", *argv[1:]]


def echo(port: int) -> bytes:
    """Send a line to the echo server on ``port`` and return its answer."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"ping\n")
        return client.recv(100)


def test_notify_unit_runs_under_socket_activation(
    path_receiver: NotifyReceiver, tmp_path: Path
) -> None:
    """echo.service's ExecStart with echo.socket's fd: READY=1, watchdog, reload, stop, exit 0."""
    tool = require_tool("systemd-socket-activate")
    assert unit_setting("echo.socket", "FileDescriptorName") == "echo"
    port = free_port()
    argv = exec_start("echo.service")
    # RuntimeDirectory= would create /run/aiodaemon-echo: the test's directory stands in.
    argv[argv.index("--pidfile") + 1] = str(tmp_path / "echo.pid")
    env = path_receiver.env(WATCHDOG_USEC="1000000", INVOCATION_ID=uuid.uuid4().hex)
    names = ("NOTIFY_SOCKET", "WATCHDOG_USEC", "INVOCATION_ID", "PYTHONPATH", SESSION_VARIABLE)
    passthrough = [arg for name in names for arg in ("-E", name)]
    proc = subprocess.Popen(
        [
            tool,
            *passthrough,
            "-l",
            f"127.0.0.1:{port}",
            "--fdname=echo",
            *argv,
        ],
        env=env,
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def answer() -> bytes | None:
            try:
                return echo(port)
            except ConnectionRefusedError:
                return None

        # The first connection starts the service; it is answered from the backlog.
        assert wait_for(answer, 15, "the activated echo service") == b"ping\n"
        ready = path_receiver.receive_until("READY=1", timeout=30)[-1]
        assert ready.fields["MAINPID"] == str(proc.pid)
        path_receiver.receive_until("WATCHDOG=1")
        os.kill(proc.pid, signal.SIGHUP)
        assert "MONOTONIC_USEC" in path_receiver.receive_until("RELOADING=1")[-1].fields
        path_receiver.receive_until("READY=1")
        os.kill(proc.pid, signal.SIGTERM)
        path_receiver.receive_until("STOPPING=1")
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_an_abstract_socket_is_shown_as_at_name(tmp_path: Path) -> None:
    """An activated abstract socket reads ``unix:@name`` in the log and ``status``, no NUL."""
    tool = require_tool("systemd-socket-activate")
    name = f"aiodaemon-test-{uuid.uuid4().hex[:12]}"
    pidfile, log = tmp_path / "app.pid", tmp_path / "app.jsonl"
    proc = subprocess.Popen(
        [
            *(tool, "-E", "PYTHONPATH", "-l", f"@{name}", "--fdname=app"),
            *(PYTHON, "-m", "aiodaemon", "run", "serving_app:main", "--listen", "app=127.0.0.1:0"),
            *("--pidfile", str(pidfile), "--log-file", str(log)),
        ],
        env=clean_env({"SERVING_DIR": str(tmp_path)}),
        cwd=REPO / "tests" / "programs",
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:

        def answer() -> bytes | None:
            with socket.socket(socket.AF_UNIX) as client:
                client.settimeout(10)
                try:
                    client.connect(f"\0{name}")
                except ConnectionRefusedError:
                    return None
                client.sendall(b"PING\n")
                return client.recv(100)

        # The first connection starts the service; it is answered from the backlog.
        assert wait_for(answer, 15, "the activated service") == b"PONG\n"
        status = aiodaemon_cli("status", "--pidfile", pidfile, "--json", module=True)
        assert json.loads(status.stdout)["sockets"] == {"app": f"unix:@{name}"}
        plain = aiodaemon_cli("status", "--pidfile", pidfile, module=True)
        assert f"listening app: unix:@{name}\n" in plain.stdout
        starting = next(r for r in read_json_lines(log) if r["event"] == "starting")
        assert starting["sockets"] == {"app": f"unix:@{name}"}
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_forking_unit_detaches_even_under_systemd(tmp_path: Path) -> None:
    """echo-forking.service's ExecStart returns when ready, the pidfile naming the daemon."""
    port = free_port()
    pidfile = tmp_path / "echo.pid"
    argv = exec_start("echo-forking.service")
    argv[argv.index("--pidfile") + 1] = str(pidfile)
    argv[argv.index("--log-file") + 1] = str(tmp_path / "echo.jsonl")
    argv[argv.index("--listen") + 1] = f"echo=127.0.0.1:{port}"
    # systemd sets INVOCATION_ID for every service: `start` must detach regardless.
    result = subprocess.run(
        argv,
        env=clean_env({"INVOCATION_ID": uuid.uuid4().hex}),
        cwd=REPO,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    # What systemd does next: read PIDFile= and follow that process.
    pid = int(pidfile.read_text())
    try:
        assert is_alive(pid)
        assert echo(port) == b"ping\n"
        os.kill(pid, signal.SIGHUP)  # ExecReload=
        assert echo(port) == b"ping\n"
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_gone(pid)
    assert not pidfile.exists()
