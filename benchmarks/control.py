"""Control-command benchmark: ``aiodaemon status`` of a running daemon vs ``python -c pass``.

Operators script the control commands (deploy tools, cron checks, systemd's
``ExecReload=``), so each one should cost little more than starting Python.
One daemon (tests/programs/idle.py, detached, with a pidfile and so a control
socket) and a second one without a control socket run for the whole
benchmark; the contenders are started in turn, in a shuffled order each round
(``_common.round_order``), so the machine's load hits them alike:

* **python -c pass**: the floor, an interpreter that does nothing;
* **status**: ``aiodaemon status --pidfile P`` (asks the control socket);
* **status --json**: the same, one JSON object;
* **status, pidfile only**: a daemon started with ``control=False``;
* **status, runtime imported**: the CLI with asyncio, structlog and the
  runtime imported first, as every control command did before they were split
  from the run side;
* **reload**: ``aiodaemon reload --pidfile P``, waiting for the (empty) reload.

The table shows the median and 90th percentile wall time of each and the
median's ratio to ``python -c pass``; then the median CPU time (user + system
of the command's own process, from ``RUSAGE_CHILDREN``), which a loaded
machine disturbs much less, and its ratio. Goal: status <= 3x.

Run ``python benchmarks/control.py [--runs 40] [--quick]`` (~15 s; --quick ~5 s).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

_HERE = os.path.dirname(os.path.abspath(__file__))
# This directory holds logging.py, which would shadow the stdlib module.
if sys.path and os.path.abspath(sys.path[0]) == _HERE:
    sys.path.append(sys.path.pop(0))

from _common import REPO, child_env, median, percentile, print_table, round_order  # noqa: E402

IDLE = REPO / "tests" / "programs" / "idle.py"

OLD_PATH = (
    "import sys, asyncio, structlog, aiodaemon._daemon, aiodaemon._run._runtime; "
    "from aiodaemon._cli._main import main; sys.exit(main(sys.argv[1:]))"
)


def _cli() -> list[str]:
    """The console script next to this interpreter, else ``python -m aiodaemon``."""
    script = Path(sys.executable).parent / "aiodaemon"
    return [str(script)] if script.exists() else [sys.executable, "-m", "aiodaemon"]


def _start(pidfile: Path, env: dict[str, str], **options: object) -> None:
    options = {"pidfile": str(pidfile), "detach": True, **options}
    subprocess.run(
        [sys.executable, str(IDLE), json.dumps(options)], env=env, check=True, timeout=60
    )


def _stop(pidfile: Path, env: dict[str, str]) -> None:
    subprocess.run(
        [*_cli(), "stop", "--pidfile", str(pidfile)],
        env=env,
        capture_output=True,
        check=False,
        timeout=60,
    )


def _time(command: list[str], env: dict[str, str], cwd: str) -> tuple[float, float]:
    """Wall time, and CPU time (user + system) of the command's process.

    Run in ``cwd``, not where the benchmark was started: ``python -c`` puts the
    current directory first on ``sys.path``, and this one's logging.py would
    shadow the stdlib module.
    """
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    began = time.perf_counter()
    result = subprocess.run(command, env=env, cwd=cwd, capture_output=True, check=False, timeout=60)
    elapsed = time.perf_counter() - began
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed: {result.stderr.decode(errors='replace')}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return elapsed, cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=40, help="runs of each contender")
    parser.add_argument("--quick", action="store_true", help="10 runs each")
    args = parser.parse_args()
    if args.quick:
        args.runs = 10

    with tempfile.TemporaryDirectory(prefix="aiodaemon-bench-") as tmp:
        # Cached bytecode for every module, as an installed package has it.
        env = child_env(str(Path(tmp) / "pycache"))
        with_control = Path(tmp) / "with.pid"
        without = Path(tmp) / "without.pid"
        _start(with_control, env)
        _start(without, env, control=False)
        try:
            cli = _cli()
            status_args = ["status", "--pidfile", str(with_control)]
            contenders = {
                "python -c pass": [sys.executable, "-c", "pass"],
                "status": [*cli, "status", "--pidfile", str(with_control)],
                "status --json": [*cli, "status", "--json", "--pidfile", str(with_control)],
                "status, pidfile only": [*cli, "status", "--pidfile", str(without)],
                "status, runtime imported": [sys.executable, "-c", OLD_PATH, *status_args],
                "reload": [*cli, "reload", "--pidfile", str(with_control)],
            }
            times: dict[str, list[float]] = {name: [] for name in contenders}
            cpu: dict[str, list[float]] = {name: [] for name in contenders}
            for command in contenders.values():
                _time(command, env, tmp)  # fill the page cache and the bytecode cache
            for round_ in range(args.runs):
                for name in round_order(tuple(contenders), round_):
                    wall, used = _time(contenders[name], env, tmp)
                    times[name].append(wall)
                    cpu[name].append(used)
        finally:
            _stop(with_control, env)
            _stop(without, env)

    floor = median(times["python -c pass"])
    cpu_floor = median(cpu["python -c pass"])
    rows = [
        [
            name,
            f"{median(samples) * 1000:.1f}",
            f"{percentile(samples, 90) * 1000:.1f}",
            f"{median(samples) / floor:.2f}x",
            f"{median(cpu[name]) * 1000:.1f}",
            f"{median(cpu[name]) / cpu_floor:.2f}x",
        ]
        for name, samples in times.items()
    ]
    print_table(
        [
            f"Control commands of a running daemon, {args.runs} runs each, shuffled rounds",
            f"({sys.implementation.name} {sys.version.split()[0]}, {os.cpu_count()} CPUs)",
        ],
        ["command", "median ms", "p90 ms", "vs python -c pass", "cpu ms", "cpu vs pass"],
        rows,
    )


if __name__ == "__main__":
    main()
