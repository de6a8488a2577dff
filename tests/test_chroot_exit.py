"""A daemon in a chroot ends with its own exit status, not glibc's abort.

glibc loads libgcc_s the first time a thread unwinds (``pthread_exit``, which
CPython calls for a thread still running at the interpreter's exit); inside an
empty jail that load fails and glibc aborts the process: exit 134 and
"libgcc_s.so.1 must be installed for pthread_exit to work" on stderr.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path

import pytest

from .support import (
    PYTHON,
    aiodaemon_cli,
    kill_quietly,
    read_json_lines,
    read_pid,
    run_on_terminal,
    wait_for,
    wait_gone,
)

pytestmark = pytest.mark.root


@pytest.mark.parametrize(
    ("target", "status"),
    [("tests.programs.noop:main", 0), ("tests.programs.cli_fail_app:main", 1)],
    ids=["main returns", "startup hook raises"],
)
@pytest.mark.parametrize("user", [[], ["--user", "nobody"]], ids=["root", "nobody"])
def test_foreground_daemon_in_an_empty_jail_exits_with_its_status(
    jail_base: Path, target: str, status: int, user: list[str]
) -> None:
    """``aiodaemon run ... --chroot JAIL``: the daemon's exit status, no glibc abort on stderr."""
    result = aiodaemon_cli("run", target, "--chroot", jail_base / "jail", *user)
    assert result.returncode == status, result.stderr
    assert "libgcc_s" not in result.stderr
    assert "pthread" not in result.stderr


def test_modules_loaded_only_for_some_options_are_loaded_before_the_chroot(jail_base: Path) -> None:
    """asyncio's loop (``--no-uvloop``) and a ``--stderr`` file's reopener load lazily.

    Lazily, but before the chroot: inside the empty jail an import would fail.
    """
    stderr = jail_base / "stderr.txt"
    result = aiodaemon_cli(
        "run", "tests.programs.noop:main", "--chroot", jail_base / "jail", "--no-uvloop",
        "--stderr", stderr, "--log-file", jail_base / "d.jsonl",
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    records = read_json_lines(jail_base / "d.jsonl")
    assert records[0]["event"] == "starting"
    assert records[0]["loop"] == "asyncio"
    assert [r["event"] for r in records if r["level"] in ("error", "critical")] == []


def test_a_foreground_daemon_on_a_terminal_logging_to_a_file_runs_in_the_jail(
    jail_base: Path,
) -> None:
    """Its warnings echoed to the terminal: the echo's module is loaded before the chroot.

    It was imported after it, from the empty jail: ModuleNotFoundError, exit 1.
    """
    output, status = run_on_terminal(
        [PYTHON, "-m", "aiodaemon", "run", "tests.programs.noop:main",
         "--chroot", jail_base / "jail", "--log-file", jail_base / "d.jsonl"]
    )  # fmt: skip
    assert status == 0, output
    assert "ModuleNotFoundError" not in output
    assert read_json_lines(jail_base / "d.jsonl")[0]["event"] == "starting"


@pytest.mark.parametrize("user", [[], ["--user", "nobody"]], ids=["root", "nobody"])
def test_a_non_ascii_host_name_encodes_in_the_jail(jail_base: Path, user: list[str]) -> None:
    """The idna codec's ``punycode`` lookup is loaded before the chroot.

    It was looked up in the empty jail: ``LookupError: unknown encoding: punycode``
    from the program's ``getaddrinfo`` on any non-ASCII host name.
    """
    result = aiodaemon_cli(
        "run", "tests.programs.jail_idna:main", "--chroot", jail_base / "jail", *user
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert result.stdout == "xn--bcher-kva.example\n"


def test_detached_daemon_in_an_empty_jail_stops_without_an_abort(jail_base: Path) -> None:
    """A detached chrooted daemon stopped by ``aiodaemon stop``: no glibc abort in its stderr."""
    pidfile, stderr, log = jail_base / "d.pid", jail_base / "stderr.txt", jail_base / "d.jsonl"
    started = aiodaemon_cli(
        "start",
        "tests.programs.forever:main",
        "--chroot",
        jail_base / "jail",
        "--pidfile",
        pidfile,
        "--stderr",
        stderr,
        "--log-file",
        log,
    )
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    try:
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
        assert stopped.returncode == 0, stopped.stderr
        wait_gone(pid)
    finally:
        kill_quietly(pid)
    assert read_json_lines(log)[-1]["event"] == "exit"
    assert "libgcc_s" not in stderr.read_text()


def test_files_named_through_a_symlink_follow_a_rotation_in_the_jail(jail_base: Path) -> None:
    """The log and stderr files, in the jail but named through a symlinked directory, reopen.

    Where they are inside the jail was worked out after the chroot, where the
    host's symlink does not exist: they were taken for files outside the jail
    ('cannot reopen log file ... outside the chroot') and never rotated.
    """
    jail, link = jail_base / "jail", jail_base / "link"
    link.symlink_to(jail_base)
    pidfile, log, err = jail_base / "d.pid", jail / "d.jsonl", jail / "err.log"
    started = aiodaemon_cli(
        "start", "tests.programs.forever:main", "--chroot", jail, "--pidfile", pidfile,
        "--log-file", link / "jail" / "d.jsonl", "--stderr", link / "jail" / "err.log",
    )  # fmt: skip
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    try:
        log.rename(jail / "d.jsonl.1")
        err.rename(jail / "err.log.1")
        os.kill(pid, signal.SIGUSR1)
        wait_for(lambda: log.exists() and err.exists(), what="the log and stderr files reopened")
    finally:
        kill_quietly(pid, signal.SIGTERM)
    wait_gone(pid)
    assert [r["event"] for r in read_json_lines(log)][-1] == "exit"
    events = [r["event"] for r in read_json_lines(jail / "d.jsonl.1")]
    assert "cannot reopen log file, keeping the old one" not in events
