"""Upgrades that meet trouble: the old daemon killed, a stop, signals while stopping, probes."""

from __future__ import annotations

import contextlib
import json
import os
import pty
import shutil
import signal
import socket
import stat
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiodaemon._run._forced import REPEAT_WINDOW

from .support import (
    AIODAEMON,
    PYTHON,
    ForegroundDaemon,
    clean_env,
    full_pipe,
    is_alive,
    kill_quietly,
    open_fds,
    program,
    python,
    require_tool,
    signal_pending,
    wait_for,
    wait_gone,
)
from .test_upgrade import PROGRAM, SCRIPT, App, cli, upgrade_in_background


@pytest.fixture
def app(tmp_path: Path) -> Iterator[App]:
    """The upgrade test program, started as ``aiodaemon start upgrade_app:main``."""
    shutil.copy(PROGRAM, tmp_path / "upgrade_app.py")
    application = App(tmp_path, "cli")
    yield application
    cli("stop", "--pidfile", str(application.pidfile), "--timeout", "5")


@pytest.fixture
def script(tmp_path: Path) -> Iterator[App]:
    """The upgrade test program, started as ``python upgrade_app.py`` (options from APP_*)."""
    shutil.copy(PROGRAM, tmp_path / "upgrade_app.py")
    application = App(tmp_path, "script")
    yield application
    cli("stop", "--pidfile", str(application.pidfile), "--timeout", "5")


def _successor_pid(app: App) -> int:
    """The successor's pid, from the old daemon's "upgrade started" record."""
    [started] = wait_for(lambda: app.records("upgrade started"), 30, "the upgrade")
    successor = started["successor"]
    assert isinstance(successor, int)
    return successor


def _successor_starting(app: App) -> int:
    """The successor's pid, once it logged "starting" (its startup hooks come next)."""
    successor = _successor_pid(app)
    wait_for(
        lambda: [r for r in app.records("starting") if r["pid"] == successor],
        30,
        "the successor to start",
    )
    return successor


def _end_what_is_left(upgrade: subprocess.Popen[str] | None, successor: int | None) -> None:
    """After a failed assertion: the upgrade command and the successor do not outlive the test."""
    if upgrade is not None and upgrade.poll() is None:
        upgrade.kill()
        upgrade.communicate()
    if successor is not None and is_alive(successor):
        kill_quietly(successor)


def _successor_runs_then_stops(app: App, successor: int) -> None:
    """``status`` names the successor as running (exit 0), then ``stop`` stops it."""
    status = cli("status", "--pidfile", str(app.pidfile))
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith(f"running (pid {successor},")
    assert app.get() == f"v1 {successor}"
    stop = cli("stop", "--pidfile", str(app.pidfile))
    assert stop.returncode == 0, stop.stderr
    wait_gone(successor)


def _hold_the_new_code_at_import(script: App, gate: Path) -> None:
    """Edit the program: a new process's import waits for ``gate`` (``gate.importing`` says so)."""
    script.edit(
        "import aiodaemon\n",
        "import aiodaemon\nimport time\n\n"
        "if os.environ.get('AIODAEMON_HANDOFF'):\n"
        f"    open({str(gate)!r} + '.importing', 'w').close()\n"
        f"    while not os.path.exists({str(gate)!r}):\n"
        "        time.sleep(0.02)\n",
    )


def _leftovers(directory: Path) -> list[str]:
    """Pidfiles and socket files left in ``directory``."""
    return sorted(
        p.name
        for p in directory.iterdir()
        if p.suffix in (".pid", ".ctl") or stat.S_ISSOCK(p.lstat().st_mode)
    )


@contextlib.contextmanager
def _old_killed_while_successor_starts(
    app: App, mode: str, *options: str
) -> Iterator[tuple[int, subprocess.Popen[str], int]]:
    """Start, upgrade to a successor in ``mode``, SIGKILL the old daemon as the successor
    starts; yield (old pid, the upgrade command, successor pid); neither outlives the block.

    In "gate" mode the successor's startup waits for the file ``gate`` in the app's
    directory: the block opens it once the old daemon is dead.
    """
    old = app.start(*options, APP_GATE=str(app.directory / "gate"))
    app.edit('MODE = ""', f'MODE = "{mode}"')
    upgrade = upgrade_in_background(app)
    successor = None
    try:
        successor = _successor_starting(app)
        os.kill(old, signal.SIGKILL)
        yield old, upgrade, successor
    finally:
        _end_what_is_left(upgrade, successor)


def test_old_daemon_killed_mid_upgrade_successor_takes_over(app: App) -> None:
    """The old daemon SIGKILLed while its successor starts: the successor runs, managed."""
    # The successor waits in its startup hook until the old daemon is dead: a
    # startup of a fixed second could be over before the kill on a busy machine.
    with _old_killed_while_successor_starts(app, "gate") as (old, upgrade, successor):
        (app.directory / "gate").touch()
        _, stderr = upgrade.communicate(timeout=60)
        # Not a hand-over (what the old daemon held died with it), but the truth.
        assert upgrade.returncode == 1
        assert f"pid {old} exited during the upgrade" in stderr
        assert f"successor (pid {successor}) took over and is running" in stderr
        assert app.pid() == successor
        [vanished] = app.records("old daemon vanished, taking over")
        assert vanished["pid"] == successor
        assert [r["level"] for r in app.records("unhandled exception in event loop")] == []
        _successor_runs_then_stops(app, successor)
    assert _leftovers(app.directory) == []


def test_old_daemon_killed_while_the_successor_imports_successor_takes_over(
    script: App,
) -> None:
    """SIGKILLed before the new code reached run() (a long import): the successor takes over.

    Reparented by then, it refused the hand-off as not its parent's, and nothing ran.
    """
    gate = script.directory / "gate"
    old = script.start()
    _hold_the_new_code_at_import(script, gate)
    upgrade = upgrade_in_background(script)
    successor: int | None = None
    try:
        wait_for(lambda: Path(f"{gate}.importing").exists(), 30, "the new code importing")
        [started] = wait_for(lambda: script.records("upgrade started"), 10, "upgrade started")
        named = started["successor"]
        assert isinstance(named, int)
        successor = named
        os.kill(old, signal.SIGKILL)
        wait_gone(old)
        gate.touch()
        _, stderr = upgrade.communicate(timeout=60)
        assert upgrade.returncode == 1
        assert f"pid {old} exited during the upgrade" in stderr
        assert f"successor (pid {successor}) took over and is running" in stderr
        wait_for(lambda: script.pid() == successor, 30, "the successor's pid in the pidfile")
        status = cli("status", "--pidfile", str(script.pidfile))
        assert status.returncode == 0, status.stderr
        assert status.stdout.startswith(f"running (pid {successor},")
    finally:
        _end_what_is_left(upgrade, successor)


def test_successor_left_alone_still_has_to_be_ready_within_start_timeout(app: App) -> None:
    """The old daemon killed while its successor's startup hangs: the successor, alone,
    enforces its own start_timeout (nobody else would), and leaves nothing behind."""
    with _old_killed_while_successor_starts(app, "hang", "--start-timeout", "4") as (
        old,
        upgrade,
        successor,
    ):
        # Managed meanwhile: the pidfile names it (written by the claim the record
        # announces, a loop turn after it: the record may reach the file first).
        wait_for(lambda: app.records("old daemon vanished, taking over"), 30, "the take-over")
        wait_for(lambda: app.pid() == successor, 10, "the successor's pid in the pidfile")
        _, stderr = upgrade.communicate(timeout=60)
        assert upgrade.returncode == 1, stderr
        # It waited for the successor's verdict: the start timed out (the exit may be
        # under way or over when it looks).
        assert f"pid {old} exited during the upgrade" in stderr
        assert "no successor runs" in stderr or "took over and is stopping" in stderr, stderr
        wait_gone(successor, timeout=30)
        [exited] = [r for r in app.records("exit") if r["pid"] == successor]
        assert exited["status"] == 1
        assert exited["reason"] == "not ready after 4 s"
    assert _leftovers(app.directory) == []


def test_old_daemon_killed_after_successor_ready_successor_takes_over(app: App) -> None:
    """The old daemon killed after its successor reported ready, before it said "go"."""
    gate = app.directory / "gate"
    old = app.start(APP_GATE=str(gate))
    app.edit('MODE = ""', 'MODE = "gate"')
    upgrade = upgrade_in_background(app)
    successor = None
    try:
        successor = _successor_starting(app)
        # Frozen, the old daemon cannot answer the successor's "ready": killed then,
        # it dies between the two. The successor is ready only once it is frozen.
        os.kill(old, signal.SIGSTOP)
        gate.touch()
        wait_for(
            lambda: [r for r in app.records("ready") if r["pid"] == successor],
            30,
            "the successor to be ready",
        )
        os.kill(old, signal.SIGKILL)
        _, stderr = upgrade.communicate(timeout=60)
        assert upgrade.returncode == 1
        assert f"successor (pid {successor}) took over and is running" in stderr
        assert app.records("old daemon vanished, taking over")
        assert app.records("upgrade abandoned by the old daemon") == []
        _successor_runs_then_stops(app, successor)
    finally:
        _end_what_is_left(upgrade, successor)
    assert _leftovers(app.directory) == []


def test_old_daemon_killed_under_systemd_successor_reports_ready(tmp_path: Path) -> None:
    """Type=notify: the successor of a killed daemon sends READY=1 with its own MAINPID."""
    from .test_systemd import NotifyReceiver

    receiver = NotifyReceiver(str(tmp_path / "notify.sock"))
    shutil.copy(PROGRAM, tmp_path / "upgrade_app.py")
    app = App(tmp_path, "cli")
    gate = tmp_path / "gate"
    proc = subprocess.Popen(
        [
            *(str(SCRIPT), "run", "upgrade_app:main", "--pidfile", str(app.pidfile)),
            *("--listen", "http=127.0.0.1:0", "--log-file", str(app.log)),
        ],
        cwd=tmp_path,
        env=receiver.env(APP_GATE=str(gate)),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    upgrade = None
    successor = None
    try:
        [*_, ready] = receiver.receive_until("READY=1", 30)
        old = ready.pid
        app.edit('MODE = ""', 'MODE = "gate"')
        upgrade = upgrade_in_background(app)
        successor = _successor_starting(app)
        proc.kill()
        proc.wait(30)
        gate.touch()
        seen = receiver.receive_until("READY=1", 30)
        assert seen[-1].pid == successor
        assert seen[-1].lines == ["READY=1", f"MAINPID={successor}", "STATUS=running"]
        # Nothing from the successor before it was ready (no STOPPING=1, no READY=1 early).
        assert [d.lines for d in seen[:-1] if d.pid == successor] == []
        upgrade.communicate(timeout=60)
        assert cli("stop", "--pidfile", str(app.pidfile)).returncode == 0
        wait_gone(successor)
        assert old != successor
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        _end_what_is_left(upgrade, successor)
        receiver.close()


def test_sigusr2_while_stopping_is_refused(tmp_path: Path) -> None:
    """SIGUSR2 during a slow shutdown is refused and logged; the daemon stops normally (0)."""
    daemon = ForegroundDaemon(tmp_path, "upgrade_stopping")
    try:
        daemon.wait_event("ready")
        daemon.signal(signal.SIGTERM)
        wait_for(lambda: "hook started" in daemon.recorded(), 10, "the shutdown hook")
        daemon.signal(signal.SIGUSR2)
        wait_for(
            lambda: [
                r
                for r in daemon.lines()
                if r["event"] == "upgrade refused" and r.get("reason") == "the daemon is stopping"
            ],
            10,
            "the refusal",
        )
        (tmp_path / "release").touch()
        assert daemon.wait() == 0
    finally:
        daemon.kill()
    assert daemon.recorded() == ["hook started", "hook done"]


def _readyz(address: int | Path) -> str:
    """One probe of /readyz on a local port or unix socket: the status line, or the error."""
    unix = isinstance(address, Path)
    try:
        with socket.socket(socket.AF_UNIX if unix else socket.AF_INET) as sock:
            sock.settimeout(5)
            sock.connect(str(address) if unix else ("127.0.0.1", address))
            sock.sendall(b"GET /readyz HTTP/1.1\r\nhost: x\r\n\r\n")
            data = b""
            while chunk := sock.recv(4096):
                data += chunk
    except OSError as exc:
        return repr(exc)
    return data.split(b"\r\n", 1)[0].decode()


def test_readyz_stays_ready_during_an_upgrade(script: App) -> None:
    """Probes of /readyz while the successor starts (1 s) all say 200: no 503, no refusal."""
    script.start(APP_HEALTH="127.0.0.1:0")
    [record, *_] = wait_for(lambda: script.records("starting"), 10, "the starting record")
    sockets = record["sockets"]
    assert isinstance(sockets, dict)
    port = int(str(sockets["health"]).rsplit(":", 1)[1])
    script.edit('MODE = ""', 'MODE = "sleep1.0"')
    answers: list[str] = []
    stop = threading.Event()

    def probe() -> None:
        while not stop.is_set():
            answers.append(_readyz(port))

    thread = threading.Thread(target=probe)
    thread.start()
    try:
        wait_for(lambda: len(answers) > 5, 10, "the probes to get going")
        result = cli("upgrade", "--pidfile", str(script.pidfile))
        assert result.returncode == 0, result.stderr
        new = int(result.stdout)
        wait_for(lambda: len(answers) > 5 and _readyz(port) == "HTTP/1.1 200 OK", 10, "probes")
    finally:
        stop.set()
        thread.join(30)
    assert [a for a in answers if a != "HTTP/1.1 200 OK"] == []
    assert len(answers) > 20
    # The successor answers on the shared socket from the hand-over on.
    assert script.pid() == new


def test_a_silent_probe_at_the_hand_over_leaves_the_old_daemon_its_budget(app: App) -> None:
    """A connection to the health port that sends nothing, open at the hand-over: the old exits 0.

    The old daemon waited up to 4 s for that connection's request, whatever its
    budget: with ``--shutdown-timeout 1`` it was forced out (status 4,
    ``task stuck at shutdown``) after an upgrade that had gone well.
    """
    old = app.start("--health", "127.0.0.1:0", "--shutdown-timeout", "1")
    [record, *_] = wait_for(lambda: app.records("starting"), 10, "the starting record")
    sockets = record["sockets"]
    assert isinstance(sockets, dict)
    port = int(str(sockets["health"]).rsplit(":", 1)[1])
    with socket.create_connection(("127.0.0.1", port), timeout=10):
        result = cli("upgrade", "--pidfile", str(app.pidfile))
        assert result.returncode == 0, result.stderr
        wait_gone(old, 30)
    [ended] = [r for r in app.records("exit") if r["pid"] == old]
    assert ended["status"] == 0, ended


def test_two_upgrades_then_stop_leave_nothing(script: App) -> None:
    """start, upgrade, upgrade, stop: no pidfile, no control socket, no unix socket file left."""
    directory = script.directory
    script.start(APP_LISTEN=f"unix:{directory}/http.sock", APP_HEALTH=f"unix:{directory}/h.sock")
    assert _leftovers(directory) == ["app.pid", "app.pid.ctl", "h.sock", "http.sock"]
    pids = [script.pid()]
    for _ in range(2):
        result = cli("upgrade", "--pidfile", str(script.pidfile))
        assert result.returncode == 0, result.stderr
        pids.append(int(result.stdout))
        wait_gone(pids[-2])
    stop = cli("stop", "--pidfile", str(script.pidfile))
    assert stop.returncode == 0, stop.stderr
    wait_gone(pids[-1])
    assert _leftovers(directory) == []


def test_status_during_an_upgrade_names_the_successor(app: App) -> None:
    """``status`` while the successor starts names it, as reload does; it said plain running."""
    old = app.start()
    app.edit('MODE = ""', 'MODE = "hang"')
    upgrade = upgrade_in_background(app)
    successor = None
    try:
        successor = _successor_starting(app)
        plain = cli("status", "--pidfile", str(app.pidfile))
        as_json = cli("status", "--pidfile", str(app.pidfile), "--json")
        stop = cli("stop", "--pidfile", str(app.pidfile))
        assert stop.returncode == 0, stop.stderr
        wait_gone(old, 30)
        wait_gone(successor, 30)
        upgrade.communicate(timeout=60)
    finally:
        _end_what_is_left(upgrade, successor)
    assert (plain.returncode, plain.stdout.splitlines()[0]) == (
        0,
        f"running (pid {old}, pidfile {app.pidfile}; upgrading to successor pid {successor})",
    )
    answer = json.loads(as_json.stdout)
    # --json keeps DESIGN's keys: the successor is said by the plain line.
    assert (answer["state"], answer["pid"]) == ("running", old)
    assert "successor" not in answer


def test_stop_during_an_upgrade_tells_the_upgrade_why(app: App) -> None:
    """``stop`` while the successor starts: the upgrade says it was abandoned; no traceback."""
    old = app.start()
    app.edit('MODE = ""', 'MODE = "hang"')
    upgrade = upgrade_in_background(app)
    try:
        successor = _successor_starting(app)
        stop = cli("stop", "--pidfile", str(app.pidfile))
        assert stop.returncode == 0, stop.stderr
        wait_gone(old, 30)
        wait_gone(successor, 30)
        _, stderr = upgrade.communicate(timeout=60)
    finally:
        if upgrade.poll() is None:
            upgrade.kill()
            upgrade.communicate()
    assert upgrade.returncode == 1
    assert stderr == f"aiodaemon: upgrade abandoned: pid {old} is stopping\n"
    assert app.records("unhandled exception in event loop") == []
    assert _leftovers(app.directory) == []


def test_stop_during_an_upgrade_kills_a_new_process_deaf_to_sigterm_within_the_budget(
    app: App,
) -> None:
    """``stop`` while the new process's startup blocks its loop: the SIGTERM it is sent
    goes unread, so it is killed before the old daemon's shutdown_timeout runs out; the
    old one exits 0 (not forced out), and ``stop`` returns once neither runs."""
    blocking = app.directory / "blocking"
    old = app.start("--shutdown-timeout", "2", APP_BLOCKING=str(blocking))
    app.edit('MODE = ""', 'MODE = "block60"')
    upgrade = upgrade_in_background(app)
    successor = None
    try:
        successor = _successor_pid(app)
        wait_for(blocking.exists, 30, "the new process to block its loop")
        stop = cli("stop", "--pidfile", str(app.pidfile))
        assert (stop.returncode, stop.stderr) == (0, f"aiodaemon: stopped (pid {old})\n")
        assert not is_alive(successor)
        _, stderr = upgrade.communicate(timeout=60)
    finally:
        _end_what_is_left(upgrade, successor)
    assert upgrade.returncode == 1
    assert stderr == f"aiodaemon: upgrade abandoned: pid {old} is stopping\n"
    [killed] = app.records("upgrade successor killed")
    assert killed["successor"] == successor
    assert app.records("upgrade successor stopped") == []
    [ended] = [r for r in app.records("exit") if r["pid"] == old]
    assert ended["status"] == 0, ended
    assert _leftovers(app.directory) == []


def _one_clean_line(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 1
    [line] = result.stderr.splitlines()
    assert line.startswith("aiodaemon: upgrade failed: ")
    assert "upgrade failed: upgrade:" not in line
    assert "upgrade failed: aiodaemon:" not in line
    return line


def test_successor_refusal_is_one_clean_line(script: App) -> None:
    """A successor refusing what it inherits: one line, one prefix, the reason."""
    script.start()
    script.edit('os.environ["APP_PIDFILE"],', 'os.environ["APP_PIDFILE"] + ".new",')
    line = _one_clean_line(cli("upgrade", "--pidfile", str(script.pidfile)))
    assert line.startswith("aiodaemon: upgrade failed: pidfile changed from ")


def test_successor_takes_the_same_pidfile_by_another_name(script: App) -> None:
    """The pidfile (and its control socket) named through a symlinked directory: no change.

    As a daemon of an older aiodaemon, which made a relative path absolute in
    the physical release directory, meets a new process naming the logical
    one (``releases/N/run -> ../../shared/run``): "pidfile changed" before.
    """
    old = script.start()
    (script.directory / "link").symlink_to(".")
    script.edit(
        '"pidfile": os.environ["APP_PIDFILE"],',
        '"pidfile": os.environ["APP_PIDFILE"].replace("/app.pid", "/link/app.pid"),',
    )
    upgraded = cli("upgrade", "--pidfile", str(script.pidfile))
    assert upgraded.returncode == 0, upgraded.stderr
    successor = script.pid()
    assert successor != old
    wait_gone(old)
    _successor_runs_then_stops(script, successor)
    assert _leftovers(script.directory) == []


@pytest.mark.parametrize(
    ("raised", "said"),
    [
        ('ValueError("bad config:\\nport: x")', "ValueError: bad config: port: x"),
        (
            '(e := ValueError("bad port"), e.add_note("see the docs"), e)[2]',
            "ValueError: bad port see the docs",
        ),
        (
            'ExceptionGroup("bad config", [ValueError("port"), KeyError("k")])',
            "ExceptionGroup: bad config (2 sub-exceptions)",
        ),
    ],
    ids=["two-lines", "note", "group"],
)
def test_successor_failing_at_import_is_named_by_its_exception_not_its_last_line(
    script: App, raised: str, said: str
) -> None:
    """A script whose new code raises at import: the exception, whatever lines its message takes."""
    script.start()
    script.edit("import aiodaemon\n", f"import aiodaemon\n\nraise {raised}\n")
    line = _one_clean_line(cli("upgrade", "--pidfile", str(script.pidfile)))
    assert line.startswith(f"aiodaemon: upgrade failed: {said}; the new process "), line


@pytest.mark.parametrize(
    ("started", "edited", "was", "now"),
    [
        ("unix:{d}/u.sock", "unix:{d}/v.sock", "unix:{d}/u.sock", "unix:{d}/v.sock"),
        (
            "unix:{d}/u.sock?mode=0600",
            "unix:{d}/u.sock?mode=0660",
            "unix:{d}/u.sock?mode=0600",
            "unix:{d}/u.sock?mode=0660",
        ),
        (
            "unix:{d}/u.sock",
            "unix:{d}/u.sock?mode=0660",
            "unix:{d}/u.sock",
            "unix:{d}/u.sock?mode=0660",
        ),
        ("127.0.0.1:0", "127.0.0.1:0?reuseport", "127.0.0.1:0", "127.0.0.1:0?reuseport"),
        ("127.0.0.1:0?reuseport", "127.0.0.1:0", "127.0.0.1:0?reuseport", "127.0.0.1:0"),
    ],
    ids=["path", "mode", "mode-added", "reuseport-added", "reuseport-dropped"],
)
def test_listen_address_or_its_options_changed_is_refused(
    script: App, started: str, edited: str, was: str, now: str
) -> None:
    """New code with another ``listen=`` address, ``?mode`` or ``?reuseport``: refused.

    The inherited socket keeps its old options: a successor taking it silently
    would run with a mode or a port sharing its configuration does not say.
    """
    directory = script.directory
    address = started.format(d=directory)
    old = script.start(APP_LISTEN=address)
    script.edit(
        '"listen": {"http": os.environ.get("APP_LISTEN", "127.0.0.1:0")},',
        f'"listen": {{"http": {edited.format(d=directory)!r}}},',
    )
    line = _one_clean_line(cli("upgrade", "--pidfile", str(script.pidfile)))
    assert line == (
        f"aiodaemon: upgrade failed: listen[http] changed from {was.format(d=directory)}"
        f" to {now.format(d=directory)}; an upgrade keeps the listening sockets"
        " (use restart to change them)"
    )
    assert script.pid() == old
    status = cli("status", "--pidfile", str(script.pidfile))
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith(f"running (pid {old},")
    if address.startswith("unix:"):
        path = Path(address.removeprefix("unix:").partition("?")[0])
        # The old daemon's socket file, mode untouched, still takes connections.
        assert stat.S_ISSOCK(path.lstat().st_mode)
        if "?mode=" in address:
            assert stat.S_IMODE(path.lstat().st_mode) == 0o600
        with socket.socket(socket.AF_UNIX) as sock:
            sock.connect(str(path))


def test_health_address_changed_is_refused_naming_health(script: App) -> None:
    """New code with another ``health=``: refused, naming ``health``, not ``listen[health]``.

    The user gave ``health=``; a ``listen[health]`` sent them after a ``listen=``
    entry they never wrote.
    """
    old = script.start(APP_HEALTH="127.0.0.1:0")
    script.edit(
        'options["health"] = os.environ["APP_HEALTH"]',
        'options["health"] = "127.0.0.2:0"',
    )
    line = _one_clean_line(cli("upgrade", "--pidfile", str(script.pidfile)))
    assert line == (
        "aiodaemon: upgrade failed: health changed from 127.0.0.1:0 to 127.0.0.2:0;"
        " an upgrade keeps the listening sockets (use restart to change them)"
    )
    assert script.pid() == old


def test_listen_entry_named_health_changed_is_refused_naming_listen(script: App) -> None:
    """New code with another address for a ``listen=`` entry named ``health``, without
    ``health=``: refused naming ``listen[health]``, the entry the program wrote.
    """
    listen = '"listen": {"http": os.environ.get("APP_LISTEN", "127.0.0.1:0")},'
    script.edit(listen, '"listen": {"http": "127.0.0.1:0", "health": "127.0.0.1:0"},')
    old = script.start()
    script.edit('"health": "127.0.0.1:0"', '"health": "127.0.0.2:0"')
    line = _one_clean_line(cli("upgrade", "--pidfile", str(script.pidfile)))
    assert line == (
        "aiodaemon: upgrade failed: listen[health] changed from 127.0.0.1:0 to 127.0.0.2:0;"
        " an upgrade keeps the listening sockets (use restart to change them)"
    )
    assert script.pid() == old


def test_unchanged_options_are_kept_by_an_upgrade(script: App) -> None:
    """The same ``unix:...?mode=0600`` in the new code: the upgrade takes the socket as it is."""
    path = script.directory / "u.sock"
    old = script.start(APP_LISTEN=f"unix:{path}?mode=0600")
    script.edit('VERSION = "v1"', 'VERSION = "v2"')
    result = cli("upgrade", "--pidfile", str(script.pidfile))
    assert result.returncode == 0, result.stderr
    new = int(result.stdout)
    wait_gone(old)
    assert script.pid() == new
    assert stat.S_IMODE(path.lstat().st_mode) == 0o600
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(path))


def test_successor_import_error_is_one_clean_line(app: App) -> None:
    """A successor whose target no longer imports: one line, one prefix, the import error."""
    app.start()
    app.edit("import aiodaemon\n", "import aiodaemon\nimport no_such_module\n")
    line = _one_clean_line(cli("upgrade", "--pidfile", str(app.pidfile)))
    assert "no_such_module" in line


@pytest.mark.parametrize(
    ("mode", "why"),
    [
        ("raise", "startup hook upgrade_app.prepare failed: RuntimeError: cannot start v1"),
        ("main-raise", "main failed: RuntimeError: main of v1 failed"),
    ],
)
def test_failed_successor_logs_its_exit_before_it_is_killed(app: App, mode: str, why: str) -> None:
    """A successor that fails and says so ends its run and logs its ``exit``, as any daemon."""
    directory = app.directory
    old = app.start("--listen", f"u=unix:{directory}/u.sock")
    app.edit('MODE = ""', f'MODE = "{mode}"')
    result = cli("upgrade", "--pidfile", str(app.pidfile), "--timeout", "30")
    assert result.returncode == 1
    assert why in result.stderr
    [failed] = wait_for(lambda: app.records("upgrade failed"), 10, "the upgrade failed record")
    successor = failed["successor"]
    assert isinstance(successor, int)
    wait_gone(successor)
    # Gone: whatever its log writer had to write is in the file by now.
    assert [r for r in app.records("shutdown finished") if r["pid"] == successor]
    [exited] = [r for r in app.records("exit") if r["pid"] == successor]
    assert exited["status"] == 1
    assert exited["reason"] == why
    # Its own end touched nothing of the old daemon's, which serves on.
    assert _leftovers(directory) == ["app.pid", "app.pid.ctl", "u.sock"]
    assert app.pid() == old
    assert app.get() == f"v1 {old}"
    status = cli("status", "--pidfile", str(app.pidfile))
    assert status.stdout.startswith(f"running (pid {old},")


@pytest.mark.parametrize(
    ("mode", "why", "record"),
    [
        (
            "main-raise",
            "main failed: RuntimeError: main of v1 failed; it exited with status 1",
            "main failed",
        ),
        ("main-return", "main returned; it exited with status 0", "main returned"),
    ],
)
def test_successor_whose_main_ends_at_once_is_rolled_back(
    app: App, mode: str, why: str, record: str
) -> None:
    """New code whose ``main`` raises or returns at once: upgrade fails saying why, how the new
    process ended and where its records are; the old one serves on."""
    directory = app.directory
    old = app.start(
        "--listen", f"u=unix:{directory}/u.sock", "--health", f"unix:{directory}/h.sock"
    )
    app.edit('MODE = ""', f'MODE = "{mode}"')
    result = cli("upgrade", "--pidfile", str(app.pidfile), "--timeout", "30")
    assert result.returncode == 1
    assert result.stdout == ""
    [failed] = wait_for(lambda: app.records("upgrade failed"), 10, "the upgrade failed record")
    successor = failed["successor"]
    assert isinstance(successor, int)
    assert result.stderr == (
        f"aiodaemon: upgrade failed: successor (pid {successor}) stopped before it took over: "
        f"{why}; see its log records in {app.log}\n"
    )
    wait_gone(successor)
    # Where it says: the new process's own record of what ended it.
    assert [r for r in app.records(record) if r["pid"] == successor]
    # Nothing was handed over, nothing removed: the old daemon runs as before.
    assert app.pid() == old
    assert app.get() == f"v1 {old}"
    status = cli("status", "--pidfile", str(app.pidfile))
    assert status.returncode == 0, status.stderr
    assert status.stdout.startswith(f"running (pid {old},")
    assert _leftovers(directory) == ["app.pid", "app.pid.ctl", "h.sock", "u.sock"]
    assert _readyz(directory / "h.sock") == "HTTP/1.1 200 OK"
    with socket.socket(socket.AF_UNIX) as sock:
        sock.connect(str(directory / "u.sock"))  # still listening (nothing serves it here)


@pytest.mark.parametrize(
    ("mode", "how"),
    [
        ("gate", "was killed by SIGKILL before it was ready"),
        ("main-exit", "exited with status 5 before it took over"),
    ],
)
def test_successor_that_dies_says_how_and_when(app: App, mode: str, how: str) -> None:
    """SIGKILLed in its startup hook, or dead in ``main`` once ready: upgrade says which."""
    old = app.start(APP_GATE=str(app.directory / "gate"))
    app.edit('MODE = ""', f'MODE = "{mode}"')
    upgrade = upgrade_in_background(app)
    successor = None
    try:
        # Not its "starting" record: a successor that ends with os._exit takes
        # the records still queued for its log writer with it (docs/logging.md).
        successor = _successor_pid(app)
        if mode == "gate":
            wait_for(lambda: (app.directory / "gate.entered").exists(), 30, "the startup hook")
            os.kill(successor, signal.SIGKILL)
        _, stderr = upgrade.communicate(timeout=60)
    finally:
        _end_what_is_left(upgrade, successor)
    assert upgrade.returncode == 1
    # Its log was open (its run had begun): that is where to look.
    assert stderr == (
        f"aiodaemon: upgrade failed: successor (pid {successor}) {how};"
        f" see its log records in {app.log}\n"
    )
    wait_gone(successor)
    assert app.pid() == old
    assert app.get() == f"v1 {old}"


def test_successor_dying_after_its_run_began_is_not_named_by_what_it_printed_at_import(
    app: App,
) -> None:
    """A line the new code printed at import (a library's warning) is no error: once the
    successor's run began, its stderr is its own, and its death is said as such."""
    old = app.start(APP_GATE=str(app.directory / "gate"))
    # As a library deprecated at import says so on stderr, before the run begins.
    app.edit(
        "import aiodaemon\n",
        "import aiodaemon\nimport warnings\n\n"
        'warnings.warn("pkg_resources is deprecated as an API", UserWarning, stacklevel=1)\n',
    )
    app.edit('MODE = ""', 'MODE = "gate"')
    pipes_before = {t for t in open_fds(old).values() if t.startswith("pipe:")}
    upgrade = upgrade_in_background(app)
    successor = None
    try:
        successor = _successor_pid(app)
        wait_for(lambda: (app.directory / "gate.entered").exists(), 30, "the startup hook")
        # The old daemon has read the end of the successor's startup stderr (the
        # successor put its own stderr back as its run began): the pipe is closed.
        wait_for(
            lambda: {t for t in open_fds(old).values() if t.startswith("pipe:")} <= pipes_before,
            30,
            "the old daemon to see the successor's stderr end",
        )
        os.kill(successor, signal.SIGKILL)
        _, stderr = upgrade.communicate(timeout=60)
    finally:
        _end_what_is_left(upgrade, successor)
    assert upgrade.returncode == 1
    assert stderr == (
        f"aiodaemon: upgrade failed: successor (pid {successor}) was killed by SIGKILL "
        f"before it was ready; see its log records in {app.log}\n"
    )
    assert app.pid() == old
    assert app.get() == f"v1 {old}"


def test_failed_upgrade_without_control_socket_is_said_at_once(app: App) -> None:
    """--no-control: a new process that fails ends ``upgrade`` with exit 1, not a long wait."""
    old = app.start("--no-control")
    app.edit('MODE = ""', 'MODE = "raise"')
    result = cli("upgrade", "--pidfile", str(app.pidfile), "--timeout", "30")
    assert result.returncode == 1
    [failed] = wait_for(lambda: app.records("upgrade failed"), 10, "the upgrade failed record")
    new = failed["successor"]
    assert result.stderr == (
        f"aiodaemon: upgrade failed: the new process (pid {new}) ended before it took over; "
        f"pid {old} serves on (without a control socket its log says why)\n"
    )
    assert app.pid() == old
    assert app.get() == f"v1 {old}"


def test_second_upgrade_without_control_socket_is_refused(app: App) -> None:
    """--no-control: a second ``upgrade`` during one exits 1 saying so, sending nothing;
    only the first prints the new pid."""
    old = app.start("--no-control", APP_GATE=str(app.directory / "gate"))
    app.edit('MODE = ""', 'MODE = "gate"')
    first = upgrade_in_background(app)
    second = None
    try:
        successor = _successor_starting(app)
        second = upgrade_in_background(app)
        # Its SIGUSR2, had it sent one, is refused in the log: the gate opens after either.
        wait_for(
            lambda: second.poll() is not None or app.records("upgrade refused"),
            30,
            "the second upgrade to end or signal",
        )
        (app.directory / "gate").touch()
        out, err = second.communicate(timeout=60)
        first_out, first_err = first.communicate(timeout=60)
    finally:
        _end_what_is_left(first, None)
        _end_what_is_left(second, None)
    assert (first.returncode, first_out) == (0, f"{successor}\n"), first_err
    assert (second.returncode, out) == (1, "")
    assert err == (
        "aiodaemon: upgrade failed: an upgrade is already in progress "
        f"(`aiodaemon upgrade` pid {first.pid} signalled pid {old}); nothing sent\n"
    )
    assert app.records("upgrade refused") == []
    assert len(app.records("upgrade started")) == 1


#: Runs argv[1:] holding 1,100 more inherited descriptors: its own get numbers above 1,024.
_MANY_FDS = """
import os, resource, sys
resource.setrlimit(resource.RLIMIT_NOFILE, (2048, resource.getrlimit(resource.RLIMIT_NOFILE)[1]))
null = os.open(os.devnull, os.O_RDONLY)
for _ in range(1100):
    os.set_inheritable(os.dup(null), True)
os.execv(sys.argv[1], sys.argv[1:])
"""


def test_upgrade_without_control_socket_from_a_parent_holding_many_descriptors(
    app: App,
) -> None:
    """Its pidfds lie above select()'s reach (1,024): the upgrade still waits and succeeds."""
    old = app.start("--no-control")
    app.edit('VERSION = "v1"', 'VERSION = "v2"')
    command = [str(AIODAEMON), "upgrade", "--pidfile", str(app.pidfile), "--timeout", "30"]
    result = python(["-c", _MANY_FDS, *command])
    assert (result.returncode, result.stderr) == (0, ""), result.stderr
    new = int(result.stdout)
    assert app.pid() == new
    # Without a control socket the command returns once the pidfile names the
    # new process; the old one, on the same listening socket, may still accept
    # a moment longer.
    wait_gone(old)
    assert app.get() == f"v2 {new}"


@pytest.mark.root
def test_a_successor_that_cannot_write_its_whole_pid_leaves_the_old_one_serving(app: App) -> None:
    """An RLIMIT_FSIZE of 3 bytes (inherited): refused in one line, the pidfile unchanged.

    A short write had left a pid made of both (8814 and 8820 gave 8824) and
    reported the upgrade done.
    """
    old = app.start()
    # Its "starting" record (which get() reads the port from) may trail the
    # readiness: written once the limit is on, it would be lost.
    app.port()
    prlimit = require_tool("prlimit")
    subprocess.run([prlimit, "--pid", str(old), "--fsize=3:3"], check=True)
    app.edit('VERSION = "v1"', 'VERSION = "v2"')
    result = cli("upgrade", "--pidfile", str(app.pidfile), "--timeout", "30")
    assert result.returncode == 1, result.stdout
    assert result.stderr.endswith(
        f"stopped before it took over: cannot write pidfile {app.pidfile}:"
        f" File too large (RLIMIT_FSIZE 3); see its log records in {app.log}\n"
    ), result.stderr
    assert app.pid() == old
    assert app.get() == f"v1 {old}"


def test_upgrade_without_control_socket_enforces_its_timeout(app: App) -> None:
    """--no-control: a new process not ready within --timeout is killed; the old one serves on."""
    old = app.start("--no-control")
    app.edit('MODE = ""', 'MODE = "hang"')
    result = cli("upgrade", "--pidfile", str(app.pidfile), "--timeout", "1")
    assert result.returncode == 1
    [failed] = wait_for(lambda: app.records("upgrade failed"), 10, "the upgrade failed record")
    new = failed["successor"]
    assert isinstance(new, int)
    assert f"the new process (pid {new}) was not ready after 1 s: sent it SIGTERM" in result.stderr
    app.assert_given_up_gracefully(new, old)


def test_upgrade_without_control_socket_kills_a_new_process_deaf_to_sigterm(app: App) -> None:
    """--no-control, the new process's loop blocked: SIGTERM, then SIGKILL 10 s later."""
    old = app.start("--no-control")
    app.edit('MODE = ""', 'MODE = "block60"')
    result = cli("upgrade", "--pidfile", str(app.pidfile), "--timeout", "1")
    assert result.returncode == 1
    assert (
        "was not ready after 1 s: killed it (still running 10 s after SIGTERM); "
        f"pid {old} serves on"
    ) in result.stderr
    assert app.pid() == old
    assert app.get() == f"v1 {old}"


def test_sigusr2_to_a_successor_not_yet_in_charge_starts_nothing(app: App) -> None:
    """A SIGUSR2 reaching the new process before it took over is refused: one daemon after."""
    gate = app.directory / "gate"
    old = app.start(APP_GATE=str(gate))
    app.edit('MODE = ""', 'MODE = "gate"')
    upgrade = upgrade_in_background(app)
    successor = None
    try:
        successor = _successor_starting(app)
        wait_for((app.directory / "gate.entered").exists, 30, "the startup hook")
        # Stopped, the old daemon cannot say "go": the new one stays ready, not in charge.
        os.kill(old, signal.SIGSTOP)
        try:
            gate.touch()
            ready = [successor]
            wait_for(lambda: [r for r in app.records("ready") if r["pid"] in ready], 30, "ready")
            os.kill(successor, signal.SIGUSR2)
            [refused] = wait_for(lambda: app.records("upgrade refused"), 30, "the refusal")
        finally:
            os.kill(old, signal.SIGCONT)
        out, stderr = upgrade.communicate(timeout=60)
    except BaseException:
        _end_what_is_left(upgrade, successor)
        raise
    assert refused["pid"] == successor
    assert refused["reason"] == f"cannot upgrade while still taking over from pid {old}"
    assert upgrade.returncode == 0, stderr
    assert out == f"{successor}\n"
    assert [r["pid"] for r in app.records("upgrade started")] == [old]
    wait_gone(old)
    assert app.pid() == successor
    assert app.get() == f"v1 {successor}"
    status = cli("status", "--pidfile", str(app.pidfile))
    assert status.stdout.startswith(f"running (pid {successor},")


def _upgrade_signalling_the_importing_successor(script: App, *signals: int) -> int:
    """Upgrade, sending ``signals`` to the new process while its code imports; its pid.

    The upgrade must go through (exit 0, the new pid on stdout).
    """
    gate = script.directory / "gate"
    _hold_the_new_code_at_import(script, gate)
    upgrade = upgrade_in_background(script)
    successor: int | None = None
    try:
        wait_for(lambda: Path(f"{gate}.importing").exists(), 30, "the new code importing")
        successor = _successor_pid(script)
        for signum in signals:
            os.kill(successor, signum)
        gate.touch()
        out, stderr = upgrade.communicate(timeout=60)
    except BaseException:
        _end_what_is_left(upgrade, successor)
        raise
    assert upgrade.returncode == 0, stderr
    assert out == f"{successor}\n"
    return successor


def test_signals_to_a_successor_still_importing_wait_for_its_handlers(script: App) -> None:
    """SIGUSR2 and SIGHUP reaching the new process while its code imports (a ``pkill``
    reaching both) wait for its handlers: refused and reloaded, the upgrade goes through."""
    old = script.start()
    successor = _upgrade_signalling_the_importing_successor(script, signal.SIGUSR2, signal.SIGHUP)
    [refused] = script.records("upgrade refused")
    assert refused["pid"] == successor
    assert refused["reason"] == f"cannot upgrade while still taking over from pid {old}"
    assert [r["pid"] for r in script.records("upgrade started")] == [old]
    wait_for(
        lambda: [r for r in script.records("reload finished") if r["pid"] == successor],
        30,
        "the held reload",
    )
    wait_gone(old)
    assert script.pid() == successor
    assert script.get() == f"v1 {successor}"


@pytest.mark.root
def test_an_upgrade_after_dev_null_was_removed_names_it(tmp_path: Path) -> None:
    """``/dev/null`` removed under a running daemon: the upgrade's error names it, not Python.

    The successor's stdin is opened on it: its ENOENT read ``upgrade failed:
    cannot start /usr/bin/python3: No such file or directory``, sending the
    operator after an interpreter that was there all along.
    """
    pidfile = tmp_path / "d.pid"
    options = json.dumps({"detach": True, "pidfile": str(pidfile)})
    # In a mount namespace of its own, with a /dev whose null can be removed.
    steps = f"""
        mount -t tmpfs -o size=64k none /dev && mknod -m 666 /dev/null c 1 3 || exit 9
        "$0" {program("idle")} '{options}' 2>/dev/null || exit 9
        rm /dev/null
        "$0" -m aiodaemon upgrade --pidfile {pidfile}; echo "upgrade=$?" >&2
        "$0" -m aiodaemon stop --pidfile {pidfile}; echo "stop=$?" >&2
    """
    unshare = [require_tool("unshare"), "--mount", "--propagation", "private"]
    result = subprocess.run(
        [*unshare, "sh", "-c", steps, PYTHON],
        capture_output=True,
        text=True,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        timeout=60,
        check=False,
    )
    upgrade, upgraded, stop, stopped = result.stderr.splitlines()
    assert upgrade == "aiodaemon: upgrade failed: cannot open /dev/null: No such file or directory"
    assert upgraded == "upgrade=1"
    # The old daemon served on, and stops as ever.
    assert stop.startswith("aiodaemon: stopped (pid "), result.stderr
    assert stopped == "stop=0"
    assert not pidfile.exists()


def test_a_forced_exit_during_an_upgrade_kills_the_successor(tmp_path: Path) -> None:
    """SIGTERM twice while sync code holds the old daemon's loop mid-upgrade: both end.

    The successor, still starting, took the old daemon's forced exit for a
    vanished predecessor and took over, its pidfile removed: a daemon nobody
    could find any more.
    """
    shutil.copy(PROGRAM.with_name("upgrade_blocking.py"), tmp_path / "upgrade_app.py")
    app = App(tmp_path, "script")
    old = app.start()
    (tmp_path / "slow").touch()
    os.kill(old, signal.SIGUSR2)
    successor = None
    try:
        successor = _successor_starting(app)
        os.kill(old, signal.SIGWINCH)
        wait_for((tmp_path / "blocked").exists, what="the old daemon's loop held")
        os.kill(old, signal.SIGTERM)
        # Timed from its delivery, not its sending: a daemon not scheduled for a
        # while after the kill notes it late, and the second would be too close.
        wait_for(lambda: not signal_pending(old, signal.SIGTERM), what="the first delivered")
        delivered = time.monotonic()
        # Not a wait for an event: what makes it a second request is the time between.
        time.sleep(max(0.0, delivered + REPEAT_WINDOW + 0.1 - time.monotonic()))
        os.kill(old, signal.SIGTERM)
        wait_gone(old)
        wait_gone(successor)
    finally:
        (tmp_path / "release").touch()
        _end_what_is_left(None, successor)
        kill_quietly(old)
    assert not app.records("old daemon vanished, taking over")
    assert not app.pidfile.exists()


def test_upgrade_of_a_daemon_still_starting_without_control_socket_says_none_started(
    tmp_path: Path,
) -> None:
    """--no-control, the daemon in its startup hooks: exit 1 saying no new process started.

    The daemon refuses the SIGUSR2 (its log says so) and starts no new process;
    ``upgrade`` waited --timeout plus the hand-over grace (16 s for --timeout 1),
    then said "no hand-over within 1 s". It still waits that long: a daemon
    whose loop was held may start the new process late.
    """
    shutil.copy(program("cli_slow_app"), tmp_path / "slowapp.py")
    pidfile, log = tmp_path / "app.pid", tmp_path / "app.log"
    argv = [str(AIODAEMON), "start", "slowapp:main", "--pidfile", str(pidfile), "--no-control"]
    argv += ["--log-file", str(log), "--start-timeout", "60"]
    starting = subprocess.Popen(argv, cwd=tmp_path, env=clean_env(), stdout=subprocess.DEVNULL)
    try:
        wait_for(lambda: pidfile.exists() and pidfile.read_text().strip(), 30, "the pid written")
        pid = int(pidfile.read_text())
        result = cli("upgrade", "--pidfile", str(pidfile), "--timeout", "1")
        assert result.returncode == 1
        assert result.stderr == (
            f"aiodaemon: no new process from pid {pid} within 16 s (a daemon still starting"
            " refuses an upgrade); it keeps running (without a control socket its log says why)\n"
        )
        assert is_alive(pid)
        wait_for(
            lambda: '"event":"upgrade refused"' in log.read_text(), 10, "the refusal in the log"
        )
    finally:
        starting.kill()
        starting.wait()
        if pidfile.exists() and pidfile.read_text().strip():
            kill_quietly(int(pidfile.read_text()))


def _run_in_foreground(script: App, *, stderr: int) -> subprocess.Popen[bytes]:
    """``aiodaemon run`` of the script's app with fd ``stderr`` as its stderr (closed here)."""
    argv = [str(AIODAEMON), "run", "upgrade_app:main", "--pidfile", str(script.pidfile)]
    argv += ["--listen", "http=127.0.0.1:0", "--log-file", str(script.log)]
    try:
        return subprocess.Popen(
            argv,
            cwd=script.directory,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    finally:
        os.close(stderr)


def test_a_stalled_stderr_pipe_does_not_hold_the_old_daemon_during_an_upgrade(
    script: App,
) -> None:
    """New code that prints at import, a foreground daemon's stderr a pipe nobody reads: served.

    The old daemon copies its successor's start-up stderr to its own on the
    event loop: the write to a full pipe held the loop, so neither the upgrade
    nor any request was answered until someone read the pipe.
    """
    read_end, write_end = full_pipe()
    daemon = _run_in_foreground(script, stderr=write_end)
    try:
        wait_for(lambda: script.records("ready"), 30, "the daemon to be ready")
        script.edit(
            "import aiodaemon\n",
            "import aiodaemon\nimport sys\n\nprint('new code', file=sys.stderr, flush=True)\n",
        )
        result = cli("upgrade", "--pidfile", str(script.pidfile), "--timeout", "10", timeout=60)
        assert result.returncode == 0, result.stderr
        new = int(result.stdout)
        assert script.get() == f"v1 {new}"
        # Its exit drained its log: the warning is there.
        assert daemon.wait(timeout=30) == 0
        [lost] = script.records("successor stderr not copied")
        assert lost["pid"] == daemon.pid
        assert lost["bytes"] == len("new code\n")
    finally:
        os.close(read_end)
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


def test_a_stalled_terminal_does_not_hold_the_old_daemon_during_an_upgrade(
    script: App,
) -> None:
    """New code that prints at import, a foreground daemon's terminal no longer read: served.

    A terminal, unlike a pipe, may take part of a write that ``poll`` allowed
    and hold the rest until it is read (a stalled ssh connection): the copy
    of the successor's stderr held the old daemon's loop, and neither the
    upgrade nor any request was answered until someone read the terminal.
    """
    controller, terminal = pty.openpty()
    name = os.ttyname(terminal)
    daemon = _run_in_foreground(script, stderr=terminal)
    try:
        wait_for(lambda: script.records("ready"), 30, "the daemon to be ready")
        _fill_but_a_little(controller, name)
        script.edit(
            "import aiodaemon\n",
            "import aiodaemon\nimport sys\n\n"
            "if 'aiodaemon._prefork._adopt' in sys.modules:\n"
            "    print('x' * 30000, file=sys.stderr, flush=True)\n",
        )
        result = cli("upgrade", "--pidfile", str(script.pidfile), "--timeout", "10", timeout=40)
        assert result.returncode == 0, result.stderr
        new = int(result.stdout)
        assert script.get() == f"v1 {new}"
        assert daemon.wait(timeout=30) == 0
        [lost] = script.records("successor stderr not copied")
        assert lost["pid"] == daemon.pid
    finally:
        os.close(controller)  # a hang-up: a write still held ends
        if daemon.poll() is None:
            daemon.kill()
            daemon.wait()


def _fill_but_a_little(controller: int, name: str) -> None:
    """Fill the terminal ``name`` nobody reads, then read back a little at its ``controller``."""
    terminal = os.open(name, os.O_WRONLY | os.O_NONBLOCK | os.O_NOCTTY)
    try:
        with contextlib.suppress(BlockingIOError):
            while True:
                os.write(terminal, b"y" * 100)
    finally:
        os.close(terminal)
    # What is left is room for part of a write, not all of one.
    assert os.read(controller, 1000)


def test_an_on_signal_signal_to_a_successor_still_importing_waits_for_its_handler(
    script: App,
) -> None:
    """A signal of ``on_signal`` reaching the new process while its code imports (a
    ``pkill`` reaching both) waits for its handler: handled there, the upgrade goes through.

    Only the lifecycle signals were held for it: SIGPWR's default action ended
    it, and the upgrade failed.
    """
    script.edit(
        "import aiodaemon\n",
        "import aiodaemon\nimport signal\n\n\n"
        "@aiodaemon.on_signal(signal.SIGPWR)\n"
        "async def power() -> None:\n"
        "    directory = os.path.dirname(os.environ['APP_LOG'])\n"
        "    open(os.path.join(directory, f'power.{os.getpid()}'), 'w').close()\n",
    )
    script.start()
    successor = _upgrade_signalling_the_importing_successor(script, signal.SIGPWR)
    wait_for((script.directory / f"power.{successor}").exists, 30, "the held signal handled")
    assert script.get() == f"v1 {successor}"
