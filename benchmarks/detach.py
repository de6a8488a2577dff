"""Detach benchmark: launch to ready of a minimal daemon, aiodaemon vs python-daemon vs an fd loop.

Each run starts a fresh launcher process (``python detach.py --child ...``)
that sets ``RLIMIT_NOFILE`` (soft and hard) to the limit under test, then
daemonizes with one contender; the daemon runs a uvloop event loop whose first
act is to write ``<pid> <seconds since the detach call>`` to a FIFO the
harness reads. The run's time is from spawning the launcher until *both* the
launcher has exited and the ready line has arrived: aiodaemon's launcher only
exits once its daemon is ready, the peers' launchers exit as soon as they have
forked, so the FIFO is what makes the three comparable.

Contenders:

* **aiodaemon**: ``aiodaemon.run(main, detach=True)`` (fds closed with ``close_range``);
* **python-daemon**: ``with daemon.DaemonContext(detach_process=True): uvloop.run(...)``;
* **fd-loop**: the classic recipe: fork, ``setsid``, fork, then
  ``for fd in range(3, maxfd): try: os.close(fd)``, stdio to ``/dev/null``;
* **compact**: the smallest daemonizer of the same shape (``_compact.py``):
  double fork, readiness pipe, structlog to a writer thread, uvloop with signal
  handlers, and nothing else. Its gap to the floor is what the shape costs;
  aiodaemon's gap to it, what aiodaemon's own code adds;
* **floor**: no daemon at all: import asyncio, uvloop and structlog, report
  ready from a uvloop loop and ``os._exit(0)``. What any program on that stack
  pays; the goal is aiodaemon within 1.10x of it;
* **floor+imports** (start-up tables only): the floor, having first imported
  every module the bare aiodaemon daemon had loaded at its ready line (listed
  by its unmeasured warm-up run): what aiodaemon's code costs to load, apart
  from what it does.

A second table compares the synchronous PEP 3143 API on the same sync program
(no event loop: ``with DaemonContext(detach_process=True): ready; pause``):

* **pep3143**: ``aiodaemon.pep3143.DaemonContext`` (``close_range``, no asyncio import);
* **python-daemon (sync)**: ``daemon.DaemonContext``.

Limits: 1,024 and the highest the machine allows (1,048,576 is tried first;
containers cap the hard limit, and then the hard limit is used).

Run ``python benchmarks/detach.py [--runs 20] [--quick]``; ``--startup`` for
the start-up table alone (aiodaemon, with a pidfile, compact, floor+imports, floor), and
``--instructions`` for the same four counted in instructions by valgrind's
callgrind: slow, but the same on a loaded machine as on a quiet one.
"""

from __future__ import annotations

import contextlib
import os
import sys
import time

# Not typing's TYPE_CHECKING: every contender runs this file and would pay for typing.
TYPE_CHECKING = False
if TYPE_CHECKING:
    import subprocess

_HERE = os.path.dirname(os.path.abspath(__file__))
# This directory holds logging.py, which would shadow the stdlib module for
# asyncio, structlog and aiodaemon: keep it importable (for _common) but last.
if sys.path and os.path.abspath(sys.path[0]) == _HERE:
    sys.path.append(sys.path.pop(0))

#: A contender's process imports this file (its bytecode cached, as the
#: contenders' is) rather than running it as a script, which would compile its
#: ~700 lines at every start: ~6 ms the floor itself would then include. -P: no
#: working directory on sys.path, where benchmarks/logging.py could shadow logging.
_CHILD = f"import sys; sys.path.append({_HERE!r}); import detach; detach.main()"

CONTENDERS = ("aiodaemon", "compact", "python-daemon", "fd-loop", "floor")
#: aiodaemon's start-to-ready may cost at most this much more than the floor.
FLOOR_GOAL = 1.10
#: The same synchronous program with each PEP 3143 implementation.
SYNC_CONTENDERS = ("pep3143", "python-daemon (sync)")
WANTED_LIMIT = 1_048_576
LOW_LIMIT = 1_024

#: When the launcher called the detach; inherited by the daemon across the forks.
_detach_called = 0.0
#: Set for --instructions: the process that reports ready ends right after it.
_EXIT_AT_READY = "DETACH_BENCH_EXIT_AT_READY"
#: A file the ready process lists its loaded modules in (floor+imports reads it).
_MODULES = "DETACH_BENCH_MODULES"


# --- the launcher / daemon side (kept import-light: it is what is measured) ---


def _report_ready(fifo: str) -> None:
    """Write the ready line: the daemon's pid and the time since the detach call."""
    fd = os.open(fifo, os.O_WRONLY)
    try:
        os.write(fd, f"{os.getpid()} {time.monotonic() - _detach_called:.6f}\n".encode())
    finally:
        os.close(fd)
    listing = os.environ.get(_MODULES)
    if listing and not os.path.exists(listing):  # the warm-up run of the bare aiodaemon
        with open(listing, "w") as f:
            f.write("\n".join(sorted(sys.modules)))
    if os.environ.get(_EXIT_AT_READY):
        # --instructions: callgrind writes its counts as the process ends, so
        # it ends here and they hold the way to ready, and nothing after it.
        os._exit(0)


def _classic_detach() -> None:
    """The fd-loop recipe found in countless daemons (and in Python cookbooks)."""
    if os.fork():
        os._exit(0)
    os.setsid()
    if os.fork():
        os._exit(0)
    os.chdir("/")
    os.umask(0o022)
    import resource

    maxfd = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    for fd in range(3, maxfd):
        # Written the way the recipe is: one close() per possible descriptor.
        try:  # noqa: SIM105
            os.close(fd)
        except OSError:
            pass
    null = os.open(os.devnull, os.O_RDWR)
    for fd in (0, 1, 2):
        os.dup2(null, fd)
    if null > 2:
        os.close(null)


def _child(contender: str, limit: int, fifo: str) -> None:
    """Become a daemon with ``contender`` and report ready on ``fifo``."""
    global _detach_called
    import resource

    hard = limit
    if os.environ.get(_EXIT_AT_READY):
        # valgrind keeps the top descriptors for itself and refuses to change
        # the hard limit; the soft one is what a daemon closes up to.
        hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    resource.setrlimit(resource.RLIMIT_NOFILE, (limit, hard))
    if contender in SYNC_CONTENDERS:
        _sync_child(contender, fifo)
        return
    import asyncio

    import uvloop

    async def idle() -> None:
        _report_ready(fifo)
        await asyncio.Event().wait()

    if contender in ("aiodaemon", "aiodaemon+pidfile"):
        import aiodaemon

        async def main(ctx: aiodaemon.Context) -> None:
            _report_ready(fifo)
            await ctx.wait_stopping()

        # With a pidfile the daemon also locks it and serves a control socket
        # beside it: what `aiodaemon start --pidfile` users run.
        pidfile = os.path.join(os.path.dirname(fifo), "startup.pid")
        _detach_called = time.monotonic()
        aiodaemon.run(main, detach=True, pidfile=pidfile if contender != "aiodaemon" else None)
    elif contender == "compact":
        import _compact

        async def started() -> None:
            _report_ready(fifo)

        _detach_called = time.monotonic()
        _compact.run(started)
    elif contender in ("floor", "floor+imports"):
        import structlog  # noqa: F401  (part of the floor: aiodaemon's stack)

        if contender == "floor+imports":
            import importlib

            with open(os.environ[_MODULES]) as f:
                for name in f.read().split():
                    if name not in sys.modules and name != "__main__":
                        importlib.import_module(name)

        async def ready() -> None:
            _report_ready(fifo)
            # As the daemons' launchers do: no interpreter teardown in the timing.
            os._exit(0)

        _detach_called = time.monotonic()
        uvloop.run(ready())
    elif contender == "python-daemon":
        import daemon

        _detach_called = time.monotonic()
        with daemon.DaemonContext(detach_process=True):
            uvloop.run(idle())
    else:
        _detach_called = time.monotonic()
        _classic_detach()
        uvloop.run(idle())


def _sync_child(contender: str, fifo: str) -> None:
    """The same synchronous program with either PEP 3143 implementation (imports included)."""
    global _detach_called
    import signal

    context: contextlib.AbstractContextManager[object]
    if contender == "pep3143":
        from aiodaemon import pep3143

        context = pep3143.DaemonContext(detach_process=True)
    else:
        import daemon

        context = daemon.DaemonContext(detach_process=True)
    _detach_called = time.monotonic()
    with context:
        _report_ready(fifo)
        while True:
            signal.pause()


# --- the harness ---


def _detected_high_limit() -> tuple[int, str]:
    """Raise our own limit as far as the machine lets us; say what happened."""
    import resource

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (WANTED_LIMIT, WANTED_LIMIT))
    except (ValueError, OSError) as exc:
        return hard, f"{WANTED_LIMIT:,} refused ({exc}): using the hard limit {hard:,}"
    return WANTED_LIMIT, f"{WANTED_LIMIT:,} (raised from {soft:,}/{hard:,})"


def _read_line(fd: int, launcher_pidfd: int, deadline: float) -> tuple[bytes, float, float]:
    """Wait for the ready line and the launcher's exit; return (line, ready_at, exited_at)."""
    import select

    buffer = b""
    ready_at = exited_at = 0.0
    while not (ready_at and exited_at):
        left = deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError("no ready line and launcher exit within the deadline")
        waiting_on = [fd] if exited_at else [fd, launcher_pidfd]
        readable = select.select(waiting_on, [], [], left)[0]
        now = time.monotonic()
        if launcher_pidfd in readable:
            exited_at = now
        if fd in readable:
            try:
                buffer += os.read(fd, 256)
            except BlockingIOError:
                continue
            if b"\n" in buffer and not ready_at:
                ready_at = now
    return buffer.split(b"\n", 1)[0], ready_at, exited_at


def _daemon_cpu_ms(pid: int) -> float:
    """CPU time ``pid`` has used so far, from /proc (nanoseconds, unlike its stat's ticks)."""
    with open(f"/proc/{pid}/schedstat") as f:
        return int(f.read().split()[0]) / 1e6


def _launch(
    contender: str,
    limit: int,
    label: str,
    fifo: str,
    fifo_fd: int,
    err: str,
    pycache: str,
    wrapper: tuple[str, ...] = (),
    env: dict[str, str] | None = None,
    deadline: float = 30.0,
) -> tuple[subprocess.Popen[bytes], bytes, float]:
    """Start ``contender``'s launcher and read its daemon's ready line.

    ``wrapper`` is a command the launcher runs under (valgrind), ``env`` more
    environment, ``deadline`` in seconds.

    Returns:
        (the launcher, not yet reaped; the ready line; launch ms: from the spawn
        until both the ready line arrived and the launcher exited).
    """
    import subprocess

    from _common import child_env, read_text

    with open(err, "wb") as errfile:
        start = time.monotonic()
        launcher = subprocess.Popen(
            [*wrapper, sys.executable, "-P", "-c", _CHILD, "--child", contender, str(limit), fifo],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=errfile,
            env=child_env(pycache) | (env or {}),
        )
        pidfd = os.pidfd_open(launcher.pid)
        try:
            line, ready_at, exited_at = _read_line(fifo_fd, pidfd, start + deadline)
        except TimeoutError as exc:
            launcher.kill()
            launcher.wait()
            raise SystemExit(f"{label}: {exc}\n{read_text(err)}") from None
        finally:
            os.close(pidfd)
    return launcher, line, (max(ready_at, exited_at) - start) * 1e3


def _one_run(
    contender: str, limit: int, fifo: str, fifo_fd: int, err: str, pycache: str
) -> tuple[float, float, float]:
    """Launch one daemon, time it to ready, stop it.

    Returns:
        (launch ms, in-process ms, cpu ms): cpu is what the launcher, the
        short-lived intermediate child and the daemon up to its ready line
        used, which other load on the machine barely changes.
    """
    import resource

    from _common import read_text, reap_children, stop_process

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    launcher, line, launch_ms = _launch(
        contender, limit, f"{contender} at {limit:,}", fifo, fifo_fd, err, pycache
    )
    pid_text, in_process = line.decode().split()
    # A contender that never forks is its own launcher: counted once, by wait4.
    daemon_cpu = _daemon_cpu_ms(int(pid_text)) if int(pid_text) != launcher.pid else 0.0
    _, status, _ = os.wait4(launcher.pid, 0)
    launcher.returncode = code = os.waitstatus_to_exitcode(status)
    # The intermediate child of a double fork is reaped by the launcher that
    # waits for it (aiodaemon) or, orphaned, by us (the peers): count it alike.
    reap_children()
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    reaped = after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime
    cpu = daemon_cpu + reaped * 1e3
    stop_process(int(pid_text))
    reap_children()
    if code != 0:
        raise SystemExit(f"{contender} at {limit:,}: launcher exited {code}\n{read_text(err)}")
    return launch_ms, float(in_process) * 1e3, cpu


def main() -> None:
    """Run every contender at both limits, interleaved, and print the tables."""
    if sys.argv[1:2] == ["--child"]:
        # Before argparse, whose import every contender would otherwise pay.
        contender, limit_arg, fifo = sys.argv[2:5]
        _child(contender, int(limit_arg), fifo)
        return
    import argparse

    from _common import (
        become_subreaper,
        check_no_children,
        median,
        percentile,
        print_table,
        ready_fifo,
        round_order,
    )

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="runs per contender and limit")
    parser.add_argument("--quick", action="store_true", help="5 runs each")
    parser.add_argument("--child", nargs=3, metavar=("CONTENDER", "LIMIT", "FIFO"))
    parser.add_argument(
        "--startup",
        action="store_true",
        help="only aiodaemon (bare and with a pidfile), compact, floor+imports and the floor,"
        " at 1,024: the start-up cost ratio",
    )
    parser.add_argument(
        "--instructions",
        action="store_true",
        help="with --startup: count each contender's instructions to ready once, under"
        " valgrind's callgrind (slow, ~10 s each, but the same on a busy machine)",
    )
    args = parser.parse_args()
    runs = 5 if args.quick else args.runs
    if args.instructions:
        _startup_instructions()
        return
    if args.startup:
        _startup_ratio(runs)
        return

    become_subreaper()
    high, how = _detected_high_limit()
    limits = (LOW_LIMIT, high)
    launch: dict[tuple[str, int], list[float]] = {}
    inproc: dict[tuple[str, int], list[float]] = {}
    cpu: dict[tuple[str, int], list[float]] = {}
    with ready_fifo() as (fifo, fifo_fd, err, pycache):
        for contender in CONTENDERS + SYNC_CONTENDERS:  # warm the caches, unmeasured
            _one_run(contender, LOW_LIMIT, fifo, fifo_fd, err, pycache)
        for round_ in range(runs):
            # Interleaved, so drift and other load hit every contender alike.
            for limit in limits:
                for contender in round_order(CONTENDERS + SYNC_CONTENDERS, round_):
                    total, detach, used = _one_run(contender, limit, fifo, fifo_fd, err, pycache)
                    launch.setdefault((contender, limit), []).append(total)
                    inproc.setdefault((contender, limit), []).append(detach)
                    cpu.setdefault((contender, limit), []).append(used)
    check_no_children()

    def table_rows(contenders: tuple[str, ...]) -> list[list[str]]:
        """One row per contender and limit; the ratio is to the first contender."""
        rows = []
        for limit in limits:
            base = median(launch[contenders[0], limit])
            for contender in contenders:
                times = launch[contender, limit]
                rows.append(
                    [
                        contender,
                        f"{limit:,}",
                        f"{median(times):.1f}",
                        f"{percentile(times, 90):.1f}",
                        f"{median(times) / base:.2f}",
                        f"{median(inproc[contender, limit]):.1f}",
                        f"{median(cpu[contender, limit]):.1f}",
                    ]
                )
        return rows

    low, top = (median(launch["aiodaemon", limit]) for limit in limits)
    print_table(
        [
            f"launch to ready of a minimal daemon (uvloop), {runs} runs per row, "
            f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}",
            f"RLIMIT_NOFILE high: {how}",
            "launch = spawn of the launcher until its exit and the daemon's ready line;",
            "in-process = from the detach call to the daemon's ready line;",
            "cpu = CPU time of the launcher, the intermediate child and the daemon up to",
            "its ready line, the least sensitive to other load;",
            "every contender loads cached bytecode (PYTHONPYCACHEPREFIX), as when installed",
        ],
        [
            "contender",
            "RLIMIT_NOFILE",
            "median ms",
            "p90 ms",
            "vs aiodaemon",
            "in-process ms",
            "cpu ms",
        ],
        table_rows(CONTENDERS),
    )
    print_table(
        [
            "the same sync program (no event loop) with each PEP 3143 DaemonContext, "
            f"{runs} runs per row",
        ],
        [
            "contender",
            "RLIMIT_NOFILE",
            "median ms",
            "p90 ms",
            "vs pep3143",
            "in-process ms",
            "cpu ms",
        ],
        table_rows(SYNC_CONTENDERS),
    )
    for limit in limits:
        ours, theirs = (median(launch[c, limit]) for c in SYNC_CONTENDERS)
        ours_cpu, theirs_cpu = (median(cpu[c, limit]) for c in SYNC_CONTENDERS)
        verdict = "meets" if ours <= theirs else "does NOT meet"
        print(
            f"pep3143 vs python-daemon at {limit:,}: {ours / theirs:.2f}x "
            f"({verdict} the 1.0x goal); cpu {ours_cpu / theirs_cpu:.2f}x"
        )
    for limit in limits:
        ratio = median(launch["aiodaemon", limit]) / median(launch["floor", limit])
        verdict = "meets" if ratio <= FLOOR_GOAL else "does NOT meet"
        print(
            f"aiodaemon vs floor at {limit:,}: {ratio:.2f}x ({verdict} the {FLOOR_GOAL:.2f}x goal)"
        )
    change = (top - low) / low * 100
    verdict = "within" if abs(change) <= 10 else "NOT within"
    print(f"aiodaemon {high:,} vs {LOW_LIMIT:,}: {change:+.1f}% ({verdict} the 10% goal)")


def _task_cpu_ms(pid: int) -> float:
    """CPU time every thread of ``pid`` has run so far, from /proc (nanosecond counters)."""
    total = 0
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/schedstat") as f:
            total += int(f.read().split()[0])
    return total / 1e6


def _startup_run(
    contender: str, fifo: str, fifo_fd: int, err: str, pycache: str
) -> tuple[float, float, float]:
    """One start as in :func:`_one_run`; return (wall ms, CPU ms to ready, of it the daemon's).

    CPU time is what the machine's load cannot inflate: the launcher's (with
    the intermediate child it reaped) from ``wait4``, plus what the daemon has
    run when its ready line arrived. The daemon's share tells work done before
    the fork from work done after it (copy-on-write makes the latter dearer).
    """

    from _common import read_text, reap_children, stop_process

    launcher, line, launch_ms = _launch(
        contender, LOW_LIMIT, contender, fifo, fifo_fd, err, pycache, env=_modules_env(fifo)
    )
    _, status, usage = os.wait4(launcher.pid, 0)
    launcher.returncode = os.waitstatus_to_exitcode(status)
    pid = int(line.split()[0])
    cpu = (usage.ru_utime + usage.ru_stime) * 1e3
    daemon = 0.0
    if pid != launcher.pid:
        daemon = _task_cpu_ms(pid)
        cpu += daemon
        stop_process(pid)
    reap_children()
    if launcher.returncode != 0:
        raise SystemExit(f"{contender}: launcher exited {launcher.returncode}\n{read_text(err)}")
    return launch_ms, cpu, daemon


def _modules_env(fifo: str) -> dict[str, str]:
    """Where the bare aiodaemon's warm-up run lists its modules for floor+imports."""
    return {_MODULES: os.path.join(os.path.dirname(fifo), "modules")}


def _startup_ratio(runs: int) -> None:
    """aiodaemon against the compact reference and the floor, interleaved, at a low limit."""
    from _common import (
        become_subreaper,
        check_no_children,
        median,
        print_table,
        ready_fifo,
        round_order,
    )

    become_subreaper()
    wall: dict[str, list[float]] = {
        "aiodaemon": [],
        "aiodaemon+pidfile": [],
        "compact": [],
        "floor+imports": [],
        "floor": [],
    }
    cpu: dict[str, list[float]] = {name: [] for name in wall}
    after_fork: dict[str, list[float]] = {name: [] for name in wall}
    with ready_fifo() as (fifo, fifo_fd, err, pycache):
        for contender in wall:  # warm the caches, unmeasured
            _startup_run(contender, fifo, fifo_fd, err, pycache)
        for round_ in range(runs):
            for contender in round_order(tuple(wall), round_):
                took, used, daemon = _startup_run(contender, fifo, fifo_fd, err, pycache)
                wall[contender].append(took)
                cpu[contender].append(used)
                after_fork[contender].append(daemon)
    check_no_children()
    floor, floor_cpu = median(wall["floor"]), median(cpu["floor"])
    print_table(
        [
            f"start to ready, {runs} runs each, interleaved, RLIMIT_NOFILE {LOW_LIMIT:,};",
            "floor = import asyncio, uvloop, structlog, run a uvloop loop, report ready;",
            "compact = the same with the smallest double-forking daemonizer (_compact.py);",
            "aiodaemon+pidfile = with a pidfile, so also its lock and the control socket;",
            "floor+imports = the floor after importing the modules the bare aiodaemon loads;",
            "cpu = CPU time of every process up to ready (unaffected by other load);",
            "after fork = the daemon's part of it (the floor does not fork: -)",
        ],
        [
            "contender",
            "median ms",
            "min ms",
            "vs floor",
            "cpu median ms",
            "cpu vs floor",
            "after fork ms",
        ],
        [
            [
                name,
                f"{median(times):.1f}",
                f"{min(times):.1f}",
                f"{median(times) / floor:.2f}",
                f"{median(cpu[name]):.1f}",
                f"{median(cpu[name]) / floor_cpu:.2f}",
                f"{median(after_fork[name]):.1f}" if not name.startswith("floor") else "-",
            ]
            for name, times in wall.items()
        ],
    )
    for what, ratio in (
        ("start to ready", median(wall["aiodaemon"]) / floor),
        ("CPU to ready", median(cpu["aiodaemon"]) / floor_cpu),
    ):
        verdict = "meets" if ratio <= FLOOR_GOAL else "does NOT meet"
        print(f"aiodaemon vs floor, {what}: {ratio:.2f}x ({verdict} the {FLOOR_GOAL:.2f}x goal)")
    ours, shape = median(cpu["aiodaemon"]), median(cpu["compact"])
    loading = median(cpu["floor+imports"])
    print(
        f"CPU to ready above the floor: compact {shape - floor_cpu:+.1f} ms (the shape), "
        f"aiodaemon {ours - floor_cpu:+.1f} ms ({ours - shape:+.1f} ms of its own); "
        f"loading aiodaemon's modules alone {loading - floor_cpu:+.1f} ms"
    )


def _startup_instructions() -> None:
    """The start-up contenders' user-space instructions to ready, counted by callgrind.

    Wall and CPU time move with the machine's load and caches; an instruction
    count does not (Python's hash seed is fixed, as it changes dict work). The
    daemon's count includes its launcher's up to the fork (callgrind's counters
    are copied with the process), so the ready process's count is the whole
    way to ready, minus the kernel's work (forks, page faults), which callgrind
    does not see and the wall-time table does.
    """
    import shutil
    import tempfile

    from _common import become_subreaper, print_table, ready_fifo

    if shutil.which("valgrind") is None:
        raise SystemExit("--instructions needs valgrind (Debian: apt-get install valgrind)")
    become_subreaper()
    names = ("aiodaemon", "aiodaemon+pidfile", "compact", "floor+imports", "floor")
    counts: dict[str, int] = {}
    with ready_fifo() as (fifo, fifo_fd, err, pycache), tempfile.TemporaryDirectory() as out:
        for contender in names:  # fill the bytecode cache, unmeasured
            _startup_run(contender, fifo, fifo_fd, err, pycache)
        for contender in names:
            counts[contender] = _count_to_ready(contender, fifo, fifo_fd, err, pycache, out)
    floor, compact = counts["floor"], counts["compact"]
    print_table(
        [
            "user-space instructions from spawn to ready, one run each under callgrind,",
            f"RLIMIT_NOFILE {LOW_LIMIT:,}, PYTHONHASHSEED=0;",
            "the kernel's work (forks, page faults) is not counted",
        ],
        ["contender", "instructions (M)", "vs floor", "above compact (M)"],
        [
            [
                name,
                f"{count / 1e6:.1f}",
                f"{count / floor:.3f}",
                f"{(count - compact) / 1e6:+.1f}" if name != "floor" else "-",
            ]
            for name, count in counts.items()
        ],
    )


def _count_to_ready(
    contender: str, fifo: str, fifo_fd: int, err: str, pycache: str, out: str
) -> int:
    """Run ``contender`` once under callgrind; return its ready process's instruction count."""
    from _common import read_text, reap_children

    files = os.path.join(out, contender)
    os.mkdir(files)
    launcher, line, _ = _launch(
        contender,
        LOW_LIMIT,
        contender,
        fifo,
        fifo_fd,
        err,
        pycache,
        wrapper=("valgrind", "--tool=callgrind", f"--callgrind-out-file={files}/%p"),
        env={_EXIT_AT_READY: "1", "PYTHONHASHSEED": "0"} | _modules_env(fifo),
        deadline=300.0,
    )
    launcher.wait()
    pid = int(line.split()[0])
    # The daemon ends right after its ready line (an aiodaemon launcher may
    # then say it died before ready: its exit status means nothing here); as
    # our adopted orphan it is ours to wait for, and callgrind has written
    # its file once it is gone.
    deadline = time.monotonic() + 120.0
    while os.path.exists(f"/proc/{pid}") and time.monotonic() < deadline:
        reap_children()
        time.sleep(0.05)
    reap_children()
    try:
        with open(os.path.join(files, str(pid))) as f:
            for text in f:
                if text.startswith("summary:"):
                    return int(text.split()[1])
    except FileNotFoundError:
        pass
    raise SystemExit(f"{contender}: no callgrind count for pid {pid}\n{read_text(err)}")


if __name__ == "__main__":
    main()
