"""A task factory of the ``(loop, coro)`` form does not cost the program its shutdown hooks.

Before, the hooks' tasks were made with ``context=``, which such a factory
refuses: each hook after it failed with "internal error: TypeError: ...
unexpected keyword argument 'context'" (the whole run, on uvloop).
"""

from __future__ import annotations

import signal
from pathlib import Path

import pytest

from .support import ForegroundDaemon, wait_for


@pytest.mark.parametrize("use_uvloop", [None, False], ids=["default-loop", "asyncio"])
def test_old_task_factory_keeps_the_shutdown_hooks(tmp_path: Path, use_uvloop: bool | None) -> None:
    """Hooks run (through the factory), a lifespan's teardown sees its setup, one warning."""
    d = ForegroundDaemon(tmp_path, "old_task_factory", uvloop=use_uvloop, shutdown_timeout=10)
    try:
        wait_for(lambda: "factory set" in d.recorded(), 10, "factory set")
        d.signal(signal.SIGTERM)
        assert d.wait() == 0, d.stderr()
        assert "Traceback" not in d.stderr()
    finally:
        d.kill()
    recorded = d.recorded()
    # The shutdown hook's task came from the program's factory; then the lifespan's teardown.
    assert recorded[-3:] == ["factory made a task", "close_db", "teardown saw db-1"]
    lines = d.lines()
    warnings = [line for line in lines if line["event"] == "task factory takes no context="]
    assert len(warnings) == 1
    assert warnings[0]["factory"] == "__main__.factory"
    events = [line["event"] for line in lines]
    assert "shutdown hook failed" not in events
    assert "lifespan failed" not in events
    assert lines[-1]["event"] == "exit"
    assert lines[-1]["status"] == 0
