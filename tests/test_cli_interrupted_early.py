"""Ctrl-C while the ``aiodaemon`` command loads or parses its arguments: exit 130, no traceback.

Before the command is known there is nothing to say about a daemon (nothing
was started, signalled or asked); the interrupt ended the command, and
printed argparse's or importlib's frames with ``KeyboardInterrupt``.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from .support import AIODAEMON, REPO, aiodaemon_cli, clean_env

HOOK = REPO / "tests" / "programs" / "sigint_while_parsing"
LOADING_HOOK = REPO / "tests" / "programs" / "sigint_while_loading"


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


#: Where the hook interrupts: the first module the command loads, one in the
#: middle, one of the last; then once the command has ended, as the interpreter exits.
WHILE_LOADING = ["aiodaemon._prefork._stdfds", "argparse", "aiodaemon._cli._parser", "exit"]


@pytest.mark.parametrize(
    ("at", "module"),
    [
        *((at, False) for at in WHILE_LOADING),
        *((at, True) for at in WHILE_LOADING),
        # pip's console script runs re.sub on argv[0] between its import of the
        # entry point and its call (other installers' scripts run nothing there).
        pytest.param(
            "re.sub",
            False,
            marks=pytest.mark.skipif(
                "re.sub(" not in AIODAEMON.read_text(), reason="the script does not call re.sub"
            ),
        ),
    ],
    ids=lambda value: {False: "console-script", True: "python-m"}.get(value, value),
)
def test_sigint_while_the_command_loads_exits_130_without_a_traceback(
    tmp_path: Path, at: str, module: bool
) -> None:
    """SIGINT as the command's modules load, or as it exits: status 130, nothing on stderr."""
    result = aiodaemon_cli(
        "status",
        "--pidfile",
        "x.pid",
        cwd=tmp_path,
        module=module,
        env={"PYTHONPATH": os.pathsep.join([str(LOADING_HOOK), str(REPO)]), "SIGINT_AT": at},
    )
    assert (result.returncode, result.stderr) == (130, "")
    # Interrupted before it ran, the command printed nothing; after, its answer stands.
    assert result.stdout == ("not running (no pidfile x.pid)\n" if at == "exit" else "")
