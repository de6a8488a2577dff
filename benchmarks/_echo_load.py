"""The echo load client shared by benchmarks/runtime.py and benchmarks/serving.py.

Run in a child process of its own (``--load-child``), so the client's CPU never
counts as the server's; it prints one JSON object of rates.
"""

from __future__ import annotations

import json
import os
import time

#: Bytes of one round trip, newline included.
PAYLOAD = 64


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def cpu_ns(pid: int) -> int:
    """CPU time used so far by every thread of ``pid``, in ns (``/proc/PID/task/*/schedstat``)."""
    total = 0
    for tid in os.listdir(f"/proc/{pid}/task"):
        try:
            with open(f"/proc/{pid}/task/{tid}/schedstat") as file:
                total += int(file.read().split()[0])
        except FileNotFoundError:  # a thread that ended meanwhile
            pass
    return total


def run_load_child(port: int, server_pid: int, conns: int, seconds: float) -> None:
    """Drive ``conns`` ping-pong connections for ``seconds``; print JSON rates.

    ``rps`` is round trips per wall second; ``per_cpu_s`` is round trips per
    second of CPU the server used meanwhile, which other load on the machine
    barely changes; ``server_busy`` and ``client_busy`` are CPU shares.
    """
    import asyncio
    from typing import cast

    import uvloop

    payload = b"x" * (PAYLOAD - 1) + b"\n"

    class Pinger(asyncio.Protocol):
        def __init__(self) -> None:
            self.done = 0
            self.pending = 0
            self.running = True
            self.transport: asyncio.Transport | None = None

        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            # uvloop's transports implement asyncio.Transport without subclassing it.
            self.transport = cast("asyncio.Transport", transport)
            self.transport.write(payload)

        def data_received(self, data: bytes) -> None:
            self.pending += len(data)
            while self.pending >= PAYLOAD:
                self.pending -= PAYLOAD
                self.done += 1
                if self.running and self.transport is not None:
                    self.transport.write(payload)

    async def drive() -> dict[str, float]:
        loop = asyncio.get_running_loop()
        pingers = []
        for _ in range(conns):
            _, pinger = await loop.create_connection(Pinger, "127.0.0.1", port)
            pingers.append(pinger)
        await asyncio.sleep(min(0.5, seconds / 4))  # warm-up, unmeasured
        before, start = sum(p.done for p in pingers), time.perf_counter()
        cpu_before, own_before = cpu_ns(server_pid), time.process_time()
        await asyncio.sleep(seconds)
        after, end = sum(p.done for p in pingers), time.perf_counter()
        cpu_after, own_after = cpu_ns(server_pid), time.process_time()
        for pinger in pingers:
            pinger.running = False
            if pinger.transport is not None:
                pinger.transport.close()
        await asyncio.sleep(0.05)  # let the closes reach the loop before it ends
        count = after - before
        wall = end - start
        return {
            "rps": count / wall,
            "per_cpu_s": count / (cpu_after - cpu_before) * 1e9,
            "server_busy": (cpu_after - cpu_before) / 1e9 / wall,
            "client_busy": (own_after - own_before) / wall,
        }

    print(json.dumps(uvloop.run(drive())))
