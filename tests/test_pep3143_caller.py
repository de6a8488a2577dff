"""What the caller of a detached ``DaemonContext.open()`` says and exits with.

python-daemon's caller exits 0 at once, whatever its daemon does next;
aiodaemon's waits until the daemon's ``open()`` has finished and exits with
its result. A program that ends itself there (its pidfile's ``__enter__``
finding another instance: "nothing to do") ends the caller as the interpreter
would end the program, and a pidfile whose acquire waits for its holder is
named on the caller's stderr rather than hanging it without a word.
"""

from __future__ import annotations

import os
import select
import subprocess
from pathlib import Path

import lockfile
import pytest

from .support import PYTHON, clean_env, program, python, read_pid, wait_gone


@pytest.mark.parametrize(
    ("how", "status", "said"),
    [
        ("none", 0, ""),
        ("0", 0, ""),
        ("3", 3, ""),
        ("text", 1, "aiodaemon: another instance runs\n"),
        ("hard", 0, ""),
        ("interrupt", 130, "aiodaemon: interrupted (KeyboardInterrupt) before open() returned\n"),
    ],
)
def test_an_exit_in_open_ends_the_caller_as_python_would(
    tmp_path: Path, how: str, status: int, said: str
) -> None:
    """``sys.exit()``/``sys.exit(0)``/``os._exit(0)``: 0 and quiet; ``sys.exit(3)``: 3;
    ``sys.exit("text")``: 1 and the text; a SIGINT's ``KeyboardInterrupt``: 130 and
    one line saying so; no daemon is left running."""
    result = python([program("pep3143_quiet_exit"), how, tmp_path])
    assert (result.returncode, result.stderr) == (status, said)
    wait_gone(read_pid(tmp_path / "entered"))
    assert not (tmp_path / "opened").exists()


def test_a_pidfile_waiting_for_its_holder_is_named_on_the_callers_stderr(
    tmp_path: Path,
) -> None:
    """lockfile's ``FileLock`` held elsewhere: the waiting caller says what it waits for,
    and ends with 0 once the lock is free and the daemon opened."""
    path = tmp_path / "spam.pid"
    held = lockfile.FileLock(str(path))
    held.acquire()
    with subprocess.Popen(
        [PYTHON, str(program("pep3143_filelock")), str(path), str(tmp_path)],
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
        env=clean_env(),
    ) as caller:
        assert caller.stderr is not None
        try:
            readable, _, _ = select.select([caller.stderr], [], [], 20.0)
            assert readable, "nothing on the caller's stderr"
            assert caller.stderr.readline() == (
                f"aiodaemon: still waiting for the pidfile's lock (LinkLockFile {path}):"
                " another process holds it? The start ends once open() has it (give the"
                " pidfile a timeout to fail instead)\n"
            )
            # The caller still waits (aiodaemon's design: until open() has finished).
            assert caller.poll() is None
            assert not (tmp_path / "opened").exists()
        finally:
            held.release()
        assert caller.wait(timeout=30) == 0
        assert caller.stderr.read() == ""
    daemon = read_pid(tmp_path / "opened")
    assert daemon != os.getpid()
    wait_gone(daemon)
