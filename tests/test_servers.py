"""aiohttp and uvicorn (Starlette) under aiodaemon: examples/aiohttp_app.py, uvicorn_app.py.

Each example runs as a user runs it (``aiodaemon run`` through the testing kit,
``python examples/aiohttp_app.py``, ``aiodaemon start``) and is driven from
outside: HTTP requests on loopback, ``/readyz``, ``aiodaemon reload``/``upgrade``/
``stop``, signals; what is checked is what a user sees (answers, the health
state, exit status, the JSON log).
"""

from __future__ import annotations

import asyncio
import contextlib
import importlib.util
import json
import os
import re
import shutil
import signal
import socket
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import uvloop
from websockets.asyncio.client import connect
from websockets.exceptions import ConnectionClosedOK
from websockets.frames import CloseCode

from aiodaemon._run._selector_loop import SelectorEventLoop
from aiodaemon.testing import DaemonProcess, launch

from .support import (
    AIODAEMON,
    PROGRAMS,
    PYTHON,
    REPO,
    SESSION_VARIABLE,
    clean_env,
    free_port,
    is_alive,
    past_duplicate_window,
    read_json_lines,
    read_pid,
    require_tool,
    wait_for,
    wait_gone,
)

EXAMPLES = {
    "aiohttp": REPO / "examples" / "aiohttp_app.py",
    "uvicorn": REPO / "examples" / "uvicorn_app.py",
}
#: The logger each server writes its access records with (stdlib logging).
ACCESS_LOGGER = {"aiohttp": "aiohttp.access", "uvicorn": "uvicorn.access"}
SERVERS = sorted(EXAMPLES)


@dataclass
class Answer:
    """One HTTP response."""

    status: int
    body: str


async def get(address: tuple[str, int], path: str) -> Answer:
    """GET ``path`` on a new connection (``connection: close``), the whole answer."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(f"GET {path} HTTP/1.1\r\nhost: test\r\nconnection: close\r\n\r\n".encode())
        await writer.drain()
        data = await reader.read()
    finally:
        writer.close()
    if not data:
        raise ConnectionResetError(f"GET {path}: the connection closed without an answer")
    head, _, body = data.partition(b"\r\n\r\n")
    return Answer(int(head.split(b" ", 2)[1]), body.decode())


def greeting_env(tmp_path: Path, greeting: str) -> tuple[Path, dict[str, str]]:
    """A greeting file holding ``greeting``, and the environment that names it."""
    path = tmp_path / "greeting.txt"
    path.write_text(greeting + "\n")
    return path, {"GREETING_FILE": str(path)}


async def sigterm_drains(
    daemon: DaemonProcess, address: tuple[str, int], health: tuple[str, int]
) -> None:
    """SIGTERM: /readyz says 503 at once, requests are answered through the drain
    delay (load balancers still send them), then new connections are refused."""
    daemon.signal(signal.SIGTERM)
    await daemon.wait_for_record("shutdown started")
    assert await get(health, "/readyz") == Answer(503, '{"state":"stopping"}')
    assert await get(address, "/") == Answer(200, f"hello from {daemon.pid}\n")
    await daemon.wait_for_record("stopped accepting")
    with pytest.raises(ConnectionRefusedError):
        await get(address, "/late")


@pytest.mark.parametrize("server", SERVERS)
async def test_serves_reloads_and_logs_to_the_daemon_log(server: str, tmp_path: Path) -> None:
    """The app answers; `reload` changes its greeting; its own log records are JSON lines."""
    greeting, env = greeting_env(tmp_path, "howdy")
    async with launch(EXAMPLES[server], env=env, listen={"http": "127.0.0.1:0"}) as daemon:
        address = daemon.inet_address("http")
        assert await get(address, "/") == Answer(200, f"howdy from {daemon.pid}\n")
        greeting.write_text("hi\n")
        await daemon.reload()
        assert await get(address, "/") == Answer(200, f"hi from {daemon.pid}\n")
        # SIGHUP (kill -HUP, logrotate's postrotate) is the same reload.
        greeting.write_text("hey\n")
        daemon.signal(signal.SIGHUP)
        await daemon.wait_for_record(
            lambda r: r["event"] == "greeting changed" and r.get("greeting") == "hey"
        )
        assert await get(address, "/") == Answer(200, f"hey from {daemon.pid}\n")
        # SIGUSR1 reopens the log (logrotate): the access records go to the new file.
        rotated = tmp_path / "rotated.jsonl"
        daemon.log_file.rename(rotated)
        daemon.signal(signal.SIGUSR1)
        await asyncio.to_thread(
            wait_for,
            lambda: any(r.get("signal") == "SIGUSR1" for r in read_json_lines(rotated)),
            10,
            "SIGUSR1 received",
        )
        assert (await get(address, "/after-rotation")).status == 404
        access = await daemon.wait_for_record(
            lambda r: r["logger"] == ACCESS_LOGGER[server] and "/after-rotation" in r["event"]
        )
        assert access["level"] == "info"
        assert access["pid"] == daemon.pid
        assert await daemon.stop() == 0
    assert any(r["logger"] == ACCESS_LOGGER[server] for r in read_json_lines(rotated))


@pytest.mark.parametrize("server", SERVERS)
async def test_sigterm_drains_requests_in_flight(server: str) -> None:
    """SIGTERM: /readyz 503 at once, served through the drain delay, in-flight answered, exit 0."""
    async with launch(
        EXAMPLES[server],
        listen={"http": "127.0.0.1:0"},
        health="127.0.0.1:0",
        drain_delay=1.5,
    ) as daemon:
        address, health = daemon.inet_address("http"), daemon.inet_address("health")
        assert await get(health, "/readyz") == Answer(200, '{"state":"running"}')
        slow = [asyncio.create_task(get(address, f"/slow?seconds=2.5&n={i}")) for i in range(10)]
        await daemon.wait_for_record(
            lambda _: sum(r["event"] == "slow request" for r in daemon.records()) == 10
        )
        await sigterm_drains(daemon, address, health)
        answers = await asyncio.wait_for(asyncio.gather(*slow), timeout=15)
        assert answers == [Answer(200, f"slept 2.5 in {daemon.pid}\n")] * 10
        assert await daemon.wait(timeout=15) == 0
        events = [r["event"] for r in daemon.records()]
        assert events.index("stopped accepting") < events.index("connections finished")
        assert "exit" in events
        # The server stopped by the daemon's shutdown asked for none of its own.
        assert "shutdown requested by the program" not in events


@pytest.mark.parametrize("budget", [6.0, 3.0, 2.0])
@pytest.mark.parametrize("server", SERVERS)
async def test_a_request_slower_than_the_budget_is_cut_by_the_server_which_still_cleans_up(
    server: str, budget: float
) -> None:
    """A request longer than the shutdown budget: the server cuts it, its shutdown runs, exit 0.

    aiohttp waits its runner's ``shutdown_timeout`` for the handler, then as
    long again for the cancelled one: at a third of aiodaemon's budget, that
    outlasted the half aiodaemon gives what it tracks, which cancelled the
    runner's cleanup; the application's ``on_cleanup`` never ran. At a fifth,
    the half-second grace before them still did so with a budget of 5 s or
    less, and uvicorn's whole second with 3 s or less.
    """
    listen = {"http": "127.0.0.1:0"}
    async with launch(EXAMPLES[server], listen=listen, shutdown_timeout=budget) as d:
        slow = asyncio.create_task(get(d.inet_address("http"), "/slow?seconds=60"))
        await d.wait_for_record("slow request")
        d.signal(signal.SIGTERM)
        assert await d.wait(timeout=30) == 0
        events = [r["event"] for r in d.records()]
        assert "application shutdown" in events
        assert "connections cancelled after the drain timeout" not in events
        with contextlib.suppress(ConnectionError):
            assert (await asyncio.wait_for(slow, 10)).status == 500


async def test_aiohttp_waits_for_a_request_most_of_the_shutdown_timeout() -> None:
    """aiohttp example, ``shutdown_timeout=8``: a 4 s request in flight at SIGTERM is answered.

    Its runner's cleanup ran in what ``ctx.track`` closes, which has half the
    budget, with both of aiohttp's waits in it: the request had 2.8 s of 8,
    and was cut with exit 0 and nothing said.
    """
    listen = {"http": "127.0.0.1:0"}
    async with launch(EXAMPLES["aiohttp"], listen=listen, shutdown_timeout=8.0) as d:
        slow = asyncio.create_task(get(d.inet_address("http"), "/slow?seconds=4"))
        await d.wait_for_record("slow request")
        d.signal(signal.SIGTERM)
        assert await asyncio.wait_for(slow, 20) == Answer(200, f"slept 4.0 in {d.pid}\n")
        assert await d.wait(timeout=20) == 0
        events = [r["event"] for r in d.records()]
    assert events.index("application shutdown") < events.index("exit")


@pytest.mark.parametrize("server", SERVERS)
async def test_second_sigterm_exits_at_once(server: str) -> None:
    """A second SIGTERM while a request holds the drain exits at once, 143 (the server's
    own signal handling does not swallow it)."""
    async with launch(EXAMPLES[server], listen={"http": "127.0.0.1:0"}) as daemon:
        slow = asyncio.create_task(get(daemon.inet_address("http"), "/slow?seconds=30"))
        await daemon.wait_for_record("slow request")
        daemon.signal(signal.SIGTERM)
        await daemon.wait_for_record("stopped accepting")
        past_duplicate_window()
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait(timeout=10) == 128 + signal.SIGTERM
        assert "second stop signal" in daemon.stderr
        with pytest.raises(ConnectionResetError, match="without an answer"):
            await slow  # the connection closed with the process


async def test_uvicorn_left_as_is_ignores_the_drain_delay_and_the_log() -> None:
    """Without the example's glue, uvicorn refuses connections during the drain delay
    (its own SIGTERM handler) and its records miss the log file (its log_config)."""
    async with launch(
        PROGRAMS / "uvicorn_as_is.py",
        listen={"http": "127.0.0.1:0"},
        health="127.0.0.1:0",
        drain_delay=5,
    ) as daemon:
        address = daemon.inet_address("http")
        assert await get(address, "/") == Answer(200, "hello\n")
        daemon.signal(signal.SIGTERM)
        await daemon.wait_for_record("shutdown started")
        assert await get(daemon.inet_address("health"), "/readyz") == Answer(
            503, '{"state":"stopping"}'
        )
        # uvicorn stops accepting within its 0.1 s tick, long before the drain
        # ends (5 s: room for a loaded machine).
        async with asyncio.timeout(4.5):
            while True:
                try:
                    await get(address, "/")
                except ConnectionRefusedError:
                    break
                except ConnectionResetError:
                    continue  # accepted as uvicorn closed its listener: not answered
        events = [r["event"] for r in daemon.records()]
        assert "stopped accepting" not in events
        assert not [r for r in daemon.records() if str(r["logger"]).startswith("uvicorn")]
        assert await daemon.wait(timeout=15) == 0
        assert "Started server process" in daemon.stderr


async def test_second_sigterm_still_forces_the_exit_after_uvicorns_own_handlers() -> None:
    """uvicorn left with its own handlers restores stale ones when it stops; a second
    SIGTERM during a shutdown hook after that still exits at once, 143."""
    async with launch(
        PROGRAMS / "uvicorn_as_is_slow_hook.py", listen={"http": "127.0.0.1:0"}
    ) as daemon:
        assert await get(daemon.inet_address("http"), "/") == Answer(200, "hello\n")
        daemon.signal(signal.SIGTERM)
        await daemon.wait_for_record("hook running")
        past_duplicate_window()
        daemon.signal(signal.SIGTERM)
        assert await daemon.wait(timeout=10) == 128 + signal.SIGTERM
        assert "second stop signal during shutdown: SIGTERM" in daemon.stderr


@pytest.mark.parametrize("server", SERVERS)
async def test_socket_activation(server: str, tmp_path: Path) -> None:
    """Under systemd-socket-activate, the first request starts the daemon on the passed
    socket (named http) and is answered; SIGTERM stops it, exit 0."""
    tool = require_tool("systemd-socket-activate")
    port = free_port()
    target = f"examples.{EXAMPLES[server].stem}:main"
    argv = [AIODAEMON, "run", target, "--listen", f"http=127.0.0.1:{port}"]
    argv += ["--pidfile", tmp_path / "app.pid", "--log-file", tmp_path / "app.jsonl"]
    passthrough = ["-E", "PYTHONPATH", "-E", SESSION_VARIABLE]
    proc = await asyncio.create_subprocess_exec(
        *map(str, [tool, *passthrough, "-l", f"127.0.0.1:{port}", "--fdname=http", *argv]),
        cwd=REPO,
        env=clean_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.DEVNULL,
    )
    try:
        async with asyncio.timeout(15):
            while True:  # until the tool listens; then the daemon answers from its backlog
                try:
                    answer = await get(("127.0.0.1", port), "/")
                    break
                except ConnectionRefusedError:
                    await asyncio.sleep(0.01)
        # systemd-socket-activate execs the daemon in its own process.
        assert answer == Answer(200, f"hello from {proc.pid}\n")
        # The server answers from within its startup hook: ready comes a moment later.
        await asyncio.to_thread(
            wait_for,
            lambda: any(r["event"] == "ready" for r in read_json_lines(tmp_path / "app.jsonl")),
            15,
            "ready",
        )
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), timeout=15) == 0
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


async def test_uvicorn_ending_on_its_own_ends_the_daemon() -> None:
    """uvicorn stopping by itself (limit_max_requests) shuts the daemon down, exit 0."""
    async with launch(PROGRAMS / "uvicorn_limited.py", listen={"http": "127.0.0.1:0"}) as daemon:
        address = daemon.inet_address("http")
        for _ in range(2):
            assert await get(address, "/") == Answer(200, f"hello from {daemon.pid}\n")
        assert await daemon.wait(timeout=15) == 0
        requested = await daemon.wait_for_record("shutdown requested by the program")
        assert requested["status"] == 0


@dataclass
class Load:
    """Requests without pause on fresh and keep-alive connections, every failure counted.

    A keep-alive connection the server closes while idle, before any byte of
    the answer, is retried on a new connection, as HTTP clients do (RFC 9112,
    9.3.1), and counted apart.
    """

    address: tuple[str, int]
    ok: int = 0
    retried: int = 0
    pids: set[int] = field(default_factory=set)
    failures: list[str] = field(default_factory=list)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    #: set when ``ok`` reaches ``target`` (or a request failed).
    reached: asyncio.Event = field(default_factory=asyncio.Event)
    target: int = 0

    async def worker(self, keep_alive: bool) -> None:
        streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None
        while not self.stop.is_set():
            reused = streams is not None
            try:
                async with asyncio.timeout(10):
                    if streams is None:
                        streams = await asyncio.open_connection(*self.address)
                    streams = await self.request(*streams, keep_alive)
            except (asyncio.IncompleteReadError, ConnectionResetError, BrokenPipeError) as exc:
                partial = getattr(exc, "partial", b"")
                if reused and not partial:
                    self.retried += 1
                else:
                    self.fail(keep_alive, exc)
                streams = self.close(streams)
            except (OSError, TimeoutError) as exc:
                self.fail(keep_alive, exc)
                streams = self.close(streams)
        self.close(streams)

    async def request(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, keep_alive: bool
    ) -> tuple[asyncio.StreamReader, asyncio.StreamWriter] | None:
        close = b"" if keep_alive else b"connection: close\r\n"
        writer.write(b"GET / HTTP/1.1\r\nhost: load\r\n" + close + b"\r\n")
        head = await reader.readuntil(b"\r\n\r\n")
        match = re.search(rb"(?i)\r\ncontent-length: *(\d+)", head)
        assert match, head
        body = await reader.readexactly(int(match.group(1)))
        if not head.startswith(b"HTTP/1.1 200 "):
            self.failures.append(f"answer: {head[:40]!r}")
            self.reached.set()
        else:
            self.ok += 1
            self.pids.add(int(body.split()[-1]))
            if self.ok >= self.target:
                self.reached.set()
        if keep_alive and b"connection: close" not in head.lower():
            return reader, writer
        return self.close((reader, writer))

    def fail(self, keep_alive: bool, exc: BaseException) -> None:
        self.failures.append(f"{'keep-alive' if keep_alive else 'fresh'}: {exc!r}")
        self.reached.set()

    @staticmethod
    def close(streams: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None) -> None:
        if streams is not None:
            streams[1].close()

    async def wait_more(self, count: int) -> None:
        """Wait (30 s at most) until ``count`` more requests succeeded."""
        self.target = self.ok + count
        self.reached.clear()
        await asyncio.wait_for(self.reached.wait(), timeout=30)


async def cli(*args: str | os.PathLike[str], cwd: Path = REPO) -> tuple[int, str, str]:
    """Run ``aiodaemon ARGS`` without blocking the load on the same loop."""
    return await command(str(AIODAEMON), *args, cwd=cwd)


async def command(*argv: str | os.PathLike[str], cwd: Path = REPO) -> tuple[int, str, str]:
    """Run a command to completion without blocking the loop: status, stdout, stderr."""
    proc = await asyncio.create_subprocess_exec(
        *map(str, argv),
        cwd=cwd,
        env=clean_env(),
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await asyncio.wait_for(proc.communicate(), timeout=90)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


def started_with(server: str, pidfile: Path, log: Path) -> Sequence[str | Path]:
    """How each example is started for the upgrade: aiohttp's as a script (``run()``),
    uvicorn's with ``aiodaemon start`` (both detach and come back when ready)."""
    if server == "aiohttp":
        return [PYTHON, EXAMPLES[server], "--listen", "127.0.0.1:0", "--pidfile", pidfile,
                "--log-file", log]  # fmt: skip
    return [AIODAEMON, "start", "examples.uvicorn_app:main", "--pidfile", pidfile,
            "--listen", "http=127.0.0.1:0", "--log-file", log]  # fmt: skip


@pytest.mark.parametrize("server", SERVERS)
async def test_upgrade_under_load_fails_no_request(server: str, tmp_path: Path) -> None:
    """Three `aiodaemon upgrade`s under load: not one failed request; the last pid serves."""
    pidfile, log = tmp_path / "app.pid", tmp_path / "app.jsonl"
    status, _, err = await command(*started_with(server, pidfile, log))
    assert status == 0, err
    pids = [read_pid(pidfile)]
    try:
        status, out, err = await cli("status", "--pidfile", pidfile, "--json")
        assert status == 0, err
        host, _, port = json.loads(out)["sockets"]["http"].rpartition(":")
        load = Load((host, int(port)))
        workers = [asyncio.create_task(load.worker(keep_alive=i % 2 == 1)) for i in range(6)]
        try:
            await load.wait_more(50)
            for _ in range(3):
                status, out, err = await cli("upgrade", "--pidfile", pidfile)
                assert status == 0, err
                pids.append(int(out))
                assert read_pid(pidfile) == pids[-1]
                await load.wait_more(50)
        finally:
            load.stop.set()
            await asyncio.gather(*workers)
        assert load.failures == []
        # Every process served: the first, and each one an upgrade started.
        assert load.pids == set(pids)
    finally:
        status, _, err = await cli("stop", "--pidfile", pidfile)
    assert status == 0, err
    for pid in pids:
        await asyncio.to_thread(wait_gone, pid)
    records = read_json_lines(log)
    handed = [r for r in records if r["event"] == "upgrade handed over"]
    assert len(handed) == 3
    exits = {r["pid"]: r["status"] for r in records if r["event"] == "exit"}
    assert exits == dict.fromkeys(pids, 0)


def _example_module(server: str) -> object:
    """The example's module, imported in this process (its code, not a daemon)."""
    spec = importlib.util.spec_from_file_location(f"{server}_example", EXAMPLES[server])
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


class _AiohttpStop:
    """The aiohttp example's stop: what it tracks closed (step 3), then its lifespan's exit."""

    def __init__(self, tracked: Any, runner: Any) -> None:
        self.tracked, self.runner = tracked, runner

    async def close(self) -> None:
        await self.tracked.close()
        await self.runner.cleanup()


async def _tracked_example_server(server: str, listener: socket.socket) -> Any:
    """The example's server serving on ``listener``; what its startup hook gives ``ctx.track``."""
    example: Any = _example_module(server)
    if server == "aiohttp":
        from aiohttp import web

        runner = web.AppRunner(example.make_app(), shutdown_timeout=1)
        await runner.setup()
        await web.SockSite(runner, listener).start()
        return _AiohttpStop(example.StopAccepting(runner), runner)
    config = example.uvicorn.Config(example.app, log_config=None, timeout_graceful_shutdown=1)
    uvicorn = example.Server(config)
    task = asyncio.create_task(uvicorn.serve(sockets=[listener]))
    await uvicorn.serving.wait()
    return example.UvicornService(uvicorn, task)


async def _request_accepted_as_the_server_stops(server: str, turns: int) -> bytes | None:
    """A client connects; ``turns`` loop turns later (its accept done, its protocol not
    yet made) the example's tracked server is closed; the request follows. The answer,
    or None when the connection was never accepted (the listener closed with it queued)."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    listener.setblocking(False)
    tracked = await _tracked_example_server(server, listener)
    loop = asyncio.get_running_loop()
    with socket.socket() as client:
        client.setblocking(False)
        # On loopback the handshake is done when connect() returns: the
        # connection waits in the backlog for the loop's next turn.
        with contextlib.suppress(BlockingIOError):
            client.connect(listener.getsockname())
        for _ in range(turns):
            await asyncio.sleep(0)
        closing = asyncio.ensure_future(tracked.close())
        # The request comes a moment after the stop began (past uvicorn's 0.1 s
        # check of should_exit, within the examples' first-request grace).
        await asyncio.sleep(0.2)
        answer = b""
        try:
            client.send(b"GET / HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n")
            while chunk := await asyncio.wait_for(loop.sock_recv(client, 4096), 10):
                answer += chunk
        except ConnectionResetError:
            return None
        finally:
            await closing
    return answer


@pytest.mark.parametrize("turns", range(5))
@pytest.mark.parametrize(
    "new_loop", [uvloop.new_event_loop, SelectorEventLoop], ids=["uvloop", "asyncio"]
)
@pytest.mark.parametrize("server", SERVERS)
def test_a_connection_accepted_as_the_server_stops_is_answered(
    server: str, new_loop: Callable[[], asyncio.AbstractEventLoop], turns: int
) -> None:
    """A connection accepted in the loop turn the example's tracked server closes (an
    upgrade's cut-over under load): its request is answered. aiohttp's was left without
    an answer for the runner's shutdown_timeout, then closed (one upgrade in a few
    hundred, on uvloop); uvicorn closed it unanswered."""
    with asyncio.Runner(loop_factory=new_loop) as runner:
        answer = runner.run(_request_accepted_as_the_server_stops(server, turns))
    if answer is not None:
        assert answer.startswith(b"HTTP/1.1 200 OK"), answer


async def _copy_started(server: str, tmp_path: Path) -> tuple[Path, Path, int, tuple[str, int]]:
    """The example copied to ``tmp_path/app.py`` (for a test to edit), started: its pidfile,
    log, pid and address."""
    shutil.copy(EXAMPLES[server], tmp_path / "app.py")
    pidfile, log = tmp_path / "app.pid", tmp_path / "app.jsonl"
    status, _, err = await cli(
        "start", "app:main", "--pidfile", pidfile, "--listen", "http=127.0.0.1:0",
        "--log-file", log, cwd=tmp_path,
    )  # fmt: skip
    assert status == 0, err
    status, out, err = await cli("status", "--pidfile", pidfile, "--json")
    assert status == 0, err
    host, _, port = json.loads(out)["sockets"]["http"].rpartition(":")
    return pidfile, log, read_pid(pidfile), (host, int(port))


@pytest.mark.parametrize("server", SERVERS)
async def test_upgrade_to_an_app_that_fails_its_startup(server: str, tmp_path: Path) -> None:
    """New code whose application startup raises: `upgrade` exits 1 saying why, the old serves."""
    pidfile, _, old, (host, port) = await _copy_started(server, tmp_path)
    try:
        source = (tmp_path / "app.py").read_text()
        startup = '    log.info("application startup")\n'
        assert source.count(startup) == 1
        broken = source.replace(startup, startup + '    raise RuntimeError("no database")\n')
        (tmp_path / "app.py").write_text(broken)
        status, out, err = await cli("upgrade", "--pidfile", pidfile)
        assert status == 1
        assert out == ""
        expected = {
            "aiohttp": "RuntimeError: no database",
            "uvicorn": "RuntimeError: uvicorn did not start (status 3)",
        }
        assert expected[server] in err
        assert read_pid(pidfile) == old
        assert await get((host, port), "/") == Answer(200, f"hello from {old}\n")
    finally:
        status, _, err = await cli("stop", "--pidfile", pidfile)
    assert status == 0, err


#: Appended to an example's copy: a startup hook after the one that starts the
#: server, which never returns (a database that does not answer).
_HANGING_HOOK = """

@aiodaemon.on_startup
async def connect_db() -> None:
    await asyncio.sleep(3600)
"""


@pytest.mark.parametrize("server", SERVERS)
async def test_upgrade_to_an_app_serving_but_never_ready_fails_no_request(
    server: str, tmp_path: Path
) -> None:
    """New code that serves (its server's hook ran) but hangs in a later startup hook:
    `upgrade --timeout` fails, and the new process answers what it accepted before it
    exits. It was killed at once: the requests it had accepted were reset."""
    pidfile, log, old, (host, port) = await _copy_started(server, tmp_path)
    try:
        address = (host, port)
        with (tmp_path / "app.py").open("a") as source:
            source.write(_HANGING_HOOK)
        load = Load(address)
        workers = [asyncio.create_task(load.worker(keep_alive=i % 2 == 1)) for i in range(4)]
        try:
            await load.wait_more(50)
            upgrade = asyncio.create_task(cli("upgrade", "--pidfile", pidfile, "--timeout", "5"))

            def pids_of(event: str) -> list[int]:
                pids = [r["pid"] for r in read_json_lines(log) if r["event"] == event]
                return [pid for pid in pids if isinstance(pid, int) and pid != old]

            [new] = await asyncio.to_thread(
                wait_for, lambda: pids_of("application startup"), 30, "the new process serving"
            )
            # Slow requests until one is in the new process (they share the socket,
            # either may accept), all in flight when the 5 s run out.
            slow: list[asyncio.Task[Answer]] = []
            while not pids_of("slow request") and not upgrade.done():
                slow += [asyncio.create_task(get(address, f"/slow?seconds=8&n={len(slow)}"))]
                await asyncio.sleep(0.05)
            status, out, err = await upgrade
            assert (status, out) == (1, "")
            assert err == (
                f"aiodaemon: upgrade failed: successor (pid {new}) not ready after 5 s; "
                "sent it SIGTERM (SIGKILL if still running 31 s later)\n"
            )
            answers = await asyncio.wait_for(asyncio.gather(*slow), 30)
            await asyncio.to_thread(wait_gone, new, 30)
            await load.wait_more(50)
        finally:
            load.stop.set()
            await asyncio.gather(*workers)
        assert load.failures == []
        # Every slow request answered, some by the new process before it exited.
        assert {a.status for a in answers} == {200}
        assert f"slept 8.0 in {new}\n" in [a.body for a in answers]
        stopped = [r for r in read_json_lines(log) if r["event"] == "upgrade successor stopped"]
        assert [(r["successor"], r["status"]) for r in stopped] == [(new, 1)]
        assert read_pid(pidfile) == old
        # Gone, it holds up no other upgrade.
        (tmp_path / "app.py").write_text(EXAMPLES[server].read_text())
        status, _, err = await cli("upgrade", "--pidfile", pidfile)
        assert status == 0, err
    finally:
        status, _, err = await cli("stop", "--pidfile", pidfile)
    assert status == 0, err


@pytest.mark.parametrize("phase", ["starting", "not-ready"])
@pytest.mark.parametrize("server", SERVERS)
async def test_stop_during_an_upgrade_to_an_app_already_serving_fails_no_request(
    server: str, phase: str, tmp_path: Path
) -> None:
    """`aiodaemon stop` while the new process serves but is not ready (its server's hook
    ran, a later one hangs), or while the old one awaits its stop after `upgrade --timeout`
    failed: the requests it accepted are answered, and `stop` returns once neither process
    runs. It was killed at once: they were reset."""
    pidfile, log, old, address = await _copy_started(server, tmp_path)
    with (tmp_path / "app.py").open("a") as source:
        source.write(_HANGING_HOOK)
    # Starting: the stop comes at once, the request has the successor's whole drain.
    # Not ready: its SIGTERM came at the timeout, the stop a moment later.
    timeout, seconds = ("60", 4.0) if phase == "starting" else ("5", 8.0)
    upgrade = asyncio.create_task(cli("upgrade", "--pidfile", pidfile, "--timeout", timeout))
    slow: list[asyncio.Task[Answer]] = []
    try:

        def pids_of(event: str) -> list[int]:
            pids = [r["pid"] for r in read_json_lines(log) if r["event"] == event]
            return [pid for pid in pids if isinstance(pid, int) and pid != old]

        [new] = await asyncio.to_thread(
            wait_for, lambda: pids_of("application startup"), 30, "the new process serving"
        )
        # Slow requests until one is in the new process (either may accept).
        while not pids_of("slow request") and not upgrade.done():
            slow += [asyncio.create_task(get(address, f"/slow?seconds={seconds}&n={len(slow)}"))]
            await asyncio.sleep(0.05)
        if phase == "not-ready":
            status, out, err = await upgrade
            assert (status, out) == (1, "")
            assert "not ready after 5 s; sent it SIGTERM" in err
        status, _, err = await cli("stop", "--pidfile", pidfile)
        assert status == 0, err
        # Gone by then, both: no process of the program left behind.
        assert not is_alive(new)
        assert not is_alive(old)
        answers = await asyncio.wait_for(asyncio.gather(*slow), 30)
        upgraded = await upgrade
    finally:
        for task in (*slow, upgrade):
            task.cancel()
        await asyncio.gather(*slow, upgrade, return_exceptions=True)
        await cli("stop", "--pidfile", pidfile)  # after a failed assertion: nothing left
    if phase == "starting":
        stopping = f"aiodaemon: upgrade abandoned: pid {old} is stopping\n"
        assert upgraded == (1, "", stopping)
    assert {a.status for a in answers} == {200}
    assert f"slept {seconds} in {new}\n" in [a.body for a in answers]
    records = read_json_lines(log)
    stopped = [r for r in records if r["event"] == "upgrade successor stopped"]
    assert [(r["successor"], r["status"]) for r in stopped] == [(new, 1)]
    assert [r for r in records if r["event"] == "upgrade successor killed"] == []
    assert [r["status"] for r in records if r["event"] == "exit" and r["pid"] == old] == [0]
    # No pidfile, no control socket left.
    left = await asyncio.to_thread(os.listdir, tmp_path)
    assert [name for name in left if name.startswith("app.pid")] == []


async def test_websockets_clients_are_told_to_go_away_at_an_upgrade_and_a_stop(
    tmp_path: Path,
) -> None:
    """examples/websockets_app.py: open connections get 1001 at the hand-over and at the stop."""
    pidfile, log = tmp_path / "ws.pid", tmp_path / "ws.jsonl"
    status, _, err = await cli(
        "start", "examples.websockets_app:main", "--pidfile", pidfile,
        "--listen", "ws=127.0.0.1:0", "--log-file", log,
    )  # fmt: skip
    assert status == 0, err
    pids = [read_pid(pidfile)]
    try:
        status, out, err = await cli("status", "--pidfile", pidfile, "--json")
        assert status == 0, err
        url = f"ws://{json.loads(out)['sockets']['ws']}"
        async with connect(url) as websocket:
            await websocket.send("before")
            assert await websocket.recv() == f"before from {pids[0]}"
            status, out, err = await cli("upgrade", "--pidfile", pidfile)
            assert status == 0, err
            pids.append(int(out))
            with pytest.raises(ConnectionClosedOK) as closed:
                await asyncio.wait_for(websocket.recv(), timeout=10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == CloseCode.GOING_AWAY
        # The client reconnects: the new process answers on the same address.
        async with connect(url) as websocket:
            await websocket.send("after")
            assert await websocket.recv() == f"after from {pids[1]}"
            status, _, err = await cli("stop", "--pidfile", pidfile)
            assert status == 0, err
            with pytest.raises(ConnectionClosedOK) as closed:
                await asyncio.wait_for(websocket.recv(), timeout=10)
            assert closed.value.rcvd is not None
            assert closed.value.rcvd.code == CloseCode.GOING_AWAY
    finally:
        await cli("stop", "--pidfile", pidfile)
    for pid in pids:
        await asyncio.to_thread(wait_gone, pid)
    records = read_json_lines(log)
    exits = {r["pid"]: r["status"] for r in records if r["event"] == "exit"}
    assert exits == dict.fromkeys(pids, 0)
    # websockets' own records are in the daemon's log.
    opened = [r for r in records if r["event"] == "connection open"]
    assert [r["pid"] for r in opened] == pids
    assert {r["logger"] for r in opened} == {"websockets.server"}


@pytest.mark.parametrize("uvloop", [None, False], ids=["default-loop", "asyncio"])
async def test_hypercorn_as_docs_servers_shows_it(uvloop: bool | None) -> None:
    """hypercorn on fd://: drained as the others, its records in the log, exit 0 on both loops."""
    async with launch(
        PROGRAMS / "hypercorn_app.py",
        listen={"http": "127.0.0.1:0"},
        health="127.0.0.1:0",
        drain_delay=1,
        uvloop=uvloop,
    ) as daemon:
        address, health = daemon.inet_address("http"), daemon.inet_address("health")
        assert await get(address, "/") == Answer(200, f"hello from {daemon.pid}\n")
        slow = asyncio.create_task(get(address, "/slow?seconds=2"))
        await daemon.wait_for_record("slow request")
        # hypercorn's own signal handlers would have stopped it at once.
        await sigterm_drains(daemon, address, health)
        assert await asyncio.wait_for(slow, 15) == Answer(200, f"slept 2.0 in {daemon.pid}\n")
        assert await daemon.wait(timeout=15) == 0
        loggers = {r.get("logger") for r in daemon.records()}
        assert {"hypercorn.access", "hypercorn.error"} <= loggers
        assert "shutdown requested by the program" not in [r["event"] for r in daemon.records()]
