"""Hooks registered while the daemon runs: refused where they would never run.

Before, a startup hook, lifespan or ``on_signal`` handler that ``main`` (or a
module it imported) registered was accepted and never ran, without a word: a
SIGWINCH then took its default action (ignored).
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .support import ForegroundDaemon


@pytest.mark.parametrize(
    ("case", "what", "name"),
    [
        ("startup", "on_startup hook", "late_startup"),
        ("lifespan", "lifespan", "late_span"),
        ("signal", "on_signal handler", "late_signal"),
    ],
)
def test_registering_what_the_run_read_already_fails_main(
    tmp_path: Path, case: str, what: str, name: str
) -> None:
    """main registering a startup hook, lifespan or signal handler: RuntimeError, exit 1."""
    d = ForegroundDaemon(tmp_path, "late_hooks", case)
    try:
        _, err = d.proc.communicate(timeout=20)
    finally:
        d.kill()
    assert d.proc.returncode == 1, err
    assert err.splitlines()[-1] == (
        f"aiodaemon: main failed: RuntimeError: {what} __main__.{name} registered while the"
        " daemon runs: startup hooks, lifespans and signal handlers are read when it starts;"
        " register them before run() (at import)"
    )
    assert d.recorded() == []


def test_reload_and_shutdown_hooks_registered_by_main_run(tmp_path: Path) -> None:
    """A reload or shutdown hook main registers runs: the run reads those when it needs them."""
    d = ForegroundDaemon(tmp_path, "late_hooks", "later")
    try:
        d.wait_event("reload finished")
        d.signal(signal.SIGTERM)
        _, err = d.proc.communicate(timeout=20)
    finally:
        d.kill()
    assert d.proc.returncode == 0, err
    assert d.recorded() == ["late reload hook", "late shutdown hook"]
