"""Upgrade benchmark: requests lost while a live service is replaced, side by side.

One run, loopback only. For each contender the service starts, a load
generator (a separate process, uvloop) sends requests without pause — FRESH
workers each opening a new connection per request and KEEPALIVE workers
reusing theirs — while the service is replaced ROUNDS (20) times back to back:

* **aiodaemon upgrade**: ``aiodaemon upgrade --pidfile P`` (sockets and the
  locked pidfile handed to the new process, which must be ready first);
* **aiodaemon restart**: ``aiodaemon restart ...`` (stop, then start);
* **gunicorn USR2**: gunicorn's documented binary upgrade: USR2 to the master,
  wait until the new master's worker is up, WINCH then QUIT to the old master.

Counted as failed: refused and reset connections, requests unanswered within
5 s, and non-2xx answers. A keep-alive connection the server closes while
idle, before reading the request sent on it, is retried on a new connection
as HTTP clients do (RFC 9112, 9.3.1) and counted apart ("retried").
Also printed: p99 latency over the whole run, the cut-over (the request, to
the old process gone: its sockets closed), and a probe that tries ``flock``
on the pidfile every millisecond (a free lock, or no file, is a lapse:
another ``aiodaemon start`` could have started a second daemon then).

Run ``python benchmarks/upgrade.py [--rounds N]`` (gunicorn from the bench extra).
"""

from __future__ import annotations

import os
import sys

_HERE = os.path.dirname(os.path.abspath(__file__))
# This directory holds logging.py, which would shadow the stdlib module: keep it last.
if sys.path and os.path.abspath(sys.path[0]) == _HERE:
    sys.path.append(sys.path.pop(0))

import argparse  # noqa: E402
import contextlib  # noqa: E402
import fcntl  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import signal  # noqa: E402
import socket  # noqa: E402
import subprocess  # noqa: E402
import tempfile  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from pathlib import Path  # noqa: E402

from _common import (  # noqa: E402
    become_subreaper,
    child_env,
    median,
    print_table,
    reap_children,
    stop_process,
    wait_exit,
)

FRESH = 4
KEEPALIVE = 4
ROUNDS = 20
REQUEST = b"GET / HTTP/1.1\r\nhost: bench\r\n%s\r\n"
CONTENDERS = ("aiodaemon upgrade", "aiodaemon restart", "gunicorn USR2+WINCH+QUIT")
SCRIPT = Path(sys.executable).parent / "aiodaemon"


# --- the load generator (a child process) --------------------------------------------


async def _one(
    port: int, conn: tuple[object, object] | None, stats: dict[str, object]
) -> tuple[object, object] | None:
    """One request; returns the connection to reuse (keep-alive) or None."""
    import asyncio

    counts: dict[str, int] = stats["counts"]  # type: ignore[assignment]
    latencies: list[float] = stats["latencies"]  # type: ignore[assignment]
    reused = conn is not None
    start = time.perf_counter()
    try:
        async with asyncio.timeout(5.0):
            if conn is None:
                conn = await asyncio.open_connection("127.0.0.1", port)
            reader, writer = conn
            assert isinstance(reader, asyncio.StreamReader)
            assert isinstance(writer, asyncio.StreamWriter)
            keep = stats["keep"]
            writer.write(REQUEST % (b"" if keep else b"connection: close\r\n"))
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except asyncio.IncompleteReadError as exc:
                if reused and not exc.partial:
                    counts["retried"] += 1
                    return await _dropped(conn)
                raise ConnectionResetError("connection closed mid-answer") from None
            length = 0
            for line in head.split(b"\r\n"):
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":", 1)[1])
            await reader.readexactly(length)
    except ConnectionRefusedError:
        counts["refused"] += 1
        return await _dropped(conn)
    except TimeoutError:
        counts["unanswered"] += 1
        return await _dropped(conn)
    except (ConnectionResetError, BrokenPipeError, asyncio.IncompleteReadError) as exc:
        if reused and isinstance(exc, ConnectionResetError | BrokenPipeError):
            # Reset before any byte of the answer on a reused connection: the
            # same idle-close race, seen as a reset (the request was never read).
            counts["retried"] += 1
        else:
            counts["reset"] += 1
        return await _dropped(conn)
    except OSError:
        counts["reset"] += 1
        return await _dropped(conn)
    latencies.append(time.perf_counter() - start)
    if not head.startswith(b"HTTP/1.1 2"):
        counts["non-2xx"] += 1
    else:
        counts["ok"] += 1
    if not keep or b"connection: close" in head.lower():
        writer.close()
        return None
    return conn


async def _dropped(conn: tuple[object, object] | None) -> None:
    """Close a failed connection and take its error: asyncio logs "Future exception was
    never retrieved" for a reset one left to the garbage collector."""
    import asyncio

    if conn is not None:
        writer = conn[1]
        assert isinstance(writer, asyncio.StreamWriter)
        writer.close()
        with contextlib.suppress(Exception):
            await writer.wait_closed()


async def _worker(port: int, keep: bool, stop: object, stats: dict[str, object]) -> None:
    import asyncio

    assert isinstance(stop, asyncio.Event)
    local = dict(stats, keep=keep)
    conn = None
    while not stop.is_set():
        conn = await _one(port, conn, local)


async def _load(port: int) -> dict[str, object]:
    import asyncio

    stats: dict[str, object] = {
        "counts": dict.fromkeys(("ok", "refused", "reset", "unanswered", "non-2xx", "retried"), 0),
        "latencies": [],
    }
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    # The driver closes our stdin when the run is over.
    loop.add_reader(sys.stdin.fileno(), stop.set)
    started = time.monotonic()
    workers = [_worker(port, False, stop, stats) for _ in range(FRESH)]
    workers += [_worker(port, True, stop, stats) for _ in range(KEEPALIVE)]
    await asyncio.gather(*workers)
    latencies: list[float] = stats["latencies"]  # type: ignore[assignment]
    latencies.sort()
    p99 = latencies[max(0, int(len(latencies) * 0.99) - 1)] if latencies else 0.0
    return {
        "counts": stats["counts"],
        "p50": latencies[len(latencies) // 2] if latencies else 0.0,
        "p99": p99,
        "seconds": time.monotonic() - started,
    }


def run_load(port: int) -> None:
    """Child process: load until stdin closes, then print the statistics as JSON."""
    import asyncio
    from collections.abc import Callable, Coroutine
    from typing import Any

    # Either runner: their signatures differ only in options not used here.
    runner: Callable[[Coroutine[Any, Any, dict[str, Any]]], dict[str, Any]]
    try:
        import uvloop

        runner = uvloop.run
    except ImportError:
        runner = asyncio.run
    print(json.dumps(runner(_load(port))), flush=True)


# --- the driver ----------------------------------------------------------------------


@dataclass
class Result:
    """What one contender's run measured."""

    counts: dict[str, int] = field(default_factory=dict)
    rps: float = 0.0
    p99: float = 0.0
    cut_over: list[float] = field(default_factory=list)
    #: aiodaemon upgrade: the request, to the new process ready (its start-up).
    ready: list[float] = field(default_factory=list)
    lock_lapses: int | None = 0
    probes: int = 0
    rounds: int = 0
    errors: list[str] = field(default_factory=list)


class LockProbe:
    """Tries ``flock`` on the pidfile every millisecond; counts the times it was free or absent."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.lapses = 0
        self.probes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LockProbe:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    def _run(self) -> None:
        while not self._stop.wait(0.001):
            self.probes += 1
            try:
                fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            except OSError:
                self.lapses += 1
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:
                pass
            else:
                self.lapses += 1
            finally:
                os.close(fd)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def read_pid(path: Path, timeout: float = 30.0) -> int:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            return int(path.read_text())
        time.sleep(0.005)
    raise RuntimeError(f"no pid in {path}")


def wait_serving(port: int, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 1):
            return
        time.sleep(0.01)
    raise RuntimeError(f"nothing listens on port {port}")


def start_load(port: int, env: dict[str, str]) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, __file__, "--load", str(port)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        env=env,
        text=True,
    )


def finish_load(load: subprocess.Popen[str], result: Result) -> None:
    # communicate() closes its stdin: the generator's signal to stop and report.
    out, _ = load.communicate(timeout=60)
    data = json.loads(out)
    result.counts = data["counts"]
    result.p99 = data["p99"]
    total = sum(v for k, v in data["counts"].items() if k != "retried")
    result.rps = total / data["seconds"]


def _cli(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(SCRIPT), *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )


def run_aiodaemon(how: str, rounds: int, work: Path, env: dict[str, str]) -> Result:
    """Start the aiodaemon service, load it, upgrade or restart it ``rounds`` times."""
    result = Result()
    port = free_port()
    pidfile = work / f"{how}.pid"
    log = work / f"{how}.log"
    options = ["--pidfile", str(pidfile), "--listen", f"http=127.0.0.1:{port}"]
    options += ["--log-file", str(log), "--shutdown-timeout", "10"]
    started = _cli("start", "upgrade_app:main", *options, cwd=work, env=env)
    if started.returncode != 0:
        raise RuntimeError(f"aiodaemon start failed: {started.stderr}")
    wait_serving(port)
    load = start_load(port, env)
    time.sleep(0.5)
    with LockProbe(pidfile) as probe:
        for _ in range(rounds):
            try:
                old = read_pid(pidfile)
            except RuntimeError as exc:
                result.errors.append(str(exc))
                break
            pidfd = os.pidfd_open(old)
            begin = time.monotonic()
            if how == "upgrade":
                done = _cli("upgrade", "--pidfile", str(pidfile), cwd=work, env=env)
            else:
                done = _cli("restart", "upgrade_app:main", *options, cwd=work, env=env)
            if done.returncode != 0:
                result.errors.append(done.stderr.strip())
            wait_exit(old, 30)
            result.cut_over.append(time.monotonic() - begin)
            os.close(pidfd)
            reap_children()
            result.rounds += 1
        time.sleep(0.5)
    finish_load(load, result)
    result.lock_lapses, result.probes = probe.lapses, probe.probes
    _cli("stop", "--pidfile", str(pidfile), cwd=work, env=env)
    reap_children()
    if how == "upgrade":
        # The old daemon's own measure: the request, to its servers closed.
        records = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
        handed = [r for r in records if r.get("event") == "upgrade handed over"]
        result.cut_over = [float(r["cut_over"]) for r in handed] or result.cut_over
        result.ready = [float(r["ready_after"]) for r in handed]
    return result


def run_gunicorn(rounds: int, work: Path, env: dict[str, str]) -> Result:
    """gunicorn's binary upgrade: USR2, wait for the new master's worker, WINCH, QUIT."""
    result = Result(lock_lapses=None)
    port = free_port()
    pidfile = work / "gunicorn.pid"
    argv = [sys.executable, "-m", "gunicorn", "--daemon", "--pid", str(pidfile)]
    argv += ["--bind", f"127.0.0.1:{port}", "-k", "gthread", "--threads", "8", "-w", "1"]
    argv += ["--graceful-timeout", "10", "upgrade_app:wsgi"]
    started = subprocess.run(argv, cwd=work, env=env, capture_output=True, text=True, timeout=60)
    if started.returncode != 0:
        raise RuntimeError(f"gunicorn failed: {started.stderr}")
    wait_serving(port)
    load = start_load(port, env)
    time.sleep(0.5)
    try:
        for _ in range(rounds):
            old = read_pid(pidfile)
            begin = time.monotonic()
            os.kill(old, signal.SIGUSR2)
            # gunicorn says nothing about readiness: watch for the new master and
            # its worker, as an operator's script would.
            new = _wait_new_master(pidfile, old)
            _wait_worker(new)
            os.kill(old, signal.SIGWINCH)
            os.kill(old, signal.SIGQUIT)
            wait_exit(old, 30)
            result.cut_over.append(time.monotonic() - begin)
            reap_children()
            # The new master renames its "<pidfile>.2" once it sees the old one gone.
            _wait_promoted(pidfile, new)
            result.rounds += 1
        time.sleep(0.5)
    finally:
        finish_load(load, result)
        with contextlib.suppress(OSError, RuntimeError):
            stop_process(read_pid(pidfile, 1), 10)
        reap_children()
    return result


def _wait_new_master(pidfile: Path, old: int) -> int:
    """The new master's pid: gunicorn writes it to ``<pidfile>.2`` while the old one lives."""
    second = pidfile.with_name(pidfile.name + ".2")
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            pid = int(second.read_text())
            if pid != old:
                return pid
        time.sleep(0.005)
    raise RuntimeError("gunicorn: no new master")


def _wait_promoted(pidfile: Path, new: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError, ValueError):
            if int(pidfile.read_text()) == new:
                return
        time.sleep(0.005)
    raise RuntimeError("gunicorn: the new master did not take the pidfile over")


def _wait_worker(master: int) -> None:
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        with contextlib.suppress(OSError):
            children = Path(f"/proc/{master}/task/{master}/children").read_text().split()
            # A worker is up once it has imported the app and listens (it inherits the socket).
            if children and _is_serving(int(children[0])):
                return
        time.sleep(0.005)
    raise RuntimeError("gunicorn: the new master's worker did not start")


def _is_serving(pid: int) -> bool:
    with contextlib.suppress(OSError):
        # gthread workers start their threads once booted.
        return len(os.listdir(f"/proc/{pid}/task")) > 1
    return False


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--load", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.load is not None:
        run_load(args.load)
        return
    become_subreaper()
    env = child_env()
    work = Path(tempfile.mkdtemp(prefix="aiodaemon-bench-upgrade-"))
    shutil.copy(Path(_HERE) / "upgrade_app.py", work / "upgrade_app.py")
    env["PYTHONPATH"] = os.pathsep.join([str(work), env["PYTHONPATH"]])
    results: dict[str, Result] = {}
    try:
        results[CONTENDERS[0]] = run_aiodaemon("upgrade", args.rounds, work, env)
        results[CONTENDERS[1]] = run_aiodaemon("restart", args.rounds, work, env)
        try:
            results[CONTENDERS[2]] = run_gunicorn(args.rounds, work, env)
        except (ImportError, RuntimeError) as exc:
            print(f"gunicorn skipped: {exc} (pip install gunicorn, or the bench extra)")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    rows = []
    for name, r in results.items():
        failed = sum(r.counts[k] for k in ("refused", "reset", "unanswered", "non-2xx"))
        lapses = "n/a (no lock)" if r.lock_lapses is None else f"{r.lock_lapses}/{r.probes}"
        rows.append(
            [
                name,
                str(r.rounds),
                f"{r.rps:,.0f}",
                str(failed),
                " ".join(f"{r.counts[k]}" for k in ("refused", "reset", "unanswered", "non-2xx")),
                str(r.counts["retried"]),
                f"{r.p99 * 1000:.1f}",
                f"{median(r.cut_over) * 1000:.0f}" if r.cut_over else "-",
                f"{max(r.cut_over) * 1000:.0f}" if r.cut_over else "-",
                f"{median(r.ready) * 1000:.0f}" if r.ready else "-",
                f"{median([c - d for c, d in zip(r.cut_over, r.ready, strict=True)]) * 1000:.1f}"
                if r.ready
                else "-",
                lapses,
            ]
        )
    print_table(
        [
            f"Replacing a live service {args.rounds} times under load "
            f"({FRESH} new-connection + {KEEPALIVE} keep-alive clients, loopback)",
            "failed = refused reset unanswered non-2xx; retried = idle keep-alive closed "
            "before the request was read",
            "cut-over: aiodaemon upgrade = request to the old daemon's servers closed "
            "(its own record); others = request to the old process gone",
            "new ready: request to the new process ready; hand-over: cut-over minus that (medians)",
        ],
        [
            "contender",
            "rounds",
            "req/s",
            "failed",
            "ref rst una 5xx",
            "retried",
            "p99 ms",
            "cut-over med ms",
            "max ms",
            "new ready ms",
            "hand-over ms",
            "lock free",
        ],
        rows,
    )
    for name, r in results.items():
        for error in r.errors[:3]:
            print(f"{name}: {error}")


if __name__ == "__main__":
    main()
