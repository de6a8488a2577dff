"""Serving benchmark: graceful stop under load, a rolling update, echo throughput, /livez latency.

Four tables, in one run, loopback only:

* **graceful stop under load**: CONNS (1,000) concurrent HTTP/1.1 requests, each
  answered after HOLD seconds, are in flight when the server gets SIGTERM; a
  request fails unless its full response arrives. Contenders: aiodaemon serving
  through ``ctx.start_server`` with no hook of its own, uvicorn (its own graceful
  shutdown) with the same ASGI-free-ish handler, and a plain
  ``asyncio.start_server`` program that calls ``server.close()`` on SIGTERM.
* **rolling update**: two aiodaemon instances behind a round-robin client (a new
  connection per request, like kube-proxy) whose "endpoint controller" polls each
  instance's ``/readyz`` every second and removes an instance from rotation only
  once it answers 503 (or nothing). Mid-traffic one instance gets SIGTERM: with
  ``drain_delay=2`` and with ``drain_delay=0``, failed requests side by side.
* **echo throughput**: 64-byte round trips through ``ctx.start_server`` vs the
  same handler on ``asyncio.start_server`` on bare uvloop; server pinned to CPU 0,
  load generator to CPU 1, rounds alternating.
* **/livez latency under that load**: probes every 10 ms on the aiodaemon server's
  health port while the echo load runs.

Run ``python benchmarks/serving.py [--quick]``.
"""

from __future__ import annotations

import os
import sys
import time
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import asyncio
    import subprocess

_HERE = os.path.dirname(os.path.abspath(__file__))
# This directory holds logging.py, which would shadow the stdlib module: keep it last.
if sys.path and os.path.abspath(sys.path[0]) == _HERE:
    sys.path.append(sys.path.pop(0))

STOP_CONTENDERS = ("aiodaemon ctx.start_server", "uvicorn", "asyncio + server.close()")
ECHO_SERVERS = ("aiodaemon ctx.start_server", "bare uvloop")
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: close\r\n\r\ndone\n"


# --- server processes ---------------------------------------------------------------


def _say(line: str) -> None:
    sys.stdout.write(line + "\n")
    sys.stdout.flush()


async def _http_handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Read one request's head, think HOLD seconds, answer, close."""
    import asyncio

    try:
        while (await reader.readline()) not in (b"\r\n", b"\n", b""):
            pass
        await asyncio.sleep(float(os.environ.get("BENCH_HOLD", "1")))
        writer.write(RESPONSE)
        await writer.drain()
    finally:
        writer.close()


async def _echo_handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    """Echo every chunk back until the client closes (examples/echo.py's handler)."""
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    finally:
        writer.close()


def _aiodaemon_child(kind: str, port: int, health: int, drain_delay: float) -> None:
    import aiodaemon

    handler = _http_handle if kind == "http" else _echo_handle

    async def main(ctx: aiodaemon.Context) -> None:
        await ctx.start_server(handler, "bench")
        _say("ready")
        await ctx.wait_stopping()

    options: dict[str, Any] = {}
    if health:
        options["health"] = f"127.0.0.1:{health}"
    aiodaemon.run(
        main,
        detach=False,
        uvloop=True,
        listen={"bench": f"127.0.0.1:{port}"},
        drain_delay=drain_delay,
        log_level="warning",
        **options,
    )


def _plain_child(kind: str, port: int) -> None:
    """The program most people write: close the server on SIGTERM and return."""
    import asyncio
    import signal

    import uvloop

    handler = _http_handle if kind == "http" else _echo_handle

    async def serve() -> None:
        server = await asyncio.start_server(handler, "127.0.0.1", port, backlog=4096)
        stop = asyncio.Event()
        asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
        _say("ready")
        await stop.wait()
        server.close()
        await server.wait_closed()

    uvloop.run(serve())


def _uvicorn_child(port: int) -> None:
    import asyncio

    import uvicorn

    hold = float(os.environ.get("BENCH_HOLD", "1"))

    async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
        await asyncio.sleep(hold)
        # The same bytes as the other contenders: a length, and no keep-alive.
        headers = [(b"content-length", b"5"), (b"connection", b"close")]
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        await send({"type": "http.response.body", "body": b"done\n"})

    config = uvicorn.Config(
        app,
        host="127.0.0.1",
        port=port,
        loop="uvloop",
        lifespan="off",
        log_level="warning",
        backlog=4096,
    )
    server = uvicorn.Server(config)
    _say("ready")  # uvicorn binds before serving; the harness also waits for the port
    server.run()


# --- clients ------------------------------------------------------------------------


async def _request(port: int, limit: float) -> bool:
    """One HTTP request on a new connection; True when the whole response arrived in time."""
    import asyncio

    try:
        async with asyncio.timeout(limit):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            try:
                writer.write(b"GET / HTTP/1.1\r\nHost: bench\r\n\r\n")
                await writer.drain()
                response = await reader.read()
            finally:
                writer.close()
    except (OSError, TimeoutError):
        return False
    return response.startswith(b"HTTP/1.1 200") and response.endswith(b"done\n")


def _wait_port(port: int, timeout: float = 30.0) -> None:
    import socket

    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise SystemExit(f"nothing listens on {port} after {timeout} s") from None
            time.sleep(0.05)


def _start(argv: list[str], err: str, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
    """Start a server child and wait (30 s at most) for its ``ready`` line."""
    import select
    import subprocess

    from _common import child_env, read_text

    with open(err, "ab") as errfile:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=errfile,
            env={**child_env(), **(env or {})},
        )
    assert proc.stdout is not None
    if not select.select([proc.stdout], [], [], 30.0)[0] or not proc.stdout.readline():
        proc.kill()
        proc.wait()
        raise SystemExit(f"{argv[2:]}: not ready\n{read_text(err)}")
    return proc


# --- 1. graceful stop under load ----------------------------------------------------


def _graceful_stop(contender: str, conns: int, hold: float, tmp: str) -> tuple[int, int, float]:
    """Start ``contender``, put ``conns`` requests in flight, SIGTERM; (ok, failed, exit s)."""
    import asyncio
    import signal

    import uvloop
    from _common import wait_exit
    from _echo_load import free_port

    port = free_port()
    err = os.path.join(tmp, "stop.stderr")
    me = [sys.executable, __file__]
    argv = {
        STOP_CONTENDERS[0]: [*me, "--aiodaemon-child", "http", str(port), "0", "0"],
        STOP_CONTENDERS[1]: [*me, "--uvicorn-child", str(port)],
        STOP_CONTENDERS[2]: [*me, "--plain-child", "http", str(port)],
    }[contender]
    proc = _start(argv, err, {"BENCH_HOLD": str(hold)})
    _wait_port(port)

    async def run() -> tuple[int, int, float]:
        requests = [asyncio.create_task(_request(port, hold + 30)) for _ in range(conns)]
        # Every request is sent long before its HOLD is over: in flight at SIGTERM.
        await asyncio.sleep(min(hold / 2, 0.5))
        started = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        results = await asyncio.gather(*requests)
        await asyncio.to_thread(wait_exit, proc.pid, hold + 30)
        ok = sum(results)
        return ok, conns - ok, time.monotonic() - started

    try:
        return uvloop.run(run())
    finally:
        proc.kill()
        proc.wait()
        if proc.stdout is not None:
            proc.stdout.close()


def _graceful_table(conns: int, hold: float, tmp: str) -> None:
    import resource

    from _common import print_table

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, 4 * conns)), hard))
    rows = []
    for name in STOP_CONTENDERS:
        try:
            import uvicorn  # noqa: F401
        except ImportError:
            if name == "uvicorn":
                rows.append([name, "-", "-", "not installed"])
                continue
        ok, failed, seconds = _graceful_stop(name, conns, hold, tmp)
        rows.append([name, f"{ok}", f"{failed}", f"{seconds:.2f}"])
    print_table(
        [
            f"graceful stop under load: {conns} concurrent requests, each answered after "
            f"{hold:g} s, SIGTERM while all are in flight",
            "failed = no complete response (refused, reset or cut short)",
        ],
        ["server", "completed", "failed", "SIGTERM to last answer + exit s"],
        rows,
    )


# --- 2. rolling update --------------------------------------------------------------


def _rolling_update(drain_delay: float, workers: int, seconds: float, tmp: str) -> dict[str, int]:
    """Two instances behind a readiness-polling round-robin client; stop one midway."""
    import asyncio
    import itertools
    import signal

    import uvloop
    from _echo_load import free_port

    err = os.path.join(tmp, "rolling.stderr")
    instances = []
    for _ in range(2):
        port, health = free_port(), free_port()
        argv = [sys.executable, __file__, "--aiodaemon-child", "http", str(port), str(health)]
        proc = _start([*argv, str(drain_delay)], err, {"BENCH_HOLD": "0.02"})
        instances.append((proc, port, health))

    async def readyz(health: int) -> bool:
        try:
            async with asyncio.timeout(1.0):
                reader, writer = await asyncio.open_connection("127.0.0.1", health)
                writer.write(b"GET /readyz HTTP/1.1\r\nHost: lb\r\n\r\n")
                answer = await reader.read()
                writer.close()
        except (OSError, TimeoutError):
            return False
        return answer.startswith(b"HTTP/1.1 200")

    async def run() -> dict[str, int]:
        rotation = [port for _, port, _ in instances]
        counts = {"ok": 0, "failed": 0}
        stop = asyncio.Event()
        turn = itertools.count()

        async def controller() -> None:
            # An endpoint controller: one poll per second per instance.
            while not stop.is_set():
                for _, port, health in instances:
                    if port in rotation and not await readyz(health):
                        rotation.remove(port)
                await asyncio.sleep(1.0)

        async def worker() -> None:
            while not stop.is_set():
                if not rotation:
                    await asyncio.sleep(0.01)
                    continue
                port = rotation[next(turn) % len(rotation)]
                counts["ok" if await _request(port, 10) else "failed"] += 1

        tasks = [asyncio.create_task(controller())]
        tasks += [asyncio.create_task(worker()) for _ in range(workers)]
        await asyncio.sleep(seconds / 2)
        instances[0][0].send_signal(signal.SIGTERM)
        await asyncio.sleep(seconds / 2)
        stop.set()
        await asyncio.gather(*tasks)
        return counts

    try:
        return uvloop.run(run())
    finally:
        for proc, _, _ in instances:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()


def _rolling_table(workers: int, seconds: float, tmp: str) -> None:
    from _common import print_table

    rows = []
    for delay in (2.0, 0.0):
        counts = _rolling_update(delay, workers, seconds, tmp)
        rows.append([f"drain_delay={delay:g}", f"{counts['ok']:,}", f"{counts['failed']:,}"])
    print_table(
        [
            f"rolling update: 2 instances, {workers} clients (new connection per request, "
            f"20 ms handler), {seconds:g} s; one instance gets SIGTERM at {seconds / 2:g} s;",
            "it leaves the rotation once its /readyz is not 200, polled every 1 s",
        ],
        ["stopped instance", "requests ok", "failed"],
        rows,
    )


# --- 3 and 4. echo throughput and /livez latency under load -------------------------


def _probe_livez(health: int, until: float) -> list[float]:
    """GET /livez every 10 ms until ``until``; the latencies in ms."""
    import socket

    latencies = []
    while time.monotonic() < until:
        started = time.perf_counter()
        with socket.create_connection(("127.0.0.1", health), timeout=5) as sock:
            sock.sendall(b"GET /livez HTTP/1.1\r\nHost: probe\r\n\r\n")
            answer = b""
            while chunk := sock.recv(4096):
                answer += chunk
        if not answer.startswith(b"HTTP/1.1 200"):
            raise SystemExit(f"/livez answered {answer[:40]!r}")
        latencies.append((time.perf_counter() - started) * 1e3)
        time.sleep(0.01)
    return latencies


def _echo_tables(rounds: int, seconds: float, conns: int, tmp: str) -> None:
    import json
    import subprocess
    import threading

    from _common import child_env, median, percentile, pinned, print_table
    from _echo_load import PAYLOAD, free_port

    err = os.path.join(tmp, "echo.stderr")
    ports = {name: free_port() for name in ECHO_SERVERS}
    health = free_port()
    me = [sys.executable, __file__]
    with pinned({0}):
        servers = {
            ECHO_SERVERS[0]: _start(
                [*me, "--aiodaemon-child", "echo", str(ports[ECHO_SERVERS[0]]), str(health), "0"],
                err,
            ),
            ECHO_SERVERS[1]: _start(
                [*me, "--plain-child", "echo", str(ports[ECHO_SERVERS[1]])], err
            ),
        }
    rates: dict[str, list[float]] = {name: [] for name in ECHO_SERVERS}
    per_cpu: dict[str, list[float]] = {name: [] for name in ECHO_SERVERS}

    def drive(name: str) -> dict[str, float]:
        load = [*me, "--load-child", str(ports[name]), str(servers[name].pid)]
        load += [str(conns), str(seconds)]
        with pinned({1}):
            out = subprocess.run(
                load,
                capture_output=True,
                text=True,
                env=child_env(),
                timeout=seconds + 30,
                check=True,
            )
        result: dict[str, float] = json.loads(out.stdout)
        return result

    idle = _probe_livez(health, time.monotonic() + min(seconds, 2.0))
    loaded: list[float] = []
    try:
        for _ in range(rounds):
            for name in ECHO_SERVERS:  # alternating, so drift hits both alike
                result = drive(name)
                rates[name].append(result["rps"])
                per_cpu[name].append(result["per_cpu_s"])
        # Probes cost the server CPU too: measured in rounds of their own.
        for _ in range(max(1, rounds // 2)):
            until = time.monotonic() + seconds
            probe = threading.Thread(
                target=lambda until=until: loaded.extend(_probe_livez(health, until))
            )
            probe.start()
            drive(ECHO_SERVERS[0])
            probe.join()
    finally:
        for proc in servers.values():
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
    base = median(rates[ECHO_SERVERS[1]])
    base_cpu = median(per_cpu[ECHO_SERVERS[1]])
    print_table(
        [
            f"echo throughput, {PAYLOAD}-byte round trips, {conns} connections, {rounds} rounds "
            f"of {seconds:g} s, server on CPU 0, load generator on CPU 1",
            "req/CPU-s = round trips per second of server CPU (steady under other load)",
        ],
        ["server", "median req/s", "min", "max", "vs bare", "req/CPU-s", "vs bare"],
        [
            [
                name,
                f"{median(rates[name]):,.0f}",
                f"{min(rates[name]):,.0f}",
                f"{max(rates[name]):,.0f}",
                f"{median(rates[name]) / base:.3f}",
                f"{median(per_cpu[name]):,.0f}",
                f"{median(per_cpu[name]) / base_cpu:.3f}",
            ]
            for name in ECHO_SERVERS
        ],
    )
    print_table(
        ["GET /livez on the aiodaemon echo server's health port, one probe every 10 ms"],
        ["while", "probes", "p50 ms", "p90 ms", "p99 ms", "max ms"],
        [
            [
                label,
                f"{len(samples)}",
                f"{percentile(samples, 50):.2f}",
                f"{percentile(samples, 90):.2f}",
                f"{percentile(samples, 99):.2f}",
                f"{max(samples):.2f}",
            ]
            for label, samples in (("idle", idle), (f"echo load, {conns} conns", loaded))
        ],
    )


def main() -> None:
    """Run the measurements and print their tables."""
    import argparse
    import tempfile

    from _common import become_subreaper, check_no_children
    from _echo_load import run_load_child

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conns", type=int, default=1000, help="requests in flight at SIGTERM")
    parser.add_argument("--hold", type=float, default=2.0, help="seconds each request takes")
    parser.add_argument("--workers", type=int, default=20, help="rolling-update clients")
    parser.add_argument("--rolling", type=float, default=8.0, help="rolling-update seconds")
    parser.add_argument("--rounds", type=int, default=6, help="echo rounds per server")
    parser.add_argument("--seconds", type=float, default=2.0, help="length of one echo round")
    parser.add_argument("--echo-conns", type=int, default=16, help="echo connections")
    parser.add_argument("--quick", action="store_true", help="fewer, shorter rounds")
    parser.add_argument(
        "--only", choices=["stop", "rolling", "echo"], help="one measurement instead of all"
    )
    parser.add_argument("--aiodaemon-child", nargs=4, metavar=("KIND", "PORT", "HEALTH", "DRAIN"))
    parser.add_argument("--plain-child", nargs=2, metavar=("KIND", "PORT"))
    parser.add_argument("--uvicorn-child", type=int, metavar="PORT")
    parser.add_argument("--load-child", nargs=4, metavar=("PORT", "PID", "CONNS", "SECONDS"))
    args = parser.parse_args()
    if args.aiodaemon_child:
        kind, port, health, drain = args.aiodaemon_child
        _aiodaemon_child(kind, int(port), int(health), float(drain))
    elif args.plain_child:
        _plain_child(args.plain_child[0], int(args.plain_child[1]))
    elif args.uvicorn_child:
        _uvicorn_child(args.uvicorn_child)
    elif args.load_child:
        port, pid, conns, seconds = args.load_child
        run_load_child(int(port), int(pid), int(conns), float(seconds))
    else:
        if args.quick:
            args.rounds, args.seconds, args.rolling = 2, 1.0, 6.0
        become_subreaper()
        with tempfile.TemporaryDirectory(prefix="aiodaemon-bench-") as tmp:
            if args.only in (None, "stop"):
                _graceful_table(args.conns, args.hold, tmp)
            if args.only in (None, "rolling"):
                _rolling_table(args.workers, args.rolling, tmp)
            if args.only in (None, "echo"):
                _echo_tables(args.rounds, args.seconds, args.echo_conns, tmp)
        check_no_children()


if __name__ == "__main__":
    main()
