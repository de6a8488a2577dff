"""Ctrl-C while the ``aiodaemon`` command parses its arguments: exit 130, no traceback.

Before the command is known there is nothing to say about a daemon (nothing
was started, signalled or asked); the interrupt ended the command, and
printed argparse's frames with ``KeyboardInterrupt``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .support import AIODAEMON, REPO, clean_env

HOOK = REPO / "tests" / "programs" / "sigint_while_parsing"


@pytest.mark.parametrize(
    "args", [["status", "--pidfile", "x.pid"], ["start", "app:main"], ["--help"]]
)
def test_sigint_while_parsing_the_arguments_exits_130_without_a_traceback(
    tmp_path: Path, args: list[str]
) -> None:
    """SIGINT during argument parsing: status 130, nothing on stdout or stderr."""
    result = subprocess.run(
        [str(AIODAEMON), *args],
        cwd=tmp_path,
        env=clean_env({"PYTHONPATH": os.pathsep.join([str(HOOK), str(REPO)])}),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert (result.returncode, result.stdout, result.stderr) == (130, "", "")
