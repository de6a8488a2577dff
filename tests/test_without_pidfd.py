"""Where the kernel has no ``pidfd_open`` (Linux before 5.3, a strict seccomp profile).

Every signal aiodaemon sends to a process it did not start goes through a
pidfd; without one, a command must fail in one line, never signal by number,
and never end in a traceback (``OSError: [Errno 38] Function not implemented``).
"""

from __future__ import annotations

from pathlib import Path

from tests.support import (
    AIODAEMON,
    PYTHON,
    aiodaemon_cli,
    children,
    install_program,
    is_alive,
    program,
    python,
    read_pid,
)

#: pidfd_open's number: the same on every architecture (calls from 424 on share one table).
PIDFD_OPEN = "434"
ENOSYS = "Function not implemented"
NO_PIDFD = "(pidfd_open: Linux 5.3 or later, and a seccomp profile that allows it)"


def without_pidfd(*args: str | Path, cwd: Path) -> tuple[int, str, str]:
    """Run ``aiodaemon ARGS`` where pidfd_open fails with ENOSYS; (status, stdout, stderr)."""
    ran = python([program("without_syscall"), PIDFD_OPEN, AIODAEMON, *args], cwd=cwd)
    return ran.returncode, ran.stdout, ran.stderr


def test_stop_and_reload_fail_in_one_line_and_leave_the_daemon_running(tmp_path: Path) -> None:
    install_program("cli_app", tmp_path)
    pidfile = tmp_path / "d.pid"
    started = aiodaemon_cli("start", "app:main", "--pidfile", pidfile, cwd=tmp_path)
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    try:
        for command in ("stop", "reload"):
            code, out, err = without_pidfd(command, "--pidfile", pidfile, cwd=tmp_path)
            assert (code, out) == (1, ""), err
            assert err == f"aiodaemon: cannot watch pid {pid}: {ENOSYS} {NO_PIDFD}\n"
            assert is_alive(pid)
        # status never signals: it answers as anywhere.
        code, out, err = without_pidfd("status", "--pidfile", pidfile, cwd=tmp_path)
        assert code == 0, err
        assert out.startswith(f"running (pid {pid}, ")
    finally:
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
    assert stopped.returncode == 0, stopped.stderr
    assert not is_alive(pid)


def test_a_failed_start_says_the_daemon_s_own_error(tmp_path: Path) -> None:
    """The launcher waits for the failed daemon's exit by number: no extra line."""
    install_program("cli_fail_app", tmp_path, "failapp.py")
    pidfile = tmp_path / "d.pid"
    code, _, err = without_pidfd("start", "failapp:main", "--pidfile", pidfile, cwd=tmp_path)
    assert code == 1
    assert (
        err
        == "aiodaemon: startup hook failapp.broken failed: RuntimeError: the database is on fire\n"
    )
    assert not pidfile.exists()


def test_a_failed_start_counts_its_exited_unreaped_daemon_as_gone(tmp_path: Path) -> None:
    """Orphaned, the exited daemon waits for a slow init to reap it: it is gone, no warning.

    Counted alive by number while a zombie, it made the start add "cannot
    watch pid N ...; it may still run" after 2 s (CI, under load).
    """
    install_program("cli_fail_app", tmp_path, "failapp.py")
    pidfile = tmp_path / "d.pid"
    argv: list[str | Path] = [program("slow_reaper"), PYTHON, program("without_syscall")]
    argv += [PIDFD_OPEN, AIODAEMON]
    ran = python([*argv, "start", "failapp:main", "--pidfile", pidfile], cwd=tmp_path)
    assert ran.returncode == 1
    assert (
        ran.stderr
        == "aiodaemon: startup hook failapp.broken failed: RuntimeError: the database is on fire\n"
    )


def test_an_upgrade_fails_in_one_line_and_the_daemon_serves_on(tmp_path: Path) -> None:
    """The old daemon cannot watch its new process: it kills it and serves on."""
    install_program("cli_app", tmp_path)
    pidfile = tmp_path / "d.pid"
    code, _, err = without_pidfd("start", "app:main", "--pidfile", pidfile, cwd=tmp_path)
    assert code == 0, err
    pid = read_pid(pidfile)
    try:
        upgraded = aiodaemon_cli("upgrade", "--pidfile", pidfile, cwd=tmp_path)
        assert upgraded.returncode == 1
        assert upgraded.stderr.startswith("aiodaemon: upgrade failed: cannot watch pid ")
        assert upgraded.stderr.endswith(f": {ENOSYS} {NO_PIDFD}\n")
        assert children(pid) == []
        status = aiodaemon_cli("status", "--pidfile", pidfile)
        assert status.stdout.startswith(f"running (pid {pid}, ")
    finally:
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
    assert stopped.returncode == 0, stopped.stderr
