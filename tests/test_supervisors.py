"""docs/production.md's supervisord, runit, s6 and LSB init script recipes, run for real."""

from __future__ import annotations

import contextlib
import grp
import json
import os
import pwd
import re
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import IO

import pytest

from .support import (
    AIODAEMON,
    REPO,
    aiodaemon_cli,
    clean_env,
    install_program,
    is_alive,
    kill_quietly,
    past_duplicate_window,
    proc_status,
    read_pid,
    require_tool,
    wait_for,
    wait_gone,
)

PAGE = REPO / "docs" / "production.md"


@pytest.fixture
def base() -> Iterator[Path]:
    """A short directory: supervisord's control socket path must fit in sockaddr_un."""
    path = Path(tempfile.mkdtemp(prefix="aiodaemon-supv-"))
    # The docs' /run/echo and /var/log/echo.
    (path / "run").mkdir()
    (path / "log").mkdir()
    yield path
    shutil.rmtree(path, ignore_errors=True)


def recipe(language: str, marker: str, base: Path) -> str:
    """The page's one ``language`` block holding ``marker``, its paths moved under ``base``."""
    blocks: list[str] = re.findall(rf"^```{language}\n(.*?)^```", PAGE.read_text(), re.S | re.M)
    (block,) = [block for block in blocks if marker in block]
    assert "/srv/echo/venv/bin/aiodaemon" in block
    for shown, here in [
        ("/srv/echo/venv/bin/aiodaemon", str(AIODAEMON)),
        ("/srv/echo", str(base)),
        ("/run/echo", f"{base}/run"),
        ("/var/log/echo", f"{base}/log"),
        ("127.0.0.1:8007", "127.0.0.1:0"),
    ]:
        block = block.replace(shown, here)
    # Nothing of the test may land in the machine's own directories.
    assert not re.search(r"(?<![\w.-])/(srv|run|var/log)/echo", block), block
    return block


def service_command(service: Path, *command: str) -> subprocess.CompletedProcess[str]:
    """A supervisor's control command (``sv hup``, ``s6-svc -d``...) on ``service``."""
    return subprocess.run(
        [require_tool(command[0]), *command[1:], str(service)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


@contextlib.contextmanager
def supervising(
    supervise: str, service: Path, leave: list[str], output: IO[str] | int = subprocess.DEVNULL
) -> Iterator[None]:
    """``service`` under the supervisor ``supervise`` (runsv, s6-supervise), left with ``leave``."""
    supervisor = subprocess.Popen(
        [require_tool(supervise), str(service)],
        stdin=subprocess.DEVNULL,
        stdout=output,
        stderr=subprocess.DEVNULL,
        env=clean_env(),
    )
    try:
        yield
    finally:
        service_command(service, *leave)
        try:
            supervisor.wait(timeout=30)
        except subprocess.TimeoutExpired:
            supervisor.kill()
            supervisor.wait()


def records(log: Path) -> list[dict[str, object]]:
    """The daemon's JSON records so far, without the lines of its own on stderr."""
    if not log.exists():
        return []
    text = log.read_text()
    # A last line without its newline is still being written.
    lines = text[: text.rfind("\n") + 1].split("\n")
    return [json.loads(line) for line in lines if line.startswith("{")]


def events(log: Path) -> list[object]:
    """The ``event`` of every record of the daemon's log so far."""
    return [record["event"] for record in records(log)]


def reloads(base: Path) -> int:
    """How many reloads the program (tests/programs/supervised_app.py) recorded."""
    path = base / "reloads"
    return len(path.read_text().splitlines()) if path.exists() else 0


class Supervisord:
    """A private supervisord running the docs' program section."""

    def __init__(self, base: Path) -> None:
        self.conf = base / "supervisord.conf"
        self.conf.write_text(
            f"[unix_http_server]\nfile={base}/s.sock\n"
            f"[supervisord]\nlogfile={base}/supervisord.log\npidfile={base}/supervisord.pid\n"
            f"childlogdir={base}\n"
            "[rpcinterface:supervisor]\n"
            "supervisor.rpcinterface_factory = supervisor.rpcinterface:make_main_rpcinterface\n"
            f"[supervisorctl]\nserverurl=unix://{base}/s.sock\n"
            + recipe("ini", "[program:echo]", base)
        )
        self.proc = subprocess.Popen(
            [require_tool("supervisord"), "-n", "-c", str(self.conf)],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=clean_env(),
        )

    def ctl(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``supervisorctl ARGS`` against this supervisord."""
        return subprocess.run(
            [require_tool("supervisorctl"), "-c", str(self.conf), *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )

    def close(self) -> None:
        """Shut supervisord down (stopping the program if it still runs), killing it if need be."""
        self.ctl("shutdown")
        try:
            self.proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@pytest.fixture
def supervisord(base: Path) -> Iterator[Supervisord]:
    """supervisord with the docs' program section, running tests/programs/supervised_app.py."""
    install_program("supervised_app", base, "echo.py")
    supervisor = Supervisord(base)
    try:
        yield supervisor
    finally:
        supervisor.close()
        pidfile = base / "run" / "echo.pid"
        if pidfile.exists() and pidfile.read_text().strip().isdigit():
            kill_quietly(int(pidfile.read_text()))


def test_supervisord_reloads_reopens_and_stops_gracefully(
    base: Path, supervisord: Supervisord
) -> None:
    """Under the docs' program section, HUP reloads, USR1 reopens, stop runs the shutdown."""
    log = base / "log" / "echo.jsonl"
    pid = read_pid(base / "run" / "echo.pid", timeout=30)
    wait_for(lambda: "ready" in events(log), 30, "ready")
    assert supervisord.ctl("signal", "HUP", "echo").returncode == 0
    wait_for(lambda: reloads(base) == 1, what="the reload hook")
    log.rename(log.with_name("echo.jsonl.1"))
    assert supervisord.ctl("signal", "USR1", "echo").returncode == 0
    wait_for(log.exists, what="the log file reopened")
    stopped = supervisord.ctl("stop", "echo")
    assert stopped.stdout.strip() == "echo: stopped", stopped.stdout
    assert not is_alive(pid)
    assert "shutdown hook finished" in events(log)
    assert records(log)[-1]["status"] == 0
    assert not (base / "run" / "echo.pid").exists()
    assert "stopped: echo (exit status 0)" in (base / "supervisord.log").read_text()


def test_supervisord_loses_an_upgraded_daemon(base: Path, supervisord: Supervisord) -> None:
    """As the docs warn, SIGUSR2 under supervisord leaves the new process running unsupervised."""
    pidfile = base / "run" / "echo.pid"
    old = read_pid(pidfile, timeout=30)
    wait_for(lambda: "ready" in events(base / "log" / "echo.jsonl"), 30, "ready")
    # Past startsecs: a program that exits sooner is "exited too quickly" and retried.
    wait_for(lambda: "RUNNING" in supervisord.ctl("status", "echo").stdout, 30, "RUNNING")
    assert supervisord.ctl("signal", "USR2", "echo").returncode == 0
    new = wait_for(lambda: read_pid(pidfile) != old and read_pid(pidfile), 30, "the new pid")
    wait_gone(old, 30)
    wait_for(lambda: "EXITED" in supervisord.ctl("status", "echo").stdout, what="EXITED")
    assert is_alive(new)
    stopped = aiodaemon_cli("stop", "--pidfile", pidfile)
    assert stopped.returncode == 0, stopped.stderr
    wait_gone(new)


@pytest.mark.parametrize(
    ("supervise", "reload", "stop", "wait", "leave"),
    [
        (["runsv"], ["sv", "hup"], ["sv", "down"], ["sv", "-w", "25", "down"], ["sv", "exit"]),
        (
            ["s6-supervise"],
            ["s6-svc", "-h"],
            ["s6-svc", "-d"],
            ["s6-svwait", "-D"],
            ["s6-svc", "-x"],
        ),
    ],
    ids=["runit", "s6"],
)
def test_run_script_reloads_and_stops_gracefully(
    base: Path,
    supervise: list[str],
    reload: list[str],
    stop: list[str],
    wait: list[str],
    leave: list[str],
) -> None:
    """The docs' run script under runsv or s6-supervise: a reload, then a stop that waits."""
    service = base / "echo"
    service.mkdir()
    install_program("supervised_app", base, "echo.py")
    run = service / "run"
    run.write_text(recipe("sh", "exec 2>&1", base))
    run.chmod(0o755)
    # Without a log/ service, the script's stdout is the supervisor's: the JSON lines
    # the daemon writes on stderr (exec 2>&1) land in this file.
    log = base / "output.jsonl"
    pidfile = base / "run" / "echo.pid"

    def control(command: list[str]) -> subprocess.CompletedProcess[str]:
        return service_command(service, *command)

    pid = None
    with log.open("w") as output, supervising(supervise[0], service, leave, output):
        try:
            pid = read_pid(pidfile, timeout=30)
            wait_for(lambda: "ready" in events(log), 30, "ready")
            assert control(reload).returncode == 0
            wait_for(lambda: reloads(base) == 1, what="the reload hook")
            assert control(stop).returncode == 0
            # The docs' way to wait for a stop already asked for sends no second SIGTERM.
            wait_for(lambda: "shutdown hook started" in events(log), what="the shutdown")
            past_duplicate_window()
            waited = control(wait)
            assert waited.returncode == 0, waited.stdout + waited.stderr
            assert not is_alive(pid)
            assert "shutdown hook finished" in events(log)
            assert records(log)[-1]["status"] == 0
            assert not pidfile.exists()
        finally:
            if pid is not None:
                kill_quietly(pid)


@pytest.mark.root
def test_lsb_init_script_answers_each_action_with_its_lsb_code(base: Path) -> None:
    """The docs' init script starts, reloads and stops the daemon as nobody, with LSB codes."""
    if os.geteuid() != 0:
        pytest.fail("the init script drops to nobody, which only root can do")
    nobody = pwd.getpwnam("nobody")
    os.chown(base, nobody.pw_uid, nobody.pw_gid)
    base.chmod(0o755)
    install_program("supervised_app", base, "echo.py")
    script = base / "echo.init"
    text = recipe("sh", "### BEGIN INIT INFO", base)
    for shown, here in [
        ("-o echo -g echo", f"-o nobody -g {grp.getgrgid(nobody.pw_gid).gr_name}"),
        ("--user echo", "--user nobody"),
        ("0.0.0.0:7", "127.0.0.1:0"),
    ]:
        assert shown in text, shown
        text = text.replace(shown, here)
    script.write_text(text)
    pidfile = base / "run" / "echo.pid"

    def action(name: str) -> int:
        return subprocess.run(
            ["sh", str(script), name], env=clean_env(), cwd="/", timeout=60, check=False
        ).returncode

    pids = []
    try:
        assert action("start") == 0
        pids.append(read_pid(pidfile))
        assert proc_status(pids[0])["Uid"].split()[0] == str(nobody.pw_uid)
        assert action("start") == 0
        assert action("status") == 0
        assert action("reload") == 0
        assert reloads(base) == 1
        assert action("restart") == 0
        pids.append(read_pid(pidfile))
        assert pids[1] != pids[0]
        assert not is_alive(pids[0])
        assert action("stop") == 0
        assert not is_alive(pids[1])
        assert not pidfile.exists()
        assert "shutdown hook finished" in events(base / "log" / "echo.jsonl")
        assert action("stop") == 0
        assert action("status") == 3
        assert action("reload") == 7
        assert action("bogus") == 2
    finally:
        for pid in pids:
            kill_quietly(pid)


def test_runit_check_script_waits_for_the_startup_hooks(base: Path) -> None:
    """The docs' check script: not ready while the startup hooks run (status says 0 then)."""
    service = base / "echo"
    service.mkdir()
    install_program("supervised_app", base, "echo.py")
    (base / "hold").touch()  # the startup hook waits while it exists
    for name, marker in (("run", "exec 2>&1"), ("check", "/etc/sv/echo/check")):
        script = service / name
        script.write_text(recipe("sh", marker, base))
        script.chmod(0o755)
    pidfile = base / "run" / "echo.pid"

    def sv(*args: str) -> subprocess.CompletedProcess[str]:
        return service_command(service, "sv", *args)

    pid = None
    with supervising("runsv", service, ["sv", "exit"]):
        try:
            pid = read_pid(pidfile, timeout=30)
            starting = aiodaemon_cli("status", "--pidfile", pidfile, "--json")
            assert starting.returncode == 0
            assert json.loads(starting.stdout)["state"] == "starting"
            assert subprocess.run([service / "check"], cwd=service, check=False).returncode != 0
            assert sv("-w", "1", "start").returncode != 0  # timeout: check said not ready

            (base / "hold").unlink()
            started = sv("-w", "30", "start")
            assert started.returncode == 0, started.stdout + started.stderr
            assert (
                json.loads(aiodaemon_cli("status", "--pidfile", pidfile, "--json").stdout)["state"]
                == "running"
            )
            assert sv("-w", "25", "down").returncode == 0
            assert not is_alive(pid)
        finally:
            if pid is not None:
                kill_quietly(pid)
