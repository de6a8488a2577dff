"""The ``stdout`` and ``stderr`` files follow logrotate's rotation, as the log file does.

A detached daemon without a log file logs to its ``stderr`` file: with
logrotate's ``create`` + ``postrotate`` recipe it must move to the new file,
or it writes into the rotated one for ever (and into a deleted file once
logrotate drops it). Real daemons, the real logrotate, real signals; upgrades
are in ``test_upgrade_rotation``.
"""

from __future__ import annotations

import functools
import os
import signal
from collections.abc import Iterator
from pathlib import Path

import pytest

from .support import (
    aiodaemon_cli,
    install_program,
    is_alive,
    kill_quietly,
    open_fds,
    read_json_lines,
    require_tool,
    run_logrotate,
    start_installed,
    wait_for,
    wait_gone,
)

#: logrotate runs; each is checked to leave exactly its round's lines in its file.
ROUNDS = 6


@pytest.fixture
def app(tmp_path: Path) -> Iterator[Path]:
    """``tests/programs/output_rotation.py`` as app.py; stopped at the end if still running."""
    install_program("output_rotation", tmp_path)
    yield tmp_path
    aiodaemon_cli("stop", "--pidfile", tmp_path / "app.pid", "--timeout", "10", cwd=tmp_path)


def _held(pid: int, app: Path) -> list[str]:
    """The files under ``app`` that ``pid`` holds open, one entry per descriptor, sorted."""
    return sorted(path for path in open_fds(pid).values() if path.startswith(str(app)))


def numbered(path: Path) -> list[object]:
    """The numbers of the ``numbered`` records in ``path``."""
    return [r["n"] for r in read_json_lines(path) if r["event"] == "numbered"]


def test_logrotate_moves_stdout_and_stderr_to_the_new_files(app: Path) -> None:
    """Each rotation moves fds 1 and 2 to the new files: every round's lines are in its own file."""
    out, err = app / "out.log", app / "err.log"
    pid = start_installed(app, "--stdout", out, "--stderr", err)
    config = app / "logrotate.conf"
    config.write_text(
        f"{out} {err} {{\n    rotate {ROUNDS + 1}\n    create 0640\n"
        f"    postrotate\n        {require_tool('pkill')} -USR1 -L -F {app / 'app.pid'}\n"
        "    endscript\n}\n"
    )
    in_use = sorted([str(app / "app.pid"), str(err), str(out)])
    for n in range(1, ROUNDS + 1):
        reloaded = aiodaemon_cli("reload", "--pidfile", app / "app.pid", cwd=app)
        assert reloaded.returncode == 0, reloaded.stderr
        # Written by the log writer's thread: in the file a moment after the reload's answer.
        assert wait_for(lambda: numbered(err), 30, f"the record in {err}") == [n]
        run_logrotate(config, app / "logrotate.state")
        wait_for(
            lambda: (fds := open_fds(pid)).get(1) == str(out) and fds.get(2) == str(err),
            30,
            "stdout and stderr on the new files",
        )
        # Every rotated file was closed: none is held, however many rotations.
        # The writer thread closes the new file's own descriptor just after its
        # dup2 onto fd 1 or 2: for that moment the file is held twice.
        wait_for(lambda: _held(pid, app) == in_use, 30, "only the files in use held")
    assert aiodaemon_cli("stop", "--pidfile", app / "app.pid", cwd=app).returncode == 0
    wait_gone(pid)

    for k in range(1, ROUNDS + 1):
        n = ROUNDS + 1 - k  # .1 is the last round's file
        assert out.with_name(f"out.log.{k}").read_text() == f"print {n}\n"
        assert numbered(err.with_name(f"err.log.{k}")) == [n]
    assert out.read_text() == ""
    events = [r["event"] for r in read_json_lines(err)]
    assert "shutdown finished" in events
    assert "numbered" not in events


def test_a_refused_new_stderr_file_keeps_the_old_one_and_says_so(app: Path) -> None:
    """A symlink planted where the rotated stderr file was is refused; the old file says why."""
    err, rotated, target = app / "err.log", app / "err.log.1", app / "elsewhere"
    pid = start_installed(app, "--stderr", err)
    os.rename(err, rotated)
    err.symlink_to(target)
    os.kill(pid, signal.SIGUSR1)
    refused = wait_for(
        lambda: [
            r
            for r in read_json_lines(rotated)
            if r["event"] == "cannot reopen output file, keeping the old one"
        ],
        30,
        "the refusal in the old file",
    )
    assert "symlink" in str(refused[0]["error"])
    assert open_fds(pid)[2] == str(rotated)
    assert not target.exists()
    # Once the path is a proper file again, the next rotation signal moves there.
    err.unlink()
    os.kill(pid, signal.SIGUSR1)
    wait_for(lambda: open_fds(pid).get(2) == str(err), 30, "stderr on the new file")


def numbered_record(path: Path, n: int) -> dict[str, object] | None:
    """The ``numbered`` record of reload ``n`` in ``path``, None before it is there."""
    found = [r for r in read_json_lines(path) if r["event"] == "numbered" and r["n"] == n]
    return found[0] if found else None


def test_a_reload_hook_started_by_the_rotations_sighup_writes_to_the_new_files(
    tmp_path: Path,
) -> None:
    """A hook of the reload a rotation's SIGHUP begins prints, and starts helpers, on the new files.

    The daemon is busy logging when the signal comes: the log writer, which
    moves fds 1 and 2, still has records to write when the reload begins. A
    hook that ran before the move printed into the rotated file, and a helper
    it started inherited that file for good (and kept it on disk once deleted).
    """
    install_program("busy_reload_child", tmp_path)
    log, out, err = tmp_path / "app.jsonl", tmp_path / "out.log", tmp_path / "err.log"
    pid = start_installed(tmp_path, "--log-file", log, "--stdout", out, "--stderr", err)
    helpers = []
    try:
        for n in (1, 2):
            # logrotate's create, without its postrotate: the daemon sends itself the SIGHUP.
            for path in (log, out, err):
                os.rename(path, path.with_name(f"{path.name}.{n}"))
                path.touch()
            os.kill(pid, signal.SIGWINCH)
            record = wait_for(
                functools.partial(numbered_record, log, n), 30, f"reload {n} in the new log"
            )
            assert out.read_text() == f"print {n}\n"
            helper = int(str(record["helper"]))
            helpers.append(helper)
            fds = open_fds(helper)
            assert (fds[1], fds[2]) == (str(out), str(err))
    finally:
        stopped = aiodaemon_cli(
            "stop", "--pidfile", tmp_path / "app.pid", "--timeout", "10", cwd=tmp_path
        )
        wait_gone(pid)
        # Its shutdown hook ends them: none may outlive the daemon.
        left = [helper for helper in helpers if is_alive(helper)]
        for helper in left:
            kill_quietly(helper)
    assert stopped.returncode == 0, stopped.stderr
    assert left == []
    assert not [line for line in read_json_lines(log) if line["event"] == "shutdown hook failed"]


@pytest.mark.parametrize("rotated", [False, True])
def test_a_reload_leaves_the_programs_own_files_on_fds_1_and_2(
    tmp_path: Path, rotated: bool
) -> None:
    """A program that put its data files on fds 1 and 2 keeps them at a reload, said once."""
    install_program("own_stdio_files", tmp_path)
    out, err, log = tmp_path / "out.log", tmp_path / "err.log", tmp_path / "app.log"
    pid = start_installed(
        tmp_path, "--workdir", tmp_path, "--stdout", out, "--stderr", err, "--log-file", log
    )
    try:
        wait_for(
            lambda: any(r["event"] == "data files" for r in read_json_lines(log)), 30, "data files"
        )
        if rotated:
            out.rename(tmp_path / "out.log.1")
            err.rename(tmp_path / "err.log.1")
        for _ in range(2):
            reloaded = aiodaemon_cli("reload", "--pidfile", tmp_path / "app.pid", cwd=tmp_path)
            assert reloaded.returncode == 0, reloaded.stderr
        stopped = aiodaemon_cli("stop", "--pidfile", tmp_path / "app.pid", cwd=tmp_path)
        assert stopped.returncode == 0, stopped.stderr
    finally:
        kill_quietly(pid)
    wait_gone(pid)
    for n in range(3):
        assert (tmp_path / f"data{n}.txt").read_text() == f"user data {n}\n"
    for path in tmp_path.glob("*.log*"):
        assert "user data" not in path.read_text(), path
    told = [r for r in read_json_lines(log) if r["event"] == "output file replaced, left alone"]
    assert sorted((r["file"], r["fd"]) for r in told) == [
        (f"stderr {err}", 2),
        (f"stdout {out}", 1),
    ]
