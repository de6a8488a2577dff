"""Logging benchmark: aiodaemon's queued writer vs structlog writing from the loop vs stdlib.

Two measurements per contender, each in a fresh child process (logging
configuration is global state) writing to a file on the same filesystem:

* **max lines/s**: the loop logs N records as fast as it can; the clock stops
  when every line is on disk (for aiodaemon: after ``close()`` drained the queue);
* **loop lag at RATE lines/s**: a producer task logs at a steady RATE while a
  ticker sleeps 1 ms at a time; lag = how late each tick wakes (p50, p99, max).

Run ``python benchmarks/logging.py [--rate 50000] [--lines 200000] [--repeat 3]``.
Every figure is the median over ``--repeat`` runs.
"""

from __future__ import annotations

import sys

# This file is named logging.py: as a script its directory comes first on
# sys.path and would shadow the stdlib module it measures.
if sys.path and sys.path[0] == __file__.rpartition("/")[0]:
    del sys.path[0]

import argparse
import asyncio
import json
import logging
import os
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Coroutine
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
CONTENDERS = ["aiodaemon", "structlog-direct", "stdlib-FileHandler"]


def _setup(contender: str, path: Path) -> tuple[Callable[[int], None], Callable[[], None]]:
    """Configure one contender; return (log one numbered record, finish and flush)."""
    if contender == "aiodaemon":
        import structlog

        from aiodaemon._logs._logging import start_logging
        from aiodaemon._prefork._config import parse_options
        from aiodaemon._prefork._logsinks import open_log_targets

        options = parse_options({"log_file": str(path)})
        writer = start_logging(open_log_targets(options), options, detached=True)
        log = structlog.get_logger("bench")

        def finish() -> None:
            assert writer.close(60.0), "writer did not drain"
            assert writer.dropped == 0, f"{writer.dropped} records dropped"

        return (lambda n: log.info("request handled", n=n, path="/index.html", status=200)), finish
    if contender == "structlog-direct":
        import orjson
        import structlog

        from aiodaemon._logs._logchain import processors, set_pid

        set_pid(os.getpid())
        file = path.open("ab")
        # The same processor chain as aiodaemon, writing (and flushing) from the loop;
        # BytesLogger adds the newline itself.
        chain = processors("json", colors=False)
        chain[-1] = lambda _, __, event_dict: orjson.dumps(
            event_dict, default=repr, option=orjson.OPT_NON_STR_KEYS
        )
        structlog.configure(
            processors=chain,
            wrapper_class=structlog.make_filtering_bound_logger(logging.INFO),
            logger_factory=structlog.BytesLoggerFactory(file),
            context_class=dict,
            cache_logger_on_first_use=True,
        )
        log = structlog.get_logger("bench")
        return (
            lambda n: log.info("request handled", n=n, path="/index.html", status=200)
        ), file.close
    handler = logging.FileHandler(path)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s %(message)s"))
    stdlib = logging.getLogger("bench")
    stdlib.addHandler(handler)
    stdlib.setLevel(logging.INFO)
    stdlib.propagate = False
    return (
        lambda n: stdlib.info("request handled n=%d path=%s status=%d", n, "/index.html", 200)
    ), handler.close


async def _max_rate(emit: Callable[[int], None], finish: Callable[[], None], lines: int) -> float:
    start = time.perf_counter()
    for chunk in range(0, lines, 1000):
        for n in range(chunk, min(chunk + 1000, lines)):
            emit(n)
        await asyncio.sleep(0)  # let the loop breathe, as a real service would
    finish()
    return lines / (time.perf_counter() - start)


async def _lag_at(emit: Callable[[int], None], rate: int, seconds: float) -> dict[str, float]:
    lags: list[float] = []
    done = False

    async def ticker() -> None:
        while not done:
            before = time.perf_counter()
            await asyncio.sleep(0.001)
            # uvloop rounds timers to whole ms and may wake a hair early: count that as 0.
            lags.append(max(0.0, time.perf_counter() - before - 0.001))

    async def producer() -> int:
        start = time.perf_counter()
        sent = 0
        while (elapsed := time.perf_counter() - start) < seconds:
            # Catch up with the schedule, so the average rate holds despite jitter.
            due = int(elapsed * rate)
            while sent < due:
                emit(sent)
                sent += 1
            await asyncio.sleep(0.0005)
        return sent

    tick = asyncio.create_task(ticker())
    sent = await producer()
    done = True
    await tick
    lags.sort()
    return {
        "p50": lags[len(lags) // 2] * 1e3,
        "p99": lags[int(len(lags) * 0.99)] * 1e3,
        "lagmax": lags[-1] * 1e3,
        "rate": sent / seconds,
    }


def _child(contender: str, mode: str, path: Path, args: argparse.Namespace) -> dict[str, Any]:
    run: Callable[[Coroutine[Any, Any, Any]], Any] = asyncio.run
    if args.uvloop:
        import uvloop

        # Not uvloop.install(): deprecated from Python 3.12, as event-loop policies are from 3.14.
        run = uvloop.run
    emit, finish = _setup(contender, path)
    if mode == "max":
        rate = run(_max_rate(emit, finish, args.lines))
        written = sum(1 for _ in path.open("rb"))
        return {"max": rate, "written": written}
    result = run(_lag_at(emit, args.rate, args.seconds))
    finish()
    return result


def _run(contender: str, mode: str, args: argparse.Namespace, tmp: Path) -> dict[str, Any]:
    path = tmp / f"{contender}-{mode}.log"
    path.unlink(missing_ok=True)
    cmd = [sys.executable, __file__, "--child", contender, mode, str(path)]
    cmd += ["--lines", str(args.lines), "--rate", str(args.rate), "--seconds", str(args.seconds)]
    cmd += ["--uvloop"] if args.uvloop else []
    env = dict(os.environ, PYTHONPATH=str(REPO))
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True).stdout
    result: dict[str, Any] = json.loads(out)
    if mode == "max" and result["written"] != args.lines:
        raise SystemExit(f"{contender}: wrote {result['written']} of {args.lines} lines")
    path.unlink(missing_ok=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=int, default=50_000)
    parser.add_argument("--lines", type=int, default=200_000)
    parser.add_argument("--seconds", type=float, default=3.0)
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--uvloop", action=argparse.BooleanOptionalAction, default=True)
    parser.add_argument("--child", nargs=3, metavar=("CONTENDER", "MODE", "PATH"))
    args = parser.parse_args()
    if args.child:
        contender, mode, path = args.child
        print(json.dumps(_child(contender, mode, Path(path), args)))
        return

    results: dict[str, dict[str, list[float]]] = {c: {} for c in CONTENDERS}
    with tempfile.TemporaryDirectory(dir=os.environ.get("BENCH_DIR")) as tmp:
        for _ in range(args.repeat):
            for contender in CONTENDERS:  # interleaved, so drift hits everyone alike
                for mode in ("max", "lag"):
                    for key, value in _run(contender, mode, args, Path(tmp)).items():
                        results[contender].setdefault(key, []).append(value)
    med = {c: {k: statistics.median(v) for k, v in r.items()} for c, r in results.items()}
    base = med["structlog-direct"]["max"]
    loop = "uvloop" if args.uvloop else "asyncio"
    print(f"\nlogging to a file, {loop}, median of {args.repeat} runs, {os.cpu_count()} CPUs")
    print(f"lag = how late a 1 ms ticker wakes while logging {args.rate:,} lines/s\n")
    header = (
        f"{'contender':<20} {'max lines/s':>12} {'vs direct':>9} {'achieved/s':>11} "
        f"{'lag p50 ms':>11} {'lag p99 ms':>11} {'lag max ms':>11}"
    )
    print(header)
    print("-" * len(header))
    for contender in CONTENDERS:
        m = med[contender]
        print(
            f"{contender:<20} {m['max']:>12,.0f} {m['max'] / base:>9.2f} {m['rate']:>11,.0f} "
            f"{m['p50']:>11.3f} {m['p99']:>11.3f} {m['lagmax']:>11.3f}"
        )


if __name__ == "__main__":
    main()
