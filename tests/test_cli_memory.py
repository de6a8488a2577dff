"""``aiodaemon start`` under a low address-space limit: one line, not importlib's traceback."""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

from .support import AIODAEMON, clean_env, install_program

MIB = 1 << 20


def _start_under(tmp_path: Path, limit: int) -> subprocess.CompletedProcess[str]:
    """``aiodaemon start app:main`` with ``RLIMIT_AS`` (soft) at ``limit`` bytes."""

    def lower() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (limit, resource.RLIM_INFINITY))

    return subprocess.run(
        [str(AIODAEMON), "start", "app:main", "--pidfile", str(tmp_path / "d.pid")],
        cwd=tmp_path,
        # Modules first compiled under the limit would leave no .pyc behind anyway.
        env=clean_env({"PYTHONDONTWRITEBYTECODE": "1"}),
        preexec_fn=lower,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )


def test_running_out_of_memory_while_loading_the_runtime_is_one_line(tmp_path: Path) -> None:
    """Each MemoryError in the limits that run out while aiodaemon loads is told in one line.

    Below ~32 MiB loading the runtime fails somewhere different at each limit;
    a MemoryError's traceback through importlib ended the start. (Other ends
    remain, out of aiodaemon's hands: a C extension that cannot be mapped is
    an ImportError, and Python itself may fail first.)
    """
    install_program("cli_app", tmp_path)
    told = []
    for mib in range(18, 34, 3):
        result = _start_under(tmp_path, mib * MIB)
        assert not result.stderr.rstrip().endswith("MemoryError"), (mib, result.stderr)
        if "out of memory" in result.stderr:
            assert result.returncode == 1
            # Where and under which limit, unless even that line found no memory.
            assert result.stderr.startswith("aiodaemon: out of memory while starting")
            assert result.stderr.count("\n") == 1, result.stderr
            assert not (tmp_path / "d.pid").exists()
            told.append(mib)
        assert result.returncode != 0, "no daemon starts in that little memory"
    assert told, "no limit ran out of memory while aiodaemon loaded: lower the range"
