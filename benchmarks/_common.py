"""Shared helpers for the benchmarks: statistics, tables, and process bookkeeping.

Stdlib only and cheap to import: the benchmark scripts re-run themselves as
child processes, and whatever this module imports is paid by every contender.
"""

from __future__ import annotations

import contextlib
import ctypes
import math
import os
import select
import signal
import time
from collections.abc import Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

_PR_SET_CHILD_SUBREAPER = 36


def median(values: Sequence[float]) -> float:
    """The median of ``values`` (which must not be empty)."""
    ordered = sorted(values)
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2


def round_order(contenders: Sequence[str], round_: int) -> list[str]:
    """The contenders in this round's order: shuffled, the same in every run of the benchmark.

    A fixed order puts each contender after the same one every round, and a
    start right after a heavy process exited is ~1 ms slower: in detach.py,
    pep3143 was 1.02x python-daemon when it always came after the floor's
    heavy exit, 0.97x when both did.
    """
    import random

    order = list(contenders)
    random.Random(round_).shuffle(order)
    return order


def percentile(values: Sequence[float], q: float) -> float:
    """The nearest-rank ``q``-th percentile (0 < q <= 100): a value that was actually measured."""
    ordered = sorted(values)
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]


def print_table(title: Sequence[str], header: Sequence[str], rows: Sequence[Sequence[str]]) -> None:
    """Print ``title`` lines, then a table: first column left-aligned, the others right-aligned."""
    widths = [max(len(str(cell)) for cell in column) for column in zip(header, *rows, strict=True)]

    def line(cells: Sequence[str]) -> str:
        first, *rest = cells
        parts = [f"{first:<{widths[0]}}"]
        parts += [f"{cell:>{width}}" for cell, width in zip(rest, widths[1:], strict=True)]
        return "  ".join(parts)

    print()
    for text in title:
        print(text)
    print()
    head = line(header)
    print(head)
    print("-" * len(head))
    for row in rows:
        print(line(row))
    print()


def read_text(path: str) -> str:
    """The text of ``path`` (a contender's captured stderr), for error messages."""
    with open(path, errors="replace") as file:
        return file.read()


def child_env(pycache: str | None = None) -> dict[str, str]:
    """The environment for contender processes: the checkout importable, no service manager.

    With ``pycache`` (a directory), bytecode is cached there for every module,
    as an installed package has it; otherwise the checkout's modules are
    compiled anew at every start while installed peers load their ``.pyc``.
    """
    env = dict(os.environ, PYTHONPATH=str(REPO), PYTHONDONTWRITEBYTECODE="1")
    if pycache is not None:
        del env["PYTHONDONTWRITEBYTECODE"]
        env["PYTHONPYCACHEPREFIX"] = pycache
    # Any of these would make aiodaemon think it is supervised (detach=None).
    for name in ("NOTIFY_SOCKET", "LISTEN_FDS", "LISTEN_PID", "LISTEN_FDNAMES", "INVOCATION_ID"):
        env.pop(name, None)
    return env


def become_subreaper() -> None:
    """Adopt our orphaned descendants, so every daemon we start is ours to reap.

    Detached daemons are reparented to the nearest subreaper instead of PID 1,
    which in a container may never reap them.
    """
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_CHILD_SUBREAPER)")


def wait_exit(pid: int, timeout: float) -> bool:
    """Wait up to ``timeout`` seconds for ``pid`` to exit (reaped or not); True if it did."""
    try:
        pidfd = os.pidfd_open(pid)
    except ProcessLookupError:
        return True
    try:
        return bool(select.select([pidfd], [], [], timeout)[0])
    finally:
        os.close(pidfd)


def stop_process(pid: int, timeout: float = 5.0) -> None:
    """SIGTERM ``pid``, SIGKILL it if it outlives ``timeout``, and wait until it is gone."""
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGTERM)
    if not wait_exit(pid, timeout):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        wait_exit(pid, timeout)
    reap_children()


def reap_children() -> None:
    """Collect every child that has already exited (adopted orphans included)."""
    while True:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            return


def check_no_children(timeout: float = 5.0) -> None:
    """Wait for every child to be gone; raise if one is still alive after ``timeout``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            pid, _ = os.waitpid(-1, os.WNOHANG)
        except ChildProcessError:
            return
        if pid == 0:
            time.sleep(0.05)
    raise RuntimeError("a benchmark process outlived the benchmark")


@contextlib.contextmanager
def pinned(cpus: set[int]) -> Iterator[None]:
    """Run the block on ``cpus``: processes started inside inherit the affinity."""
    before = os.sched_getaffinity(0)
    os.sched_setaffinity(0, cpus & before or before)
    try:
        yield
    finally:
        os.sched_setaffinity(0, before)


@contextlib.contextmanager
def ready_fifo() -> Iterator[tuple[str, int, str, str]]:
    """A temporary directory with the FIFO contenders report ready on.

    Yields ``(fifo path, its non-blocking read fd, a stderr file path, a
    pycache directory)``. A writer of our own keeps the FIFO open, so it never
    reads as end-of-file between daemons; every contender loads compiled
    bytecode from the pycache (filled by the warm-up runs), as installed
    packages do: the checkout has no .pyc files of its own.
    """
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        fifo = os.path.join(tmp, "ready.fifo")
        os.mkfifo(fifo)
        fifo_fd = os.open(fifo, os.O_RDONLY | os.O_NONBLOCK)
        keep_open = os.open(fifo, os.O_WRONLY)
        try:
            yield fifo, fifo_fd, os.path.join(tmp, "stderr"), os.path.join(tmp, "pycache")
        finally:
            os.close(fifo_fd)
            os.close(keep_open)
