"""Common mistakes get one clear line, the same prefix from the CLI and run(), no noise."""

from __future__ import annotations

import json
import os
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support import (
    PYTHON,
    REPO,
    clean_env,
    python,
    read_json_lines,
    require_tool,
    wait_for,
    wait_gone,
)

PROGRAMS = REPO / "tests" / "programs"


def unprivileged(command: list[str]) -> list[str]:
    """``command`` as nobody when we are root, with only the right to read.

    The interpreter may live under /root; nobody gets no CAP_NET_BIND_SERVICE
    and no CAP_SYS_CHROOT.
    """
    if os.geteuid() != 0:
        return command
    return [
        require_tool("setpriv"),
        "--reuid=65534",
        "--regid=65534",
        "--clear-groups",
        "--inh-caps=+dac_read_search",
        "--ambient-caps=+dac_read_search",
        *command,
    ]


def run(command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``command`` from / with the test environment, capturing its output."""
    return subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
        cwd="/",
        stdin=subprocess.DEVNULL,
        check=False,
    )


def cli(*args: str, as_nobody: bool = False) -> subprocess.CompletedProcess[str]:
    """``python -m aiodaemon ARGS`` from /, as nobody when ``as_nobody``."""
    command = [PYTHON, "-m", "aiodaemon", *args]
    return run(unprivileged(command) if as_nobody else command)


def test_run_inside_a_running_loop_says_to_call_it_at_the_top_level() -> None:
    """run() under asyncio.run(): one line, exit 2, no traceback or never-awaited warning."""
    result = python([PROGRAMS / "run_in_loop.py"], env={"PYTHONWARNINGS": "always"})
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    (line,) = result.stderr.splitlines()
    assert line.startswith("aiodaemon: ")
    assert "running event loop" in line
    assert "top level" in line


def test_hooks_of_the_default_daemon_beside_an_own_daemon_are_named_before_it_runs() -> None:
    """Daemon().run() beside @aiodaemon.on_startup: a warning naming the hook that will not run.

    The module-level decorators register on the default Daemon; the hook was
    dropped without a word.
    """
    result = python([PROGRAMS / "stray_hooks.py"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == "main ran\nown hook ran\n"
    (line,) = [line for line in result.stderr.splitlines() if line.startswith("aiodaemon: ")]
    assert line == (
        "aiodaemon: warning: hooks that will not run: __main__.announce (on_startup) are"
        " registered on the default Daemon (the module-level decorators, aiodaemon.on_startup"
        " and the like), not the one this program runs; register them with its own"
    )


def test_a_detach_while_a_thread_runs_is_refused_before_anything_is_taken(tmp_path: Path) -> None:
    """run(detach=True) with a thread of the program running: one line naming it, exit 1.

    A fork would copy only the calling thread, leaving whatever locks the
    others held taken for ever in the daemon (docs/lifecycle.md says so).
    """
    pidfile = tmp_path / "d.pid"
    result = python([PROGRAMS / "detach_with_thread.py", pidfile])
    assert result.returncode == 1, result.stderr
    assert result.stdout == ""
    assert result.stderr == "aiodaemon: cannot detach while other threads run (busy)\n"
    assert not pidfile.exists()


def test_a_detach_while_a_native_thread_runs_warns(tmp_path: Path) -> None:
    """A thread Python does not know of (a C library's) cannot be refused: it is warned of.

    The fork leaves it behind, with whatever it held; the line says how many
    and what to do. The start goes on (docs/lifecycle.md).
    """
    pidfile = tmp_path / "d.pid"
    result = python([PROGRAMS / "detach_with_native_thread.py", pidfile])
    assert result.returncode == 0, result.stderr
    assert result.stderr == (
        "aiodaemon: warning: 1 thread Python does not know of runs (a C library's, started"
        " at its import); the detach's fork leaves it behind, and the daemon may hang on a"
        " lock it held: import that library in a startup hook, after the detach\n"
    )


def test_run_from_a_thread_is_refused_before_anything_is_acquired(tmp_path: Path) -> None:
    """run() from a non-main thread: one line, exit 2, no pidfile, no traceback, no return."""
    pidfile = tmp_path / "d.pid"
    result = python([PROGRAMS / "run_in_thread.py", pidfile])
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr == (
        "aiodaemon: run() was called from a thread other than the main thread"
        " ('starter'); call aiodaemon.run(main) from the main thread"
        " (signal handling needs it)\n"
    )
    assert not pidfile.exists()


def test_run_from_a_thread_of_a_running_daemon_raises_there(tmp_path: Path) -> None:
    """run() from a thread while this process runs a daemon: a RuntimeError in that thread.

    Ending the process at once, as outside a daemon, would kill the running
    daemon with no shutdown and leave its pidfile behind.
    """
    pidfile, log = tmp_path / "d.pid", tmp_path / "log.jsonl"
    result = python([PROGRAMS / "run_in_thread_of_daemon.py", pidfile, log])
    assert result.returncode == 1, result.stderr
    assert not pidfile.exists()
    lines = read_json_lines(log)
    (failed,) = [line for line in lines if line["event"] == "main failed"]
    assert "RuntimeError" in json.dumps(failed["exception"])
    assert "run() was called from a thread while this process runs a daemon" in result.stderr
    assert [line["event"] for line in lines][-2:] == ["shutdown finished", "exit"]


def test_cli_and_run_report_a_bad_option_the_same_way() -> None:
    """``aiodaemon: <option>: <message>``: the flag from the CLI, the keyword from run()."""
    from_cli = cli("start", "tests.programs.noop:main", "--umask", "9")
    from_run = python([PROGRAMS / "idle.py", json.dumps({"detach": False, "umask": "9"})])
    assert from_cli.returncode == from_run.returncode == 2
    assert from_cli.stderr == "aiodaemon: --umask: not an octal number: '9'\n"
    assert from_run.stderr == "aiodaemon: umask: not an octal number: '9'\n"


@pytest.mark.parametrize("umask", ["-0", "+022", "-0o0", " 022", "0_22"])
def test_a_signed_or_spaced_umask_is_refused_like_other_bad_umasks(
    tmp_path: Path, umask: str
) -> None:
    """``--umask -0``, ``+022``: not octal numbers; exit 2, one line, nothing started."""
    pidfile = tmp_path / "d.pid"
    from_cli = cli("start", "tests.programs.noop:main", "--pidfile", str(pidfile), "--umask", umask)
    options = {"detach": False, "umask": umask, "pidfile": str(pidfile)}
    from_run = python([PROGRAMS / "idle.py", json.dumps(options)])
    assert from_cli.returncode == from_run.returncode == 2
    assert from_cli.stderr == f"aiodaemon: --umask: not an octal number: {umask!r}\n"
    assert from_run.stderr == f"aiodaemon: umask: not an octal number: {umask!r}\n"
    assert from_cli.stdout == from_run.stdout == ""
    assert not pidfile.exists()


@pytest.mark.parametrize("mode", ["-0", "+660"])
def test_a_signed_socket_mode_is_refused(tmp_path: Path, mode: str) -> None:
    """``--listen h=unix:PATH?mode=+660``: refused as any mode that is no octal number."""
    address = f"unix:{tmp_path / 's'}?mode={mode}"
    result = cli("start", "tests.programs.noop:main", "--listen", f"h={address}")
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("aiodaemon: --listen h: expected ?mode=OCTAL after the path: "), line
    assert not (tmp_path / "s").exists()


def test_chroot_as_non_root_is_refused_early_like_user() -> None:
    """--chroot without root: one line and exit 2 before anything starts, as --user."""
    chroot = cli("run", "tests.programs.noop:main", "--chroot", "/tmp", as_nobody=True)
    user = cli("run", "tests.programs.noop:main", "--user", "root", as_nobody=True)
    assert chroot.returncode == user.returncode == 2, chroot.stderr + user.stderr
    assert chroot.stderr == "aiodaemon: --chroot: changing the root directory needs root\n"
    assert user.stderr == "aiodaemon: --user: changing identity needs root\n"


def test_a_privileged_port_as_non_root_says_what_to_do() -> None:
    """Port 80 without root: the error names the flag (CLI) or key (run()) and the ways out."""
    from_cli = cli(
        "run", "tests.programs.noop:main", "--listen", "http=127.0.0.1:80", as_nobody=True
    )
    options = {"detach": False, "listen": {"http": "127.0.0.1:80"}}
    from_run = run(unprivileged([PYTHON, str(PROGRAMS / "idle.py"), json.dumps(options)]))
    for result, where in ((from_cli, "--listen http"), (from_run, "listen[http]")):
        assert result.returncode == 1, result.stderr
        (line,) = result.stderr.splitlines()
        assert line.startswith(f"aiodaemon: {where}: cannot bind 127.0.0.1:80: Permission denied")
        for way_out in ("privileged", "--user", "socket activation", "CAP_NET_BIND_SERVICE"):
            assert way_out in line


@pytest.mark.parametrize(
    ("flag", "value", "run_status"),
    [("--user", "root", 2), ("--chroot", "/tmp", 2), ("--listen", "http=127.0.0.1:80", 1)],
    ids=["user", "chroot", "port"],
)
def test_start_without_roots_privilege_exits_4_as_lsb_says(
    flag: str, value: str, run_status: int
) -> None:
    """start refused for a privilege only root has: run's line, LSB's 4; run keeps its status."""
    started = cli("start", "tests.programs.noop:main", flag, value, as_nobody=True)
    ran = cli("run", "tests.programs.noop:main", flag, value, as_nobody=True)
    assert (started.returncode, ran.returncode) == (4, run_status), started.stderr
    assert started.stdout == ran.stdout == ""
    assert started.stderr == ran.stderr
    assert len(started.stderr.splitlines()) == 1


def read_only_mount(directory: Path, command: list[str]) -> subprocess.CompletedProcess[str]:
    """Run ``command`` in a mount namespace of its own where ``directory`` is mounted read-only."""
    script = 'mount --bind "$1" "$1" && mount -o remount,ro,bind "$1" && shift && exec "$@"'
    unshare = [require_tool("unshare"), "--mount", "--propagation", "private"]
    return run([*unshare, "sh", "-c", script, "sh", str(directory), *command])


@pytest.mark.root
@pytest.mark.parametrize("command", ["start", "run"])
@pytest.mark.parametrize("flag", ["--pidfile", "--log-file"])
def test_a_read_only_file_system_is_named_as_such(tmp_path: Path, command: str, flag: str) -> None:
    """A file on a read-only mount: "read-only file system", not "not writable"; exit 1."""
    directory = tmp_path / "ro"
    directory.mkdir()
    argv = [PYTHON, "-m", "aiodaemon", command, "tests.programs.noop:main"]
    result = read_only_mount(directory, [*argv, flag, str(directory / "d.out")])
    assert (result.returncode, result.stdout) == (1, ""), result.stderr
    assert result.stderr == (
        f"aiodaemon: {flag}: directory is on a read-only file system: {directory}\n"
    )
    assert list(directory.iterdir()) == []


@pytest.mark.parametrize("target", ["tests.programs.noop:main", "tests.programs.noop"])
def test_syslog_swallowing_target_gets_a_hint(target: str) -> None:
    """``run --syslog pr:main`` (or ``pr``): TARGET missing, and the line says --syslog took it."""
    result = cli("run", "--syslog", target)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"aiodaemon: TARGET required: --syslog took '{target}'")
    assert f"'aiodaemon run {target} --syslog'" in line
    assert "--syslog /dev/log" in line


@pytest.mark.parametrize(
    "target",
    ["udp://localhost", "tcp://unix:/dev/log", "udp://localhost:514?reuseport", "udp://h:"],
)
def test_a_syslog_address_without_its_port_says_what_it_takes(target: str) -> None:
    """--syslog udp://localhost: one line asking for udp://host:port.

    It said "expected host:port, [v6]:port or unix:/path", listen='s forms,
    which do not apply inside udp:// or tcp://.
    """
    result = cli("run", "tests.programs.noop:main", "--syslog", target)
    assert result.returncode == 2
    scheme = target.partition(":")[0]
    assert result.stderr == f"aiodaemon: --syslog: expected {scheme}://host:port, not {target!r}\n"


def test_start_without_pidfile_warns_and_says_how_to_stop_it(tmp_path: Path) -> None:
    """start without --pidfile still starts the daemon and prints ``kill <pid>`` on stderr."""
    result = cli("start", "tests.programs.forever:main", "--log-file", str(tmp_path / "d.jsonl"))
    assert result.returncode == 0, result.stderr
    pid = int(result.stdout)
    try:
        (warning,) = result.stderr.splitlines()
        assert warning.startswith("aiodaemon: warning: started without --pidfile")
        assert warning.endswith(f"kill {pid}")
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_gone(pid)


def test_run_detached_without_pidfile_warns_and_says_how_to_stop_it(tmp_path: Path) -> None:
    """``aiodaemon.run(main)`` detached without pidfile= (or a log) warns as ``start`` does."""
    result = python([PROGRAMS / "idle.py", json.dumps({"detach": True})])
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    pidfile_warning, log_warning = result.stderr.splitlines()
    assert pidfile_warning.startswith(
        "aiodaemon: warning: started without pidfile=, so 'aiodaemon stop' cannot find it;"
    )
    pid = int(pidfile_warning.rpartition("kill ")[2])
    try:
        assert log_warning == (
            "aiodaemon: warning: started without log_file=, syslog= or stderr=, so the"
            " daemon's log (even the error that may end it) goes nowhere"
        )
        assert os.path.exists(f"/proc/{pid}")
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_gone(pid)


def test_run_detached_with_a_pidfile_and_a_log_does_not_warn(tmp_path: Path) -> None:
    """With pidfile= and log_file=, a detached run() prints nothing."""
    pidfile = tmp_path / "d.pid"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(tmp_path / "d.jsonl")}
    result = python([PROGRAMS / "idle.py", json.dumps(options)])
    assert result.returncode == 0, result.stderr
    pid = int(pidfile.read_text())
    try:
        assert (result.stdout, result.stderr) == ("", "")
    finally:
        os.kill(pid, signal.SIGTERM)
    wait_gone(pid)


def test_start_with_a_pidfile_does_not_warn(tmp_path: Path) -> None:
    """With --pidfile (and a log), start prints the pid and nothing on stderr."""
    pidfile, log = str(tmp_path / "d.pid"), str(tmp_path / "d.jsonl")
    result = cli("start", "tests.programs.forever:main", "--pidfile", pidfile, "--log-file", log)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""
    assert cli("stop", "--pidfile", str(pidfile)).returncode == 0


def test_a_coroutine_that_has_run_is_refused_before_anything_is_taken(tmp_path: Path) -> None:
    """run() given again the coroutine object it has awaited: one line, exit 2, no daemon.

    It can never run again: a detached start reported ready (exit 0) for a
    daemon whose main then failed at once.
    """
    pidfile = tmp_path / "d.pid"
    result = python([PROGRAMS / "spent_coroutine.py", pidfile, tmp_path / "first.jsonl"])
    assert result.returncode == 2, result.stderr
    assert result.stdout == "first run ended 0\n"
    assert result.stderr == (
        "aiodaemon: main: the coroutine work() was already awaited or closed and cannot run"
        " again; pass the async function itself\n"
    )
    assert not pidfile.exists()


def test_run_from_a_thread_of_a_cli_daemon_raises_there(tmp_path: Path) -> None:
    """Under ``aiodaemon start`` too: the thread gets a RuntimeError, the daemon goes on.

    Only ``Daemon.run()`` marked its run as under way: the CLI's daemon was
    ended at once (exit 2, no shutdown, its pidfile and control socket left).
    """
    pidfile, log = tmp_path / "d.pid", tmp_path / "log.jsonl"
    target = "tests.programs.cli_run_in_thread:main"
    started = cli("start", target, "--pidfile", str(pidfile), "--log-file", str(log))
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout)
    (refused,) = wait_for(
        lambda: [line for line in read_json_lines(log) if line["event"] == "thread refused"],
        what="the thread's RuntimeError",
    )
    assert refused["error"] == (
        "run() was called from a thread while this process runs a daemon; a process is one daemon"
    )
    status = cli("status", "--pidfile", str(pidfile))
    assert status.returncode == 0, status.stdout
    assert status.stdout.startswith("running"), status.stdout
    stopped = cli("stop", "--pidfile", str(pidfile))
    assert stopped.returncode == 0, stopped.stderr
    assert stopped.stderr == f"aiodaemon: stopped (pid {pid})\n"
    wait_gone(pid)
    events = [line["event"] for line in read_json_lines(log)]
    assert events[-3:] == ["shutdown hook ran", "shutdown finished", "exit"]
    assert not pidfile.exists()
    assert not Path(f"{pidfile}.ctl").exists()
