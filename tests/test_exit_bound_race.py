"""The exit's backstop decides the status, even when its kill lets the exit go on.

A multiprocessing child that ignores SIGTERM keeps multiprocessing's exit
function joining it; the backstop SIGKILLs it, which ends that join. The main
thread then went on to the interpreter's usual end with status 0, racing the
backstop's own exit (status 4 and its line on stderr), and won whenever the
backstop thread lost the CPU right after its kill: about one stop in ten
while other daemons were starting on the two cores, as in the suite.
"""

from __future__ import annotations

import signal
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from .support import kill_quietly, wait_gone
from .test_exit_bound import EXIT_BOUND, Leftovers

#: Daemons started and stopped, and how many at a time: each one's exit then
#: comes while others start (imports, forks), the load that lets the race show.
DAEMONS = 16
AT_ONCE = 8


def _start_and_stop(directory: Path) -> str | None:
    """One daemon whose child ignores SIGTERM, stopped once main runs; what went wrong, if any."""
    directory.mkdir()
    d = Leftovers(directory, "mp-child")
    proc = d.start()
    child = 0
    try:
        d.wait_main()
        [line] = [x for x in d.record.read_text().splitlines() if x.startswith("child ")]
        child = int(line.split()[1])
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=EXIT_BOUND)
        wait_gone(child, EXIT_BOUND)
    finally:
        kill_quietly(proc.pid)
        if child:
            kill_quietly(child)
        _, err = proc.communicate(timeout=EXIT_BOUND)
    said = f"atexit functions still running; multiprocessing children killed: {child}), status 4"
    if proc.returncode != 4 or said not in err or d.pidfile.exists():
        return f"status {proc.returncode}, stderr {err[-300:]!r}"
    return None


def test_every_daemon_cut_short_at_exit_leaves_with_status_4(tmp_path: Path) -> None:
    """16 daemons joining a SIGTERM-proof child at exit, 8 at a time: each exits 4, saying so."""
    with ThreadPoolExecutor(AT_ONCE) as pool:
        outcomes = list(pool.map(_start_and_stop, [tmp_path / f"d{n}" for n in range(DAEMONS)]))
    wrong = [outcome for outcome in outcomes if outcome is not None]
    assert wrong == [], f"{len(wrong)} of {DAEMONS}"
