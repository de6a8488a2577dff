"""What the caller of a detached ``DaemonContext.open()`` says and exits with.

python-daemon's caller exits 0 at once, whatever its daemon does next;
aiodaemon's waits until the daemon's ``open()`` has finished and exits with
its result. A program that ends itself there (its pidfile's ``__enter__``
finding another instance: "nothing to do") ends the caller as the interpreter
would end the program.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import program, python, read_pid, wait_gone


@pytest.mark.parametrize(
    ("how", "status", "said"),
    [
        ("none", 0, ""),
        ("0", 0, ""),
        ("3", 3, ""),
        ("text", 1, "aiodaemon: another instance runs\n"),
        ("hard", 0, ""),
    ],
)
def test_an_exit_in_open_ends_the_caller_as_python_would(
    tmp_path: Path, how: str, status: int, said: str
) -> None:
    """``sys.exit()``/``sys.exit(0)``/``os._exit(0)``: 0 and quiet; ``sys.exit(3)``: 3;
    ``sys.exit("text")``: 1 and the text; no daemon is left running."""
    result = python([program("pep3143_quiet_exit"), how, tmp_path])
    assert (result.returncode, result.stderr) == (status, said)
    wait_gone(read_pid(tmp_path / "entered"))
    assert not (tmp_path / "opened").exists()
