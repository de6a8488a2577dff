"""A sink that stops reading while the program logs big records: the queue stays bounded."""

from __future__ import annotations

import json
import signal
import subprocess
import threading
from pathlib import Path

from .support import PYTHON, clean_env, install_program, wait_for

MIB = 1 << 20


def _peak_rss(pid: int) -> int:
    """The process's peak resident memory (``VmHWM``), in bytes."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmHWM in /proc/{pid}/status")


def test_big_records_into_a_stalled_sink_cost_bounded_memory_and_are_counted(
    tmp_path: Path,
) -> None:
    """2,000 records of 200 KB (400 MB) into a stderr pipe nobody reads: memory stays low.

    The queue refuses what does not fit in its bytes (32 MiB), as it does past
    its count of records, and says how many once the sink reads again; the
    records it took arrive whole and in order.
    """
    install_program("log_big_records", tmp_path)
    mark = tmp_path / "logged"
    proc = subprocess.Popen(
        [PYTHON, "app.py", str(mark)],
        cwd=tmp_path,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        # stderr unread: the writer blocks on the full pipe for good.
        wait_for(mark.exists, timeout=60, what="the program to have logged its records")
        peak = _peak_rss(proc.pid)
        assert proc.stderr is not None
        received: list[bytes] = []
        reader = threading.Thread(target=lambda: received.append(proc.stderr.read()))  # type: ignore[union-attr]
        reader.start()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=60) == 0
        reader.join(60)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        if proc.stderr is not None:
            proc.stderr.close()
    # Without a bound in bytes the queue held all 2,000 (400 MB and more).
    assert peak < 200 * MIB, f"peak RSS {peak // MIB} MiB"
    records = [json.loads(line) for line in received[0].splitlines()]
    numbers = [r["n"] for r in records if r["event"] == "big"]
    dropped = [r for r in records if r["event"] == "log records dropped"]
    assert numbers == sorted(numbers)
    assert all(len(r["blob"]) == 200_000 for r in records if r["event"] == "big")
    assert dropped, [r["event"] for r in records]
    assert all(r["level"] == "warning" for r in dropped)
    assert len(numbers) + sum(r["dropped"] for r in dropped) == 2000
    assert len(numbers) < 2000
