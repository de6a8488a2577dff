"""The ``aiodaemon`` command end to end, through the installed console script."""

from __future__ import annotations

import fcntl
import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import (
    AIODAEMON,
    aiodaemon_cli,
    clean_env,
    install_program,
    is_alive,
    kill_pidfile_holder,
    past_duplicate_window,
    read_json_lines,
    read_pid,
    require_tool,
    wait_for,
    wait_gone,
)

SCRIPT = AIODAEMON


@pytest.fixture(scope="module", autouse=True)
def console_script() -> Path:
    """The installed ``aiodaemon`` console script."""
    if not SCRIPT.exists():
        pytest.fail(f"{SCRIPT} is missing: install the project with `pip install -e .`")
    return SCRIPT


@pytest.fixture
def app_dir(tmp_path: Path) -> Path:
    """A directory holding the example programs; commands run from there."""
    install_program("cli_app", tmp_path, "app.py")
    install_program("cli_daemon_app", tmp_path, "daemonapp.py")
    install_program("cli_stuck_app", tmp_path, "stuckapp.py")
    install_program("cli_fail_app", tmp_path, "failapp.py")
    install_program("cli_slow_app", tmp_path, "slowapp.py")
    return tmp_path


@pytest.fixture
def pidfile(app_dir: Path) -> Iterator[Path]:
    """A pidfile path; whatever daemon still holds it at the end is killed."""
    path = app_dir / "app.pid"
    yield path
    kill_pidfile_holder(path)


def cli(
    *args: str | os.PathLike[str], cwd: Path, module: bool = False, timeout: float = 45.0
) -> subprocess.CompletedProcess[str]:
    """Run ``aiodaemon ARGS`` (or ``python -m aiodaemon ARGS``) from ``cwd`` to completion."""
    return aiodaemon_cli(*args, cwd=cwd, module=module, timeout=timeout)


def start(app_dir: Path, pidfile: Path, target: str = "app:main", *extra: str) -> int:
    """Start a daemon with ``aiodaemon start`` and return the pid it printed."""
    result = cli("start", target, "--pidfile", pidfile, *extra, cwd=app_dir)
    assert result.returncode == 0, result.stderr
    pid = int(result.stdout.strip())
    # Written before start returns: what systemd's Type=forking + PIDFile= relies on.
    assert pidfile.read_text() == f"{pid}\n"
    return pid


def one_line(text: str) -> str:
    """The only line of ``text``; fails if there are more (a traceback, say)."""
    lines = text.strip().splitlines()
    assert len(lines) == 1, text
    return lines[0]


# --- start, status, stop -----------------------------------------------------------


@pytest.mark.parametrize("module", [False, True], ids=["script", "python-m"])
def test_start_status_stop(app_dir: Path, pidfile: Path, module: bool) -> None:
    """start prints the ready daemon's pid, status says running, stop ends it cleanly."""
    result = cli("start", "app:main", "--pidfile", pidfile, cwd=app_dir, module=module)
    assert result.returncode == 0, result.stderr
    pid = int(result.stdout.strip())
    assert is_alive(pid)
    assert read_pid(pidfile) == pid
    # Ready means the startup hook has run.
    assert (app_dir / "started").read_text() == str(pid)

    status = cli("status", "--pidfile", pidfile, cwd=app_dir, module=module)
    assert status.returncode == 0
    assert f"running (pid {pid}" in status.stdout

    stop = cli("stop", "--pidfile", pidfile, cwd=app_dir, module=module)
    assert stop.returncode == 0, stop.stderr
    assert f"stopped (pid {pid})" in stop.stderr
    assert not is_alive(pid)
    assert not pidfile.exists()

    status = cli("status", "--pidfile", pidfile, cwd=app_dir, module=module)
    assert status.returncode == 3
    assert "not running" in status.stdout


def test_start_when_running_starts_nothing(app_dir: Path, pidfile: Path) -> None:
    """A second start says "already running" with the pid, exits 0 and starts nothing."""
    pid = start(app_dir, pidfile)
    (app_dir / "started").unlink()
    again = cli("start", "app:main", "--pidfile", pidfile, cwd=app_dir)
    assert again.returncode == 0
    assert again.stdout == ""
    assert f"already running (pid {pid}" in one_line(again.stderr)
    assert read_pid(pidfile) == pid
    assert not (app_dir / "started").exists()
    assert cli("stop", "--pidfile", pidfile, cwd=app_dir).returncode == 0


def test_start_failure_reports_the_daemon_error(app_dir: Path, pidfile: Path) -> None:
    """A daemon failing at startup makes start exit 1 with its error; no pidfile is left."""
    result = cli("start", "failapp:main", "--pidfile", pidfile, cwd=app_dir)
    assert result.returncode == 1
    assert result.stdout == ""
    assert "the database is on fire" in result.stderr
    assert "Traceback" not in result.stderr
    assert not pidfile.exists()


def test_daemon_target_uses_its_own_hooks(app_dir: Path, pidfile: Path) -> None:
    """TARGET naming a Daemon runs the module's main with that Daemon's hooks."""
    pid = start(app_dir, pidfile, "daemonapp:daemon")
    assert (app_dir / "daemon-started").read_text() == str(pid)
    assert cli("stop", "--pidfile", pidfile, cwd=app_dir).returncode == 0


def test_a_daemon_subclass_target_runs_its_own_main(app_dir: Path, pidfile: Path) -> None:
    """TARGET naming a Daemon whose subclass defines ``main`` runs that method."""
    pid = start(app_dir, pidfile, "daemonapp:subclassed")
    marker = app_dir / "subclass-main"
    assert wait_for(lambda: marker.exists() and marker.read_text(), 10, "main") == str(pid)
    assert cli("stop", "--pidfile", pidfile, cwd=app_dir).returncode == 0


def test_options_reach_the_daemon(app_dir: Path, pidfile: Path) -> None:
    """--workdir, --umask, --log-file and --listen are applied to the started daemon."""
    log = app_dir / "app.jsonl"
    sock = app_dir / "app.sock"
    pid = start(
        app_dir, pidfile, "app:main",
        "--workdir", str(app_dir), "--umask", "027", "--log-file", str(log),
        "--listen", f"ctl=unix:{sock}", "--log-level", "debug",
    )  # fmt: skip
    assert os.readlink(f"/proc/{pid}/cwd") == str(app_dir)
    with open(f"/proc/{pid}/status") as f:
        assert "Umask:\t0027\n" in f.read()
    assert sock.exists()
    wait_for(lambda: log.exists() and log.stat().st_size > 0, what="a log line")
    assert cli("stop", "--pidfile", pidfile, cwd=app_dir).returncode == 0


def test_stop_escalates_to_sigkill(app_dir: Path, pidfile: Path) -> None:
    """A daemon stuck in a shutdown hook is killed after --timeout; stop still exits 0."""
    pid = start(app_dir, pidfile, "stuckapp:main", "--shutdown-timeout", "50")
    stop = cli("stop", "--pidfile", pidfile, "--timeout", "1", cwd=app_dir)
    assert stop.returncode == 0, stop.stderr
    assert "SIGKILL" in stop.stderr
    assert not is_alive(pid)
    # The killed daemon could not remove its pidfile; stop did.
    assert not pidfile.exists()
    assert cli("status", "--pidfile", pidfile, cwd=app_dir).returncode == 3


def test_stop_during_startup(app_dir: Path, pidfile: Path) -> None:
    """stop of a daemon still in its startup hooks ends it; the pending start fails."""
    starting = subprocess.Popen(
        [SCRIPT, "start", "slowapp:main", "--pidfile", pidfile],
        cwd=app_dir,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        pid = read_pid(pidfile)
        assert cli("status", "--pidfile", pidfile, cwd=app_dir).returncode == 0
        stop = cli("stop", "--pidfile", pidfile, cwd=app_dir)
        assert stop.returncode == 0, stop.stderr
        out, err = starting.communicate(timeout=30)
    finally:
        if starting.poll() is None:
            starting.kill()
            starting.communicate()
    assert not is_alive(pid)
    assert starting.returncode != 0
    assert out == ""
    # Asked over the control socket (or by SIGTERM without one): a start that did not happen.
    assert "before it was ready" in one_line(err)


def test_stop_when_not_running(app_dir: Path, pidfile: Path) -> None:
    """stop without a daemon exits 0 and says it was not running."""
    result = cli("stop", "--pidfile", pidfile, cwd=app_dir)
    assert result.returncode == 0
    assert "not running" in one_line(result.stderr)


def test_restart_gives_a_new_pid(app_dir: Path, pidfile: Path) -> None:
    """restart stops the old daemon and prints the pid of a new, running one."""
    old = start(app_dir, pidfile)
    result = cli("restart", "app:main", "--pidfile", pidfile, cwd=app_dir)
    assert result.returncode == 0, result.stderr
    new = int(result.stdout.strip())
    assert new != old
    assert not is_alive(old)
    assert is_alive(new)
    assert read_pid(pidfile) == new
    assert cli("stop", "--pidfile", pidfile, cwd=app_dir).returncode == 0


def test_restart_of_a_stopped_daemon_starts_it(app_dir: Path, pidfile: Path) -> None:
    """restart with nothing running just starts the daemon."""
    result = cli("restart", "app:main", "--pidfile", pidfile, cwd=app_dir)
    assert result.returncode == 0, result.stderr
    pid = int(result.stdout.strip())
    assert read_pid(pidfile) == pid
    assert cli("stop", "--pidfile", pidfile, cwd=app_dir).returncode == 0


def test_reload_runs_reload_hooks(app_dir: Path, pidfile: Path) -> None:
    """reload sends SIGHUP: the daemon's reload hook runs and it keeps running."""
    pid = start(app_dir, pidfile)
    result = cli("reload", "--pidfile", pidfile, cwd=app_dir)
    assert result.returncode == 0, result.stderr
    reloads = app_dir / "reloads"
    wait_for(lambda: reloads.exists() and reloads.read_text() == "reload\n", what="reload hook")
    assert is_alive(pid)
    assert cli("stop", "--pidfile", pidfile, cwd=app_dir).returncode == 0


def test_reload_when_not_running(app_dir: Path, pidfile: Path) -> None:
    """reload without a daemon exits 7 (LSB "not running") with a message."""
    result = cli("reload", "--pidfile", pidfile, cwd=app_dir)
    assert result.returncode == 7
    assert "not running" in one_line(result.stderr)


# --- run in the foreground ------------------------------------------------------------


def _has_record(path: Path, event: str) -> bool:
    """Whether the JSON-lines log at ``path`` holds a record of ``event``."""
    return any(record["event"] == event for record in read_json_lines(path))


def _run(app_dir: Path, *argv: str | Path) -> tuple[subprocess.Popen[bytes], Path]:
    """``aiodaemon run ARGV`` in ``app_dir``, its stderr (the log) in a file: both."""
    output = app_dir / "stderr.jsonl"
    with output.open("w") as err:
        proc = subprocess.Popen(
            [SCRIPT, "run", *argv],
            cwd=app_dir,
            env=clean_env(),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=err,
        )
    return proc, output


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_run_stays_in_the_foreground(app_dir: Path, pidfile: Path, sig: int) -> None:
    """run keeps the daemon in the launching process; SIGINT or SIGTERM ends it with 0."""
    proc, output = _run(app_dir, "app:main", "--pidfile", pidfile, "--log-format", "json")
    try:
        assert read_pid(pidfile) == proc.pid
        # Ready, not just in its startup hook (which writes "started" before it
        # returns): a stop signal before ready is a failed start, exit 1.
        wait_for(lambda: _has_record(output, "ready"), what="the ready record")
        status = cli("status", "--pidfile", pidfile, cwd=app_dir)
        assert status.returncode == 0
        proc.send_signal(sig)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, output.read_text()
    assert not pidfile.exists()


def test_run_second_ctrl_c_forces_the_exit(app_dir: Path, pidfile: Path) -> None:
    """run: a second SIGINT during a stuck shutdown exits at once with 130."""
    proc, output = _run(app_dir, "stuckapp:main", "--pidfile", pidfile, "--shutdown-timeout", "50")
    try:
        assert read_pid(pidfile) == proc.pid
        wait_for(lambda: '"ready"' in output.read_text(), what="ready")
        proc.send_signal(signal.SIGINT)
        wait_for(lambda: '"shutdown started"' in output.read_text(), what="shutdown")
        past_duplicate_window()
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130


def test_run_when_running_exits_3(app_dir: Path, pidfile: Path) -> None:
    """run (unlike start) refuses a pidfile held by a running daemon: one line, exit 3."""
    pid = start(app_dir, pidfile)
    result = cli("run", "app:main", "--pidfile", pidfile, cwd=app_dir)
    assert result.returncode == 3
    assert f"already running (pid {pid}" in one_line(result.stderr)
    assert read_pid(pidfile) == pid
    assert cli("stop", "--pidfile", pidfile, cwd=app_dir).returncode == 0


# --- pidfiles that do not belong to a live daemon ------------------------------------


@pytest.fixture
def stranger() -> Iterator[subprocess.Popen[bytes]]:
    """A live process unrelated to any daemon, whose pid ends up in a stale pidfile."""
    proc = subprocess.Popen(["sleep", "30"])
    try:
        yield proc
    finally:
        proc.kill()
        proc.wait()


def test_stale_pidfile_never_signals_a_stranger(
    app_dir: Path, pidfile: Path, stranger: subprocess.Popen[bytes]
) -> None:
    """A stale pidfile naming a live unrelated process: status 1, stop/reload leave it alone."""
    pidfile.write_text(f"{stranger.pid}\n")
    status = cli("status", "--pidfile", pidfile, cwd=app_dir)
    assert status.returncode == 1
    assert "dead" in status.stdout
    stop = cli("stop", "--pidfile", pidfile, "--timeout", "1", cwd=app_dir)
    assert stop.returncode == 0
    assert "not running" in one_line(stop.stderr)
    reload = cli("reload", "--pidfile", pidfile, cwd=app_dir)
    assert reload.returncode == 7
    assert is_alive(stranger.pid)
    assert stranger.poll() is None


def test_locked_pidfile_naming_another_process_is_unknown(
    app_dir: Path, pidfile: Path, stranger: subprocess.Popen[bytes]
) -> None:
    """A pidfile locked by one process but naming another: status 4, stop refuses (1)."""
    fd = os.open(pidfile, os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(fd, f"{stranger.pid}\n".encode())
        status = cli("status", "--pidfile", pidfile, cwd=app_dir)
        assert status.returncode == 4
        assert "unknown" in status.stdout
        stop = cli("stop", "--pidfile", pidfile, "--timeout", "1", cwd=app_dir)
        assert stop.returncode == 1
        assert "nothing signalled" in one_line(stop.stderr)
        assert stranger.poll() is None
    finally:
        os.close(fd)


def test_status_of_an_unreadable_pidfile_is_unknown(app_dir: Path) -> None:
    """status on a path that is not a regular file exits 4 (unknown)."""
    status = cli("status", "--pidfile", app_dir, cwd=app_dir)
    assert status.returncode == 4
    assert "unknown" in status.stdout


def test_status_of_an_empty_unlocked_pidfile(app_dir: Path, pidfile: Path) -> None:
    """An empty pidfile nobody holds (left by a daemon that could not unlink) is "not running"."""
    pidfile.write_text("")
    status = cli("status", "--pidfile", pidfile, cwd=app_dir)
    assert status.returncode == 3


# --- bad input ------------------------------------------------------------------------

BAD_INPUT = {
    "missing module": (["nosuchmodule:main"], "no module named 'nosuchmodule'"),
    "missing attribute": (["app:nosuch"], "has no attribute 'nosuch'"),
    "sync function": (["app:sync_main"], "must be an async function"),
    "not callable": (["app:CONFIG"], "not an async function or an aiodaemon.Daemon"),
    "two arguments": (["app:two_args"], "no argument or one Context"),
    "malformed target": (["app:main:x"], "MODULE:ATTR"),
    "listen without name": (["app:main", "--listen", "127.0.0.1:1"], "--listen"),
    "unparsable listen": (["app:main", "--listen", "http=nowhere"], "--listen http"),
    "invalid umask": (["app:main", "--umask", "8"], "--umask"),
    "umask out of range": (["app:main", "--umask", "7777"], "--umask"),
    "unknown user": (["app:main", "--user", "no-such-user-here"], "--user"),
    "unknown group": (["app:main", "--group", "no-such-group-here"], "--group"),
    "bad shutdown timeout": (["app:main", "--shutdown-timeout", "soon"], "--shutdown-timeout"),
    "bad log level": (["app:main", "--log-level", "loud"], "--log-level"),
    "missing workdir": (["app:main", "--workdir", "/no/such/dir"], "--workdir"),
    "unknown option": (["app:main", "--colour"], "--colour"),
}


@pytest.mark.parametrize("command", ["start", "run"])
@pytest.mark.parametrize("case", sorted(BAD_INPUT))
def test_bad_input_is_one_line_exit_2(
    app_dir: Path, pidfile: Path, command: str, case: str
) -> None:
    """Each bad TARGET or option: one line naming it, exit 2, nothing started, no pidfile."""
    args, expected = BAD_INPUT[case]
    result = cli(command, *args, "--pidfile", pidfile, cwd=app_dir)
    assert result.returncode == 2
    assert result.stdout == ""
    line = one_line(result.stderr)
    assert expected in line
    assert line.startswith("aiodaemon: ")
    assert not pidfile.exists()
    assert not (app_dir / "started").exists()


def test_restart_with_bad_input_keeps_the_daemon(app_dir: Path, pidfile: Path) -> None:
    """restart validates TARGET and options first: on bad input the old daemon keeps running."""
    pid = start(app_dir, pidfile)
    result = cli("restart", "app:nosuch", "--pidfile", pidfile, cwd=app_dir)
    assert result.returncode == 2
    assert "has no attribute 'nosuch'" in one_line(result.stderr)
    assert is_alive(pid)
    assert read_pid(pidfile) == pid
    assert cli("stop", "--pidfile", pidfile, cwd=app_dir).returncode == 0


def test_bad_import_is_one_line(app_dir: Path, pidfile: Path) -> None:
    """A module that raises on import: one line with the error and where, exit 2."""
    install_program("cli_broken_import", app_dir, "broken.py")
    result = cli("start", "broken:main", "--pidfile", pidfile, cwd=app_dir)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert "ValueError: no config" in line
    assert "broken.py:2" in line
    assert not pidfile.exists()


def test_a_hook_refused_at_import_points_at_the_program(app_dir: Path, pidfile: Path) -> None:
    """A sync hook refused by its decorator: the line names the program's decorator line.

    It named the line in aiodaemon's own module that raised the TypeError.
    """
    install_program("cli_bad_hook", app_dir, "bad_hook.py")
    result = cli("start", "bad_hook:main", "--pidfile", pidfile, cwd=app_dir)
    assert result.returncode == 2
    line = one_line(result.stderr)
    assert line.startswith("aiodaemon: importing 'bad_hook' failed: TypeError: on_startup "), line
    assert line.endswith(f"({app_dir / 'bad_hook.py'}:6)"), line
    assert not pidfile.exists()


def test_a_function_target_beside_a_daemon_with_hooks_names_the_daemon_to_run(
    app_dir: Path, pidfile: Path
) -> None:
    """TARGET module:main where the module's hooks are on its own Daemon: a warning, still started.

    The default Daemon ran main, and the module's Daemon's startup hook never
    ran, without a word.
    """
    result = cli("start", "daemonapp:main", "--pidfile", pidfile, cwd=app_dir)
    assert result.returncode == 0, result.stderr
    assert result.stderr.splitlines()[0] == (
        "aiodaemon: warning: hooks that will not run: daemonapp.started (on_startup) are"
        " registered on daemonapp.daemon, not the Daemon TARGET runs; run daemonapp:daemon"
    )
    assert not (app_dir / "daemon-started").exists()
    assert cli("stop", "--pidfile", pidfile, cwd=app_dir).returncode == 0
    # Given as the warning says, the hook runs and nothing is said.
    result = cli("start", "daemonapp:daemon", "--pidfile", pidfile, cwd=app_dir)
    assert result.returncode == 0, result.stderr
    assert "hooks that will not run" not in result.stderr
    assert (app_dir / "daemon-started").read_text() == result.stdout.strip()
    assert cli("stop", "--pidfile", pidfile, cwd=app_dir).returncode == 0


@pytest.mark.parametrize("module", [False, True], ids=["command", "python-m"])
@pytest.mark.parametrize("name", ["json", "queue"])
def test_a_target_named_like_a_standard_module_is_refused(
    app_dir: Path, pidfile: Path, name: str, module: bool
) -> None:
    """A program file named like a standard module: one line naming the file, exit 2.

    ``json`` said "module 'json' has no attribute 'main'" with json.py right
    there; ``queue`` started, its file in the standard queue's place for the whole
    daemon, and main failed at its first thread (no attribute 'SimpleQueue').
    ``python -m aiodaemon``, whose current directory Python puts first on the
    path, gave structlog's traceback over json.py (no attribute 'dumps').
    """
    install_program("cli_named_like_stdlib", app_dir, f"{name}.py")
    result = cli("start", f"{name}:main", "--pidfile", pidfile, cwd=app_dir, module=module)
    assert result.returncode == 2
    assert result.stdout == ""
    assert one_line(result.stderr) == (
        f"aiodaemon: {app_dir / name}.py cannot be imported as itself: its module name "
        f"{name!r} is the standard library's {name} (rename it, e.g. {name}_app.py)"
    )
    assert not pidfile.exists()


@pytest.mark.parametrize("command", ["start", "restart"])
def test_an_import_that_exits_is_a_failed_start(app_dir: Path, pidfile: Path, command: str) -> None:
    """A module whose import calls sys.exit(0): one line saying where, exit 2, nothing replaced.

    start exited 0, its "ready" status, having started nothing; restart too,
    having stopped nothing.
    """
    install_program("cli_exits_at_import", app_dir, "quits.py")
    pid = start(app_dir, pidfile) if command == "restart" else None
    result = cli(command, "quits:main", "--pidfile", pidfile, cwd=app_dir)
    assert result.returncode == 2
    assert result.stdout == ""
    line = one_line(result.stderr)
    assert line.startswith("aiodaemon: importing 'quits' failed: SystemExit: 0 ("), line
    assert line.endswith("quits.py:4)"), line
    if pid is None:
        assert not pidfile.exists()
    else:
        assert is_alive(pid)
        assert read_pid(pidfile) == pid
        assert cli("stop", "--pidfile", pidfile, cwd=app_dir).returncode == 0


@pytest.mark.parametrize(
    "args",
    [[], ["frobnicate"], ["stop"], ["status"], ["reload"], ["restart", "app:main"], ["start"]],
    ids=["none", "unknown", "stop", "status", "reload", "restart", "start"],
)
def test_usage_errors(app_dir: Path, args: list[str]) -> None:
    """A missing command, argument or --pidfile: one line, exit 2."""
    result = cli(*args, cwd=app_dir)
    assert result.returncode == 2
    assert one_line(result.stderr).startswith("aiodaemon")


@pytest.mark.parametrize("command", ["run", "start", "stop", "restart", "reload", "status"])
def test_help_has_examples(app_dir: Path, command: str) -> None:
    """Every command's --help exits 0 and shows examples."""
    result = cli(command, "--help", cwd=app_dir)
    assert result.returncode == 0
    assert "examples:" in result.stdout
    assert f"aiodaemon {command}" in result.stdout


@pytest.mark.parametrize("command", ["start", "stop", "restart", "reload", "status", "upgrade"])
def test_help_says_the_exit_statuses(app_dir: Path, command: str) -> None:
    """An init-script action's --help says what its exit status tells, 0 and failures alike."""
    result = cli(command, "--help", cwd=app_dir)
    assert result.returncode == 0
    epilog = " ".join(result.stdout.partition("examples:")[2].split())
    assert re.search(r"exit( status \(LSB\):)? 0", epilog, re.IGNORECASE), epilog
    assert re.search(r"\b(1|4) (when|dead)\b", epilog), epilog


# --- interoperability with Debian's start-stop-daemon -----------------------------------


def test_start_stop_daemon_status_and_stop(app_dir: Path, pidfile: Path) -> None:
    """start-stop-daemon --status and --stop work on an aiodaemon daemon's pidfile."""
    ssd = require_tool("start-stop-daemon")
    pid = start(app_dir, pidfile)

    def ssd_run(*args: str) -> int:
        return subprocess.run([ssd, *args, "--pidfile", str(pidfile)], check=False).returncode

    assert ssd_run("--status") == 0
    assert ssd_run("--stop", "--retry", "TERM/20") == 0
    wait_gone(pid)
    assert not pidfile.exists()
    assert ssd_run("--status") == 3
    assert cli("status", "--pidfile", pidfile, cwd=app_dir).returncode == 3


# --- the logrotate snippet of docs/production.md ----------------------------------------


def test_logrotate_snippet_reopens_the_log(app_dir: Path, pidfile: Path) -> None:
    """logrotate with `create` + `pkill -USR1 -L -F PIDFILE`: later records go to the new file."""
    logrotate = require_tool("logrotate")
    log = app_dir / "app.jsonl"
    pid = start(app_dir, pidfile, "app:main", "--log-file", str(log))
    config = app_dir / "logrotate.conf"
    config.write_text(
        f"{log} {{\n    rotate 3\n    missingok\n    create 0640 root root\n"
        f"    postrotate\n        pkill -USR1 -L -F {pidfile}\n    endscript\n}}\n"
    )
    state = app_dir / "logrotate.state"
    rotated = subprocess.run([logrotate, "-f", "-s", state, config], check=False)
    assert rotated.returncode == 0

    def holds(name: str) -> bool:
        for fd in os.listdir(f"/proc/{pid}/fd"):
            try:
                link = os.readlink(f"/proc/{pid}/fd/{fd}")
            except FileNotFoundError:
                continue  # closed since the listing: the reopen under way
            if link == str(app_dir / name):
                return True
        return False

    wait_for(lambda: holds("app.jsonl") and not holds("app.jsonl.1"), what="log reopened")
    assert cli("stop", "--pidfile", pidfile, cwd=app_dir).returncode == 0
    events = [line["event"] for line in read_json_lines(log)]
    assert "shutdown started" in events
    assert "shutdown started" not in log.with_name("app.jsonl.1").read_text()


def test_pkill_snippet_spares_a_stale_pidfile_stranger(
    app_dir: Path, pidfile: Path, stranger: subprocess.Popen[bytes]
) -> None:
    """`pkill -USR1 -L -F` on a stale (unlocked) pidfile fails and signals nobody."""
    pkill = require_tool("pkill")
    pidfile.write_text(f"{stranger.pid}\n")
    result = subprocess.run([pkill, "-USR1", "-L", "-F", pidfile], capture_output=True, check=False)
    assert result.returncode != 0
    assert stranger.poll() is None


@pytest.mark.parametrize("module", [False, True], ids=["command", "python-m"])
def test_a_program_module_named_like_one_the_start_imports_is_left_to_the_program(
    app_dir: Path, pidfile: Path, module: bool
) -> None:
    """A ``resource.py`` of the program's beside its target: the daemon starts, and stops.

    The importer puts the program's directory first on the path, as Python does
    for ``python app.py``; the start imported the standard ``resource`` only
    after TARGET, and got the program's file: a traceback, exit 1 ("module
    'resource' has no attribute 'RLIMIT_AS'"), with the kit too.
    """
    (app_dir / "resource.py").write_text('class Resource:\n    path = "/items"\n')
    pid = int(cli("start", "app:main", "--pidfile", pidfile, cwd=app_dir, module=module).stdout)
    assert read_pid(pidfile) == pid
    assert cli("stop", "--pidfile", pidfile, cwd=app_dir).returncode == 0
