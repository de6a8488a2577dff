"""Helpers for end-to-end tests: start real daemons and observe them from outside."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")

REPO = Path(__file__).resolve().parent.parent
PYTHON = sys.executable


def wait_for(
    predicate: Callable[[], T | bool | None], timeout: float = 10.0, what: str = "condition"
) -> T:
    """Poll ``predicate`` until it returns something truthy, failing after ``timeout``."""
    deadline = time.monotonic() + timeout
    delay = 0.002
    while True:
        value = predicate()
        if value:
            return value  # type: ignore[return-value]
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(delay)
        delay = min(delay * 2, 0.05)


def proc_state(pid: int) -> str | None:
    """The one-letter state of ``pid`` from /proc, None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return None


def is_alive(pid: int) -> bool:
    """Whether ``pid`` exists and is not a zombie."""
    return proc_state(pid) not in (None, "Z", "X")


def wait_gone(pid: int, timeout: float = 10.0) -> None:
    """Wait until ``pid`` has exited (a zombie counts as exited)."""
    wait_for(lambda: not is_alive(pid), timeout, f"pid {pid} to exit")


def proc_status(pid: int) -> dict[str, str]:
    """``/proc/PID/status`` as a mapping."""
    with open(f"/proc/{pid}/status") as f:
        return dict(line.rstrip("\n").split(":\t", 1) for line in f if ":\t" in line)


def proc_stat_fields(pid: int) -> list[str]:
    """Fields of ``/proc/PID/stat`` after the command name (state is index 0)."""
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()


def open_fds(pid: int) -> dict[int, str]:
    """The open descriptors of ``pid`` and what they point at."""
    base = f"/proc/{pid}/fd"
    result = {}
    for name in os.listdir(base):
        with contextlib.suppress(FileNotFoundError):
            result[int(name)] = os.readlink(f"{base}/{name}")
    return result


def read_pid(path: Path, timeout: float = 10.0) -> int:
    """Wait for ``path`` to hold a pid and return it."""

    def attempt() -> int | None:
        try:
            text = path.read_text()
        except FileNotFoundError:
            return None
        return int(text) if text.endswith("\n") and text.strip().isdigit() else None

    return wait_for(attempt, timeout, f"a pid in {path}")


def kill_quietly(pid: int, sig: int = signal.SIGKILL) -> None:
    """Send ``sig`` to ``pid`` if it still exists."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, sig)


def write_script(directory: Path, source: str, name: str = "app.py") -> Path:
    """Write a dedented Python program to ``directory/name``."""
    path = directory / name
    path.write_text(textwrap.dedent(source))
    return path


def python(
    args: Sequence[str | os.PathLike[str]],
    *,
    env: Mapping[str, str] | None = None,
    timeout: float = 30.0,
    cwd: Path | None = None,
) -> subprocess.CompletedProcess[str]:
    """Run the test interpreter to completion, capturing text output."""
    return subprocess.run(
        [PYTHON, *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=clean_env(env),
        cwd=cwd,
        stdin=subprocess.DEVNULL,
        check=False,
    )


def clean_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """The test's environment without service-manager variables, plus ``extra``."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "NOTIFY_SOCKET",
            "LISTEN_FDS",
            "LISTEN_PID",
            "LISTEN_FDNAMES",
            "INVOCATION_ID",
            "WATCHDOG_USEC",
            "WATCHDOG_PID",
        )
    }
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(REPO), env.get("PYTHONPATH")]))
    if extra:
        env.update(extra)
    return env


def read_json_lines(path: Path) -> list[dict[str, object]]:
    """Every line of a JSON-lines log file, parsed."""
    import json

    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def require_tool(name: str) -> str:
    """The path of an outside program a test needs; a missing one fails the test, never skips."""
    import shutil

    import pytest

    path = shutil.which(name) or shutil.which(name, path="/usr/sbin:/sbin")
    if path is None:
        pytest.fail(f"{name} is required by this test and is not installed (.ci/run installs it)")
    return path


def run_logrotate(config: Path, state: Path) -> None:
    """Force one rotation with the real logrotate, failing the test if it reports an error."""
    result = subprocess.run(
        [require_tool("logrotate"), "-f", "-s", str(state), str(config)],
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
