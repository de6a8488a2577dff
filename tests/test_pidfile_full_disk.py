"""A full file system: a pidfile that cannot be written fails the start, a log file is warned of.

So are the ``stdout`` and ``stderr`` files: detached with neither ``log_file`` nor
``syslog``, the records go to the ``stderr`` file.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
from pathlib import Path

import pytest

from .support import PYTHON, aiodaemon_cli, clean_env, install_program, program, python, wait_gone
from .test_logging_faults import fill, tiny_disk

__all__ = ["tiny_disk"]  # the fixture, used by name below


@pytest.mark.root
def test_a_pidfile_that_cannot_be_written_names_itself(tmp_path: Path, tiny_disk: Path) -> None:
    """ENOSPC writing the pid: `pidfile: cannot write pidfile PATH: No space left on device`."""
    fill(tiny_disk / "filler")
    pidfile = tiny_disk / "d.pid"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(tmp_path / "log")}
    result = python([program("idle"), json.dumps(options)])
    assert result.returncode == 1
    assert result.stderr == (
        f"aiodaemon: cannot write pidfile {pidfile}: No space left on device\n"
    )
    assert not pidfile.exists()


@pytest.mark.root
def test_the_cli_names_the_flag_of_a_pidfile_that_cannot_be_written(
    tmp_path: Path, tiny_disk: Path
) -> None:
    """Written by the daemon after the fork, yet worded as the CLI's errors: `--pidfile: ...`."""
    fill(tiny_disk / "filler")
    pidfile = tiny_disk / "d.pid"
    install_program("cli_app", tmp_path)
    result = aiodaemon_cli(
        "start", "app:main", "--pidfile", pidfile, "--log-file", tmp_path / "log", cwd=tmp_path
    )
    assert (result.returncode, result.stdout) == (1, "")
    assert result.stderr == (
        f"aiodaemon: --pidfile: cannot write {pidfile}: No space left on device\n"
    )
    assert not pidfile.exists()


def test_a_pid_cut_short_by_the_file_size_limit_fails_the_start(tmp_path: Path) -> None:
    """RLIMIT_FSIZE of 1 byte: the start fails, and no pidfile names a part of the pid.

    The short write returned no error: the daemon ran with its pidfile naming
    another pid (``243`` for 24306), so ``status`` said unknown and ``stop``
    refused it; a failed start left that fragment behind.
    """
    pidfile = tmp_path / "d.pid"
    options = {"detach": True, "pidfile": str(pidfile)}

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1, resource.RLIM_INFINITY))

    result = subprocess.run(
        [PYTHON, str(program("idle")), json.dumps(options)],
        # Modules first imported under the limit would leave cut .pyc files behind.
        env=clean_env({"PYTHONDONTWRITEBYTECODE": "1"}),
        preexec_fn=limit_file_size,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 1
    assert result.stderr == f"aiodaemon: cannot write pidfile {pidfile}: File too large\n"
    assert sorted(tmp_path.iterdir()) == []


def test_a_log_file_at_the_file_size_limit_is_warned_about(tmp_path: Path) -> None:
    """A log already as large as RLIMIT_FSIZE: the start goes on, and says its records are lost."""
    log, pidfile = tmp_path / "app.log", tmp_path / "d.pid"
    log.write_bytes(b"x" * 4096)
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(log)}

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (4096, resource.RLIM_INFINITY))

    started = subprocess.run(
        [PYTHON, str(program("idle")), json.dumps(options)],
        env=clean_env({"PYTHONDONTWRITEBYTECODE": "1"}),
        preexec_fn=limit_file_size,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    lost = "it has reached the file-size limit (4096 bytes, ulimit -f)"
    _stop_warned(
        started, pidfile, [f"log_file {log}: {lost}; records are lost until it is rotated"]
    )
    assert log.stat().st_size == 4096


def _start_warned(
    options: dict[str, str], pidfile: Path, warnings: list[str], cli_warnings: list[str]
) -> None:
    """Start a daemon with ``options``, through run() then the CLI: each starts, and warns.

    ``run()`` says ``warnings`` on stderr, ``aiodaemon start`` ``cli_warnings``.
    """
    started = python([program("idle"), json.dumps({"detach": True, **options})])
    _stop_warned(started, pidfile, warnings)
    args: list[str] = []
    for option, value in options.items():
        args += [f"--{option.replace('_', '-')}", value]
    directory = pidfile.parent
    install_program("cli_app", directory)
    started = aiodaemon_cli("start", "app:main", *args, cwd=directory)
    assert started.stdout.strip().isdigit(), started.stdout
    _stop_warned(started, pidfile, cli_warnings)


def _stop_warned(
    started: subprocess.CompletedProcess[str], pidfile: Path, warnings: list[str]
) -> None:
    """Check that the start succeeded saying ``warnings`` only, then stop its daemon."""
    assert started.returncode == 0, started.stderr
    try:
        assert started.stderr.splitlines() == [f"aiodaemon: warning: {w}" for w in warnings]
    finally:
        pid = int(pidfile.read_text())
        os.kill(pid, signal.SIGTERM)
        wait_gone(pid)


@pytest.mark.root
def test_a_log_file_on_a_full_file_system_is_warned_about(tmp_path: Path, tiny_disk: Path) -> None:
    """The start goes on (the disk may free up), but the terminal is told the records are lost."""
    log = tiny_disk / "app.log"
    log.touch()
    fill(tiny_disk / "filler")
    pidfile = tmp_path / "d.pid"
    options = {"pidfile": str(pidfile), "log_file": str(log)}
    lost = "its file system is full; records are lost until space is freed"
    _start_warned(options, pidfile, [f"log_file {log}: {lost}"], [f"--log-file: {log}: {lost}"])


@pytest.mark.root
@pytest.mark.parametrize("option", ["stderr", "stdout"])
def test_a_stdio_file_on_a_full_file_system_is_warned_about(
    tmp_path: Path, tiny_disk: Path, option: str
) -> None:
    """`--stderr` on a full disk (no log file: the records go there) is warned of as a log is."""
    output = tiny_disk / f"app.{option}"
    output.touch()
    fill(tiny_disk / "filler")
    pidfile = tmp_path / "d.pid"
    options = {"pidfile": str(pidfile), option: str(output)}
    lost = "its file system is full; output is lost until space is freed"
    warnings, cli_warnings = [f"{option} {output}: {lost}"], [f"--{option}: {output}: {lost}"]
    if option == "stdout":  # the records go nowhere: both say so once the daemon is ready
        nowhere = "so the daemon's log (even the error that may end it) goes nowhere"
        warnings.append(f"started without log_file=, syslog= or stderr=, {nowhere}")
        cli_warnings.append(f"started without --log-file, --syslog or --stderr, {nowhere}")
    _start_warned(options, pidfile, warnings, cli_warnings)
