"""aiodaemon.pep3143 under mypy --strict: what python-daemon programs write type-checks."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path
from types import MappingProxyType

import pytest

from aiodaemon import pep3143
from tests.support import mypy_strict

PROGRAM = """\
import signal
from types import FrameType

from aiodaemon import pep3143 as daemon


def reload(signum: int, frame: FrameType | None) -> None: ...


handlers = {signal.SIGHUP: reload, signal.SIGUSR1: reload}
context = daemon.DaemonContext(signal_map=handlers)
context.signal_map[signal.SIGHUP] = reload
context.signal_map[signal.SIGUSR2] = "terminate"
context.signal_map[signal.SIGTSTP] = None
del context.signal_map[signal.SIGUSR1]
context.signal_map.update({signal.SIGTTIN: None})
context.signal_map = {signal.SIGTERM: reload, signal.SIGHUP: "terminate"}
{bad}
"""


def mypy(tmp_path: Path, bad: str = "") -> subprocess.CompletedProcess[str]:
    """Run mypy --strict on PROGRAM ending with ``bad``."""
    return mypy_strict(tmp_path, {"app.py": PROGRAM.replace("{bad}", bad)})


# mypy, cold (a cache of its own), on a busy machine: more than the suite's 60 s.
@pytest.mark.timeout(300)
def test_signal_map_is_changed_in_place_under_mypy_strict(tmp_path: Path) -> None:
    """signal_map item assignment, del and update pass mypy --strict; a bad handler does not."""
    good = mypy(tmp_path)
    assert good.returncode == 0, good.stdout + good.stderr
    bad = mypy(tmp_path, "context.signal_map[signal.SIGHUP] = 3.5\n")
    errors = [line for line in bad.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, bad.stdout + bad.stderr
    assert errors[0].startswith("app.py:18: error: Incompatible types in assignment")


def test_signal_map_is_the_given_dict_or_a_dict_copy() -> None:
    """A dict is kept as given (python-daemon does); another mapping becomes a dict to change."""
    given: dict[int, pep3143.SignalTarget] = {signal.SIGHUP: None}
    assert pep3143.DaemonContext(signal_map=given).signal_map is given
    context = pep3143.DaemonContext(signal_map=MappingProxyType({signal.SIGHUP: None}))
    context.signal_map[signal.SIGUSR1] = "terminate"
    assert context.signal_map == {signal.SIGHUP: None, signal.SIGUSR1: "terminate"}
