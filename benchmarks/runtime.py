"""Runtime benchmark: SIGTERM-to-exit latency and echo throughput, aiodaemon vs its peers.

Two tables, in one run:

* **SIGTERM to exit** of an idle service: each contender is started as a
  foreground child, prints ``ready`` once serving, is left idle a moment, then
  gets SIGTERM; the harness times ``kill()`` until the process has exited
  (pidfd readable). Contenders: aiodaemon (``detach=False, uvloop=True``),
  aiorun (``aiorun.run(main(), stop_on_unhandled_errors=True, use_uvloop=True)``),
  ``asyncio.run`` with ``loop.add_signal_handler(SIGTERM, stop)`` on uvloop and on
  the stdlib loop, and the *teardown* baseline: a bare interpreter whose SIGTERM
  handler calls ``sys.exit``. Each contender is also shown minus that baseline.
* **echo throughput**: ``examples/echo.py`` started as documented (detached, with
  pidfile and JSON log) vs the same ``handle`` served by ``asyncio.start_server``
  on bare ``uvloop.run``. Servers are pinned to CPU 0 and a uvloop load generator
  (protocol-based, so it is cheaper per request than the server it drives) to
  CPU 1: CONNS connections each do 64-byte request/response round trips for
  SECONDS; rounds alternate between the servers.

Run ``python benchmarks/runtime.py [--runs 20] [--rounds 5] [--seconds 3] [--quick]``.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import subprocess

_HERE = os.path.dirname(os.path.abspath(__file__))
# This directory holds logging.py, which would shadow the stdlib module for
# asyncio, structlog and aiodaemon: keep it importable (for _common) but last.
if sys.path and os.path.abspath(sys.path[0]) == _HERE:
    sys.path.append(sys.path.pop(0))

LATENCY = ("teardown", "aiodaemon", "aiorun", "asyncio.run+uvloop", "asyncio.run")
SERVERS = ("aiodaemon echo.py", "bare uvloop")


# --- contender processes (kept import-light: their start-up is not measured, but
# what they import is torn down at exit, which is) ---


def _say_ready() -> None:
    sys.stdout.write("ready\n")
    sys.stdout.flush()


def _latency_child(contender: str) -> None:
    """Run one idle contender until SIGTERM."""
    import signal

    if contender == "teardown":

        def leave(signum: int, frame: object) -> None:
            sys.exit(0)

        signal.signal(signal.SIGTERM, leave)
        _say_ready()
        while True:
            signal.pause()

    import asyncio

    import uvloop

    if contender == "aiodaemon":
        import aiodaemon

        async def main(ctx: aiodaemon.Context) -> None:
            _say_ready()
            await ctx.wait_stopping()

        aiodaemon.run(main, detach=False, uvloop=True)

    async def forever() -> None:
        _say_ready()
        await asyncio.Event().wait()

    async def until_sigterm() -> None:
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        _say_ready()
        await stop.wait()

    if contender == "aiorun":
        import aiorun

        aiorun.run(forever(), stop_on_unhandled_errors=True, use_uvloop=True)
    elif contender == "asyncio.run+uvloop":
        uvloop.run(until_sigterm())
    else:
        asyncio.run(until_sigterm())


def _bare_echo_child(port: int) -> None:
    """Serve examples/echo.py's own ``handle`` on bare uvloop."""
    import asyncio

    import uvloop

    sys.path.insert(0, os.path.join(os.path.dirname(_HERE), "examples"))
    # The very handler the aiodaemon contender runs.
    from echo import handle  # type: ignore[import-not-found]

    async def serve() -> None:
        server = await asyncio.start_server(handle, "127.0.0.1", port)
        _say_ready()
        async with server:
            await server.serve_forever()

    uvloop.run(serve())


# --- the harness ---


def _start_ready(argv: list[str], err: str) -> subprocess.Popen[bytes]:
    """Start ``argv`` and wait (deadline 30 s) for its ``ready`` line."""
    import select
    import subprocess

    from _common import child_env, read_text

    with open(err, "ab") as errfile:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=errfile, env=child_env()
        )
    assert proc.stdout is not None
    deadline = time.monotonic() + 30.0
    line = b""
    while not line.endswith(b"\n"):
        left = deadline - time.monotonic()
        if left <= 0 or not select.select([proc.stdout], [], [], left)[0]:
            proc.kill()
            proc.wait()
            raise SystemExit(f"{argv[-1]}: no ready line within 30 s\n{read_text(err)}")
        chunk = os.read(proc.stdout.fileno(), 64)
        if not chunk:
            proc.wait()
            raise SystemExit(f"{argv[-1]}: exited before ready\n{read_text(err)}")
        line += chunk
    return proc


def _sigterm_latency(contender: str, settle: float, err: str) -> float:
    """One run: start, wait ready, idle ``settle`` s, SIGTERM; return ms until exit."""
    import select
    import signal

    from _common import read_text

    proc = _start_ready([sys.executable, __file__, "--latency-child", contender], err)
    # Not synchronisation: the service is already ready; this lets it go idle
    # (log lines written, post-ready tasks run) before the signal.
    time.sleep(settle)
    pidfd = os.pidfd_open(proc.pid)
    try:
        start = time.monotonic()
        os.kill(proc.pid, signal.SIGTERM)
        exited = select.select([pidfd], [], [], 30.0)[0]
        elapsed = (time.monotonic() - start) * 1e3
    finally:
        os.close(pidfd)
    if not exited:
        proc.kill()
        proc.wait()
        raise SystemExit(f"{contender}: still running 30 s after SIGTERM")
    code = proc.wait()
    if proc.stdout is not None:
        proc.stdout.close()
    if code != 0:
        raise SystemExit(f"{contender}: exit status {code} after SIGTERM\n{read_text(err)}")
    return elapsed


def _latency_table(runs: int, settle: float, tmp: str) -> None:
    from _common import median, percentile, print_table

    err = os.path.join(tmp, "latency.stderr")
    samples: dict[str, list[float]] = {name: [] for name in LATENCY}
    for name in LATENCY:  # warm the page cache, unmeasured
        _sigterm_latency(name, settle, err)
    for _ in range(runs):
        for name in LATENCY:  # interleaved, so drift and other load hit everyone alike
            open(err, "wb").close()
            samples[name].append(_sigterm_latency(name, settle, err))
    base = median(samples["teardown"])
    rows = []
    for name in LATENCY:
        times = samples[name]
        rows.append(
            [
                name,
                f"{median(times):.1f}",
                f"{percentile(times, 90):.1f}",
                f"{median(times) - base:+.1f}",
                f"{percentile(times, 90) - base:+.1f}",
            ]
        )
    print_table(
        [
            f"SIGTERM to exit of an idle service, {runs} runs each, {os.cpu_count()} CPUs, "
            f"Python {sys.version.split()[0]}",
            "minus teardown = the contender's median/p90 minus the bare interpreter's median",
        ],
        ["contender", "median ms", "p90 ms", "median - teardown", "p90 - teardown"],
        rows,
    )


def _throughput_table(rounds: int, seconds: float, conns: int, tmp: str) -> None:
    import json
    import subprocess

    from _common import child_env, median, pinned, print_table, read_text, stop_process
    from _echo_load import PAYLOAD, free_port

    err = os.path.join(tmp, "echo.stderr")
    ports = {name: free_port() for name in SERVERS}
    pidfile = os.path.join(tmp, "echo.pid")
    with pinned({0}):
        # Detached, exactly as the README starts it: the launcher exits 0 once ready.
        argv = [sys.executable, os.path.join(os.path.dirname(_HERE), "examples", "echo.py")]
        argv += ["--listen", f"127.0.0.1:{ports[SERVERS[0]]}", "--pidfile", pidfile]
        argv += ["--log-file", os.path.join(tmp, "echo.jsonl")]
        with open(err, "ab") as errfile:
            launched = subprocess.run(argv, stderr=errfile, env=child_env(), timeout=30)
        if launched.returncode != 0:
            raise SystemExit(f"echo.py failed to start\n{read_text(err)}")
        with open(pidfile) as file:
            daemon_pid = int(file.read())
        bare_argv = [sys.executable, __file__, "--echo-child", str(ports[SERVERS[1]])]
        bare = _start_ready(bare_argv, err)
    pids = {SERVERS[0]: daemon_pid, SERVERS[1]: bare.pid}
    rates: dict[str, list[float]] = {name: [] for name in SERVERS}
    efficiency: dict[str, list[float]] = {name: [] for name in SERVERS}
    busy: dict[str, list[float]] = {name: [] for name in SERVERS}
    try:
        for _ in range(rounds):
            for name in SERVERS:  # alternating, so drift hits both alike
                load = [sys.executable, __file__, "--load-child", str(ports[name])]
                load += [str(pids[name]), str(conns), str(seconds)]
                with pinned({1}):
                    out = subprocess.run(
                        load,
                        capture_output=True,
                        text=True,
                        env=child_env(),
                        timeout=seconds + 30,
                        check=True,
                    )
                result = json.loads(out.stdout)
                if result["rps"] <= 0:
                    raise SystemExit(f"{name}: no round trip completed\n{out.stderr}")
                rates[name].append(result["rps"])
                efficiency[name].append(result["per_cpu_s"])
                busy[name].append(result["server_busy"] * 100)
    finally:
        stop_process(daemon_pid)
        stop_process(bare.pid)
        bare.wait()
        if bare.stdout is not None:
            bare.stdout.close()
    base = median(rates[SERVERS[1]])
    base_cpu = median(efficiency[SERVERS[1]])
    rows = [
        [
            name,
            f"{median(rates[name]):,.0f}",
            f"{min(rates[name]):,.0f}",
            f"{max(rates[name]):,.0f}",
            f"{median(rates[name]) / base:.3f}",
            f"{median(efficiency[name]):,.0f}",
            f"{median(efficiency[name]) / base_cpu:.3f}",
            f"{median(busy[name]):.0f}%",
        ]
        for name in SERVERS
    ]
    print_table(
        [
            f"echo throughput, {PAYLOAD}-byte round trips, {conns} connections, "
            f"{rounds} rounds of {seconds:g} s, server on CPU 0, load generator on CPU 1",
            "req/s per wall second (median, min, max over rounds); "
            "req/CPU-s = round trips per second of server CPU (steady under other load);",
            "server CPU = how busy the server was (median): below ~95% it shared its core",
        ],
        ["server", "median req/s", "min", "max", "vs bare", "req/CPU-s", "vs bare", "server CPU"],
        rows,
    )


def main() -> None:
    """Run both measurements and print their tables."""
    import argparse
    import tempfile

    from _common import become_subreaper, check_no_children
    from _echo_load import run_load_child

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=20, help="SIGTERM runs per contender")
    parser.add_argument("--settle", type=float, default=0.2, help="idle seconds before SIGTERM")
    parser.add_argument("--rounds", type=int, default=8, help="throughput rounds per server")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one round")
    parser.add_argument("--conns", type=int, default=16, help="concurrent connections")
    parser.add_argument("--quick", action="store_true", help="5 runs, 2 rounds of 1 s")
    parser.add_argument("--latency-child", metavar="CONTENDER")
    parser.add_argument("--echo-child", type=int, metavar="PORT")
    parser.add_argument("--load-child", nargs=4, metavar=("PORT", "PID", "CONNS", "SECONDS"))
    args = parser.parse_args()
    if args.latency_child:
        _latency_child(args.latency_child)
        return
    if args.echo_child:
        _bare_echo_child(args.echo_child)
        return
    if args.load_child:
        port, pid, conns, seconds = args.load_child
        run_load_child(int(port), int(pid), int(conns), float(seconds))
        return
    if args.quick:
        args.runs, args.rounds, args.seconds = 5, 2, 1.0

    # The detached echo daemon is reparented to us, so we can reap it.
    become_subreaper()
    with tempfile.TemporaryDirectory() as tmp:
        _latency_table(args.runs, args.settle, tmp)
        _throughput_table(args.rounds, args.seconds, args.conns, tmp)
    check_no_children()


if __name__ == "__main__":
    main()
