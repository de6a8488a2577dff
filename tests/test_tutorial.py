"""The tutorial's program and systemd unit work as the page says, run the way systemd runs them."""

from __future__ import annotations

import re
import shlex
import signal
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from aiodaemon.testing import launch
from tests.support import AIODAEMON, REPO, clean_env, free_port, python_snippets

TUTORIAL = REPO / "docs" / "tutorial.md"


def tutorial_unit() -> str:
    """The systemd unit of the tutorial's section 5."""
    blocks: list[str] = re.findall(r"```ini\n(.*?)```", TUTORIAL.read_text(), re.S)
    (unit,) = [block for block in blocks if "[Service]" in block]
    return unit


def unit_setting(unit: str, key: str) -> str:
    """The value of ``key=`` in ``unit`` (exactly one such line)."""
    values: list[str] = re.findall(rf"^{key}=(.*)$", unit, re.M)
    (value,) = values
    return value


class Notify:
    """systemd's notify socket for one service: the datagrams the daemon sends."""

    def __init__(self, path: Path) -> None:
        """Bind a datagram socket at ``path``."""
        self.path = path
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(str(path))
        self.sock.settimeout(20)

    def wait_for(self, line: str) -> None:
        """Return once a datagram containing ``line`` arrived (fail after 20 s)."""
        while line not in self.sock.recv(4096).decode().split("\n"):
            pass


@pytest.fixture
def notify(tmp_path: Path) -> Iterator[Notify]:
    """A notify socket in the test's directory."""
    receiver = Notify(tmp_path / "notify")
    yield receiver
    receiver.sock.close()


def test_systemctl_reload_of_the_tutorial_unit_reaches_the_daemon(
    tmp_path: Path, notify: Notify
) -> None:
    """The unit's ExecReload reloads the daemon its ExecStart started, and reports failures."""
    unit = tutorial_unit()
    runtime = tmp_path / "run" / unit_setting(unit, "RuntimeDirectory")
    runtime.mkdir(parents=True)  # what systemd does for RuntimeDirectory= before ExecStart
    workdir = tmp_path / "svc"
    workdir.mkdir()
    greeting = tmp_path / "greeting.txt"
    program = python_snippets(TUTORIAL)[0]
    (workdir / "greeter.py").write_text(program.replace("/tmp/greeting.txt", str(greeting)))
    port = free_port()

    def command(key: str) -> list[str]:
        """The unit's ``key=`` command line, with the test's paths and port."""
        line = unit_setting(unit, key).replace("127.0.0.1:8008", f"127.0.0.1:{port}")
        line = line.replace("/run/", f"{tmp_path}/run/")
        argv = shlex.split(line)
        assert argv[0] == "/home/me/svc/venv/bin/aiodaemon"
        return [str(AIODAEMON), *argv[1:]]

    assert unit_setting(unit, "WorkingDirectory") == "/home/me/svc"
    # The service is not root's: the page says whose it is and why.
    assert unit_setting(unit, "User") not in ("", "root", "0")
    journal = tmp_path / "journal.log"
    with journal.open("w") as stderr:
        daemon = subprocess.Popen(
            command("ExecStart"),
            cwd=workdir,
            env=clean_env({"NOTIFY_SOCKET": str(notify.path)}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    try:
        notify.wait_for("READY=1")

        def reload() -> subprocess.CompletedProcess[str]:
            return subprocess.run(
                command("ExecReload"),
                cwd=workdir,
                env=clean_env(),
                capture_output=True,
                text=True,
                timeout=60,
                check=False,
            )

        def greet() -> bytes:
            with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
                client.sendall(b"ada\n")
                return client.recv(64)

        greeting.write_text("hi\n")
        reloaded = reload()
        assert reloaded.returncode == 0, reloaded.stderr
        assert greet() == b"hi, ada\n"

        greeting.unlink()
        failed = reload()
        assert failed.returncode == 1, failed.stderr
        assert "FileNotFoundError" in failed.stderr
        assert greet() == b"hi, ada\n"
    finally:
        daemon.send_signal(signal.SIGTERM)
        try:
            daemon.wait(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            daemon.wait()
    assert daemon.returncode == 0, journal.read_text()


def test_section_4_commands_do_what_the_page_says(tmp_path: Path) -> None:
    """Section 4's commands, run as written: each exits 0, and a second start is as the page says.

    The page gave a second ``start`` as an example of a failing one, with a
    non-zero status: it exits 0, having started nothing (LSB).
    """
    text = TUTORIAL.read_text()
    section = text[text.index("## 4. ") : text.index("## 5. ")]
    (block,) = re.findall(r"```sh\n(.*?)```", section, re.S)
    workdir = tmp_path / "svc"
    workdir.mkdir()
    program = python_snippets(TUTORIAL)[0]
    (workdir / "greeter.py").write_text(program.replace("/tmp/", f"{tmp_path}/"))
    port = free_port()

    def run(line: str) -> subprocess.CompletedProcess[str]:
        """One command of the page, with the test's paths, port and aiodaemon."""
        line = line.replace("/tmp/", f"{tmp_path}/").replace("127.0.0.1:8008", f"127.0.0.1:{port}")
        argv = shlex.split(line.replace("venv/bin/aiodaemon", str(AIODAEMON)), comments=True)
        if argv[0] == "echo":  # echo TEXT > FILE
            assert argv[-2] == ">"
            Path(argv[-1]).write_text(" ".join(argv[1:-2]) + "\n")
            return subprocess.CompletedProcess(argv, 0, "", "")
        return subprocess.run(
            argv,
            cwd=workdir,
            env=clean_env(),
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    lines = block.replace("\\\n", " ").strip().split("\n")
    assert [line.split()[:2] for line in lines] == [
        ["venv/bin/aiodaemon", "start"],
        ["venv/bin/aiodaemon", "status"],
        ["echo", "howdy"],
        ["venv/bin/aiodaemon", "reload"],
        ["venv/bin/aiodaemon", "stop"],
    ]
    *before_stop, stop = lines
    try:
        results = [run(line) for line in before_stop]
        assert [r.returncode for r in results] == [0, 0, 0, 0], [r.stderr for r in results]
        pid = int(results[0].stdout)  # "prints the pid"
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.sendall(b"ada\n")
            assert client.recv(64) == b"howdy, ada\n"
        said = re.search(r"`start`\s+says `(already running[^`]*)`\s+and exits (\d)", section)
        assert said is not None, "section 4 says what a second start does"
        again = run(lines[0])
        message = said[1].replace("pid N", f"pid {pid}").replace("/tmp/", f"{tmp_path}/")
        assert (again.returncode, again.stderr) == (int(said[2]), f"aiodaemon: {message}\n")
    finally:
        stopped = run(stop)
    assert stopped.returncode == 0, stopped.stderr


def worker_recipe(tmp_path: Path) -> Path:
    """Section 7's worker, written to ``tmp_path``: its job waits for a file ``release`` there."""
    (recipe,) = [block for block in python_snippets(TUTORIAL) if "finish_current_job" in block]
    job = "await asyncio.sleep(2)  # stands for the real work"
    assert job in recipe
    release = tmp_path / "release"
    # A job that lasts until the test says so: a stop is sure to find it running.
    waiting = f"while not os.path.exists({str(release)!r}):\n        await asyncio.sleep(0.01)"
    script = tmp_path / "worker.py"
    script.write_text("import os\n" + recipe.replace(job, waiting))
    return script


def worker_events(records: list[dict[str, object]]) -> list[object]:
    """The events the worker's own logger wrote, in order."""
    return [record["event"] for record in records if record.get("logger") == "worker"]


async def test_the_worker_recipe_finishes_its_job_before_it_stops(tmp_path: Path) -> None:
    """Section 7's worker, stopped during a job, lets it finish, then exits 0 starting no other."""
    script = worker_recipe(tmp_path)
    async with launch(script) as daemon:
        await daemon.wait_for_record("job started")
        daemon.signal(signal.SIGTERM)
        await daemon.wait_for_record("shutdown started")
        assert daemon.returncode is None
        assert "job done" not in worker_events(daemon.records())
        (tmp_path / "release").touch()
        assert await daemon.wait(timeout=20) == 0
    assert worker_events(daemon.records()) == [
        "job started",
        "job done",
        "worker idle, stopping",
    ]


async def test_the_worker_recipe_stops_between_jobs(tmp_path: Path) -> None:
    """Section 7's worker, stopped while it sleeps between polls, exits 0 without another job."""
    script = worker_recipe(tmp_path)
    (tmp_path / "release").touch()
    async with launch(script) as daemon:
        await daemon.wait_for_record("job done")
        assert await daemon.stop() == 0
    assert worker_events(daemon.records()) == [
        "job started",
        "job done",
        "worker idle, stopping",
    ]
