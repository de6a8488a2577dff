"""examples/kubernetes: a valid manifest, numbers that agree, a command that runs as PID 1."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import subprocess
import threading
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml

from aiodaemon.testing import launch

from .serving_support import http_get
from .support import PYTHON, REPO, clean_env, require_tool, wait_for

EXAMPLE = REPO / "examples" / "kubernetes"


def deployment() -> dict[str, Any]:
    """The Deployment, parsed."""
    data = yaml.safe_load((EXAMPLE / "deployment.yaml").read_text())
    assert isinstance(data, dict)
    return data


def container(manifest: dict[str, Any]) -> dict[str, Any]:
    """The one container of the pod template."""
    (only,) = manifest["spec"]["template"]["spec"]["containers"]
    assert isinstance(only, dict)
    return only


def flag(args: list[str], name: str, default: str) -> str:
    """The value following ``name`` in ``args``."""
    return args[args.index(name) + 1] if name in args else default


def test_manifest_is_valid_against_the_kubernetes_schemas() -> None:
    """kubernetes-validate (strict: no unknown field) accepts the Deployment."""
    kubernetes_validate.validate(deployment(), kubernetes_validate.latest_version(), strict=True)


def test_manifest_numbers_agree_with_the_daemon_options() -> None:
    """Grace period > drain + shutdown; probes hit the health port on the right paths."""
    manifest = deployment()
    pod = manifest["spec"]["template"]["spec"]
    app = container(manifest)
    args = app["args"]
    drain = float(flag(args, "--drain-delay", "0"))
    shutdown = float(flag(args, "--shutdown-timeout", "30"))
    start = float(flag(args, "--start-timeout", "90"))
    assert drain > 0
    assert pod["terminationGracePeriodSeconds"] > drain + shutdown
    health_port = int(flag(args, "--health", "").rsplit(":", 1)[1])
    ports = {p["name"]: p["containerPort"] for p in app["ports"]}
    assert ports["health"] == health_port
    http_port = int(flag(args, "--listen", "").rsplit(":", 1)[1])
    assert ports["http"] == http_port
    paths = {
        kind: (app[kind]["httpGet"]["path"], app[kind]["httpGet"]["port"])
        for kind in ("startupProbe", "livenessProbe", "readinessProbe")
    }
    assert paths == {
        "startupProbe": ("/readyz", "health"),
        "livenessProbe": ("/livez", "health"),
        "readinessProbe": ("/readyz", "health"),
    }
    startup = app["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= start
    assert pod["securityContext"]["runAsNonRoot"] is True


def test_dockerfile_is_slim_non_root_and_runs_aiodaemon() -> None:
    """Slim Python base, a non-root USER, and ``aiodaemon run app:main`` as the entrypoint."""
    text = (EXAMPLE / "Dockerfile").read_text()
    assert re.search(r"^FROM python:3\.\d+-slim\b", text, re.M)
    user = re.findall(r"^USER (\S+)", text, re.M)
    assert user
    assert user[-1].split(":")[0] not in ("root", "0")
    (entrypoint,) = re.findall(r"^ENTRYPOINT (.+)$", text, re.M)
    assert json.loads(entrypoint) == ["aiodaemon", "run", "app:main"]
    uid = int(user[-1].split(":")[0])
    assert deployment()["spec"]["template"]["spec"]["securityContext"]["runAsUser"] == uid


@pytest.mark.root
def test_the_container_command_serves_probes_and_drains(tmp_path: Path) -> None:
    """The manifest's command as PID 1: its probe paths answer, SIGTERM turns /readyz 503."""
    unshare = require_tool("unshare")
    app = container(deployment())
    # Same arguments, loopback ports chosen by the kernel, and a shorter drain.
    args = [re.sub(r"^(0\.0\.0\.0)?:\d+$", "127.0.0.1:0", a) for a in app["args"]]
    args = [re.sub(r"^(\w+)=(0\.0\.0\.0)?:\d+$", r"\1=127.0.0.1:0", a) for a in args]
    args[args.index("--drain-delay") + 1] = "1"
    namespace = [unshare, "--pid", "--fork", "--mount-proc", "--kill-child"]
    proc = subprocess.Popen(
        [*namespace, PYTHON, "-m", "aiodaemon", "run", "app:main", *args],
        cwd=EXAMPLE,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    assert proc.stderr is not None
    lines: list[bytes] = []

    def collect() -> None:
        assert proc.stderr is not None
        lines.extend(proc.stderr)

    def records() -> list[dict[str, Any]]:
        return [json.loads(line) for line in list(lines)]  # every line is JSON

    reader = threading.Thread(target=collect, daemon=True)
    reader.start()
    try:
        wait_for(lambda: any(r["event"] == "ready" for r in records()), 20, "ready")
        starting = next(r for r in records() if r["event"] == "starting")
        children = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text()
        init = int(children.split()[0])
        host, _, port = str(starting["sockets"]["health"]).rpartition(":")
        health = (host, int(port))

        async def probes() -> None:
            for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
                status, _, _ = await http_get(health, app[kind]["httpGet"]["path"])
                assert status == 200, kind
            os.kill(init, signal.SIGTERM)
            await asyncio.to_thread(
                wait_for, lambda: any(r["event"] == "shutdown started" for r in records()), 15
            )
            assert (await http_get(health, "/readyz"))[0] == 503
            assert (await http_get(health, "/livez"))[0] == 200

        asyncio.run(probes())
        grace = deployment()["spec"]["template"]["spec"]["terminationGracePeriodSeconds"]
        assert proc.wait(timeout=grace) == 0
        reader.join(timeout=10)
        assert records()[-1]["event"] == "exit"
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        reader.join(timeout=10)
        proc.stderr.close()


async def send_and_read(address: tuple[str, int], data: bytes) -> bytes:
    """Send ``data`` and end the sending side; every byte the server answers until it closes."""
    reader, writer = await asyncio.open_connection(*address)
    try:
        writer.write(data)
        writer.write_eof()
        return await asyncio.wait_for(reader.read(), 10)
    finally:
        writer.close()


@pytest.mark.parametrize(
    "request_head",
    [
        pytest.param(b"GET / HTTP/1.1\r\nHost: x\r\nX-Big: %s\r\n\r\n", id="header"),
        pytest.param(b"GET /%s HTTP/1.1\r\nHost: x\r\n\r\n", id="request-line"),
    ],
)
async def test_the_app_answers_a_line_over_64_kib_with_431(request_head: bytes) -> None:
    """A request line or header over the reader's 64 KiB: a 431 answer, closed, no traceback."""
    async with launch(EXAMPLE / "app.py", listen={"http": "127.0.0.1:0"}) as daemon:
        address = daemon.inet_address("http")
        answer = await send_and_read(address, request_head % (b"a" * 70_000))
        assert answer.startswith(b"HTTP/1.1 431 Request Header Fields Too Large\r\n"), answer
        answer = await send_and_read(address, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert answer.startswith(b"HTTP/1.1 200 OK\r\n"), answer
        assert await daemon.stop() == 0
    assert [r for r in daemon.records() if r["level"] in ("error", "critical")] == []
