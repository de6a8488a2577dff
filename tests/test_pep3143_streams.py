"""The daemon's ``sys.stdin``, ``sys.stdout`` and ``sys.stderr`` behave as python-daemon's.

aiodaemon.pep3143 gives the daemon new line-buffered text streams on fds 1
and 2 (docs/migrating.md); they must keep the encoding and error handler
Python chose for the old ones, or a daemon printing a file name that is not
UTF-8 dies where it ran under python-daemon. ``stdin=sys.stdin`` keeps the
object itself, and the input it has read ahead.
"""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from .support import PYTHON, REPO, clean_env, kill_quietly, read_pid, wait_gone

PROGRAM = REPO / "tests" / "programs" / "pep3143_streams.py"
MODULES = ("daemon", "aiodaemon.pep3143")


def run_streams(module: str, directory: Path, env: dict[str, str]) -> bytes:
    """Run the program with ``module``; the bytes its daemon wrote to out.log."""
    directory.mkdir()
    environment = clean_env()
    for name in ("LANG", "LC_ALL", "LC_CTYPE", "PYTHONIOENCODING", "PYTHONUTF8"):
        environment.pop(name, None)
    environment.update(env)
    launcher = subprocess.run(
        [PYTHON, str(PROGRAM), module, str(directory)],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=environment,
        timeout=30,
        check=False,
    )
    assert launcher.returncode == 0, launcher.stderr
    wait_gone(read_pid(directory / "done"))
    return (directory / "out.log").read_bytes()


@pytest.mark.parametrize(
    ("env", "found"),
    [
        # The C locale (systemd's, cron's): surrogateescape gives the name's own bytes.
        ({"LC_ALL": "C"}, b"found caf\xe9.txt"),
        (
            {"LC_ALL": "C.UTF-8", "PYTHONIOENCODING": "latin-1:backslashreplace"},
            b"found caf\\udce9.txt",
        ),
    ],
    ids=["c-locale", "pythonioencoding"],
)
def test_streams_keep_pythons_encoding(tmp_path: Path, env: dict[str, str], found: bytes) -> None:
    """A file name that is not UTF-8 prints as with python-daemon; PYTHONIOENCODING is honoured."""
    theirs, ours = (run_streams(module, tmp_path / module, env) for module in MODULES)
    # Line by line: ours are line-buffered, python-daemon's stdout is not (documented).
    assert sorted(ours.splitlines()) == sorted(theirs.splitlines())
    assert found in ours.splitlines()
    assert b"Traceback" not in ours


@pytest.mark.parametrize("module", MODULES)
def test_unbuffered_python_writes_through(tmp_path: Path, module: str) -> None:
    """Under ``python -u`` a partial line reaches the stdout file at once, as with python-daemon."""
    launcher = subprocess.run(
        [
            PYTHON,
            "-u",
            str(REPO / "tests" / "programs" / "pep3143_unbuffered.py"),
            module,
            tmp_path,
        ],
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        env=clean_env(),
        timeout=30,
        check=False,
    )
    assert launcher.returncode == 0, launcher.stderr
    pid = read_pid(tmp_path / "ready")
    try:
        assert (tmp_path / "out.log").read_text() == "progress: "
    finally:
        kill_quietly(pid, signal.SIGTERM)
    wait_gone(pid)


@pytest.mark.parametrize("source", ["pipe", "file"])
@pytest.mark.parametrize("detach", ["no", "yes"])
def test_input_read_before_open_is_kept(tmp_path: Path, detach: str, source: str) -> None:
    """``stdin=sys.stdin``: input buffered before ``open()`` is read after it, as python-daemon."""
    text = "one\ntwo\nthree\n"
    seen = {}
    for module in MODULES:
        directory = tmp_path / module
        directory.mkdir()
        (directory / "input").write_text(text)
        with open(directory / "input") as file:
            launcher = subprocess.run(
                [
                    PYTHON,
                    str(REPO / "tests" / "programs" / "pep3143_stdin.py"),
                    module,
                    directory,
                    detach,
                ],
                input=text if source == "pipe" else None,
                stdin=None if source == "pipe" else file,
                capture_output=True,
                text=True,
                env=clean_env(),
                timeout=30,
                check=False,
            )
        assert launcher.returncode == 0, launcher.stderr
        wait_gone(read_pid(directory / "done"))
        seen[module] = (directory / "lines").read_text()
    assert seen["aiodaemon.pep3143"] == seen["daemon"]
    assert seen["daemon"] == (
        "before open: 'one\\n'\nafter open: 'two\\n'\nafter open: 'three\\n'\nend of input\n"
    )
