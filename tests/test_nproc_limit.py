"""A fork or thread refused under RLIMIT_NPROC names the limit, as RLIMIT_NOFILE is named."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

import pytest

from .security_support import NOBODY, shared_python_as
from .support import install_program

#: Runs the CLI with a soft and hard RLIMIT_NPROC of 1: the account's every task counts.
_LIMITED_CLI = (
    "import resource, runpy, sys;"
    "resource.setrlimit(resource.RLIMIT_NPROC, (1, 1));"
    "sys.argv = ['aiodaemon', *sys.argv[1:]];"
    "runpy.run_module('aiodaemon', run_name='__main__')"
)


@pytest.mark.root
@pytest.mark.parametrize(
    ("command", "refused"),
    [("start", "cannot fork the daemon: "), ("run", "cannot start the log writer thread: ")],
)
def test_a_fork_or_thread_refused_by_rlimit_nproc_names_it(command: str, refused: str) -> None:
    """As nobody with RLIMIT_NPROC 1: start and run fail in one line naming RLIMIT_NPROC 1."""
    if os.geteuid() != 0:
        pytest.fail("this test needs root: run the suite as root (as .ci/run does)")
    base = Path(tempfile.mkdtemp(prefix="aiodaemon-nproc-"))
    try:
        base.chmod(0o755)
        install_program("forever", base)
        os.chown(base, NOBODY.uid, NOBODY.gid)
        result = shared_python_as(
            NOBODY, "-c", _LIMITED_CLI, command, "app:main", "--pidfile", base / "app.pid",
            "--log-file", base / "app.jsonl", cwd=base,
        )  # fmt: skip
        assert result.returncode == 1, result.stderr
        line = result.stderr.splitlines()[-1]
        assert refused in line, result.stderr
        assert f"(RLIMIT_NPROC 1 reached: uid {NOBODY.uid} has " in line
        assert "Traceback" not in result.stderr
        assert not (base / "app.pid").exists()
    finally:
        shutil.rmtree(base, ignore_errors=True)
