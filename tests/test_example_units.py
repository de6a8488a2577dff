"""The shipped units' ExecReload= and ExecStop= control the daemon their ExecStart= started."""

from __future__ import annotations

import json
import re
import shlex
import shutil
import signal
import socket
import subprocess
from pathlib import Path

from tests.support import (
    AIODAEMON,
    REPO,
    aiodaemon_cli,
    clean_env,
    free_port,
    is_alive,
    kill_quietly,
    read_json_lines,
    wait_for,
)

UNITS = REPO / "examples" / "systemd"


def command(unit: str, key: str, tmp_path: Path, port: int) -> list[str]:
    """The unit's ``key=`` command line, with the test's directories, port and aiodaemon."""
    (line,) = re.findall(rf"^{key}=(.*)$", unit, re.M)
    line = line.replace("127.0.0.1:8007", f"127.0.0.1:{port}")
    line = line.replace("/run/", f"{tmp_path}/run/").replace("/var/log/", f"{tmp_path}/log/")
    argv = shlex.split(line)
    assert argv[0] == "/opt/aiodaemon/venv/bin/aiodaemon"
    return [str(AIODAEMON), *argv[1:]]


def prepare(unit: str, tmp_path: Path) -> None:
    """What systemd does before ExecStart=: create RuntimeDirectory=; the log directory."""
    (runtime,) = re.findall(r"^RuntimeDirectory=(.*)$", unit, re.M)
    (tmp_path / "run" / runtime).mkdir(parents=True)
    (tmp_path / "log").mkdir()
    # WorkingDirectory=/opt/aiodaemon is a checkout: examples.echo is imported from there.
    assert re.search(r"^WorkingDirectory=/opt/aiodaemon$", unit, re.M)


def run_command(
    unit: str, key: str, tmp_path: Path, port: int, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """Run the unit's ``key=`` command (ExecStart=, ExecReload=...) as systemd would."""
    return subprocess.run(
        command(unit, key, tmp_path, port),
        cwd=REPO,
        env=clean_env(env),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def reload(unit: str, tmp_path: Path, port: int) -> subprocess.CompletedProcess[str]:
    """Run the unit's ExecReload= as systemctl reload would."""
    return run_command(unit, "ExecReload", tmp_path, port)


def echo(port: int) -> bytes:
    """Send one line to the echo daemon and read it back."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
        client.sendall(b"hi\n")
        return client.recv(64)


def test_echo_service_reload_waits_for_the_daemon(tmp_path: Path) -> None:
    """echo.service (Type=notify): ExecReload= asks the daemon ExecStart= runs, exit 0."""
    unit = (UNITS / "echo.service").read_text()
    prepare(unit, tmp_path)
    port = free_port()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(20)
    daemon = subprocess.Popen(
        command(unit, "ExecStart", tmp_path, port),
        cwd=REPO,
        env=clean_env({"NOTIFY_SOCKET": str(tmp_path / "notify")}),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        while "READY=1" not in notify.recv(4096).decode().split("\n"):
            pass
        reloaded = reload(unit, tmp_path, port)
        assert reloaded.returncode == 0, reloaded.stderr
        assert (
            reloaded.stderr
            == f"aiodaemon: reloaded (pid {daemon.pid}; no reload hooks; log files reopened)\n"
        )
        assert echo(port) == b"hi\n"
    finally:
        notify.close()
        daemon.send_signal(signal.SIGTERM)
        try:
            _, journal = daemon.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            daemon.kill()
            _, journal = daemon.communicate()
    assert daemon.returncode == 0, journal
    assert '"event":"reload finished"' in journal


def test_echo_forking_service_reload_waits_for_the_daemon(tmp_path: Path) -> None:
    """echo-forking.service: ExecStart= returns once ready, ExecReload= reloads it, exit 0."""
    unit = (UNITS / "echo-forking.service").read_text()
    prepare(unit, tmp_path)
    port = free_port()
    # systemd sets INVOCATION_ID for every service.
    started = run_command(unit, "ExecStart", tmp_path, port, {"INVOCATION_ID": "0" * 32})
    assert started.returncode == 0, started.stderr
    pid = int(started.stdout)
    (pidfile,) = re.findall(r"^PIDFile=(.*)$", unit, re.M)
    pidfile = pidfile.replace("/run/", f"{tmp_path}/run/")
    try:
        reloaded = reload(unit, tmp_path, port)
        assert reloaded.returncode == 0, reloaded.stderr
        assert (
            reloaded.stderr
            == f"aiodaemon: reloaded (pid {pid}; no reload hooks; log files reopened)\n"
        )
        assert echo(port) == b"hi\n"
    finally:
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile, timeout=60)
    assert stopped.returncode == 0, stopped.stderr
    log = tmp_path / "log" / "aiodaemon-echo.jsonl"
    finished = wait_for(
        lambda: [r for r in read_json_lines(log) if r["event"] == "reload finished"],
        what="the reload's record",
    )
    assert finished[0]["ok"] is True


def notifications(notify: socket.socket) -> list[str]:
    """The next datagram the daemon sent to its NOTIFY_SOCKET, as assignments."""
    return notify.recv(4096).decode().split("\n")


def test_echo_service_stop_stops_the_process_an_upgrade_started(tmp_path: Path) -> None:
    """echo.service: after `aiodaemon upgrade`, ExecStop= drains the new process and exits 0.

    systemd did not fork that process: without ExecStop= its stop sent SIGTERM
    and then SIGKILL at once (seen on systemd 252), so the unit needs ExecStop=.
    """
    unit = (UNITS / "echo.service").read_text()
    prepare(unit, tmp_path)
    port = free_port()
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify"))
    notify.settimeout(30)
    journal = tmp_path / "journal"
    pidfile = tmp_path / "run" / "aiodaemon-echo" / "echo.pid"
    with journal.open("w") as stderr:
        first = subprocess.Popen(
            command(unit, "ExecStart", tmp_path, port),
            cwd=REPO,
            env=clean_env({"NOTIFY_SOCKET": str(tmp_path / "notify")}),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=stderr,
        )
    successor = None
    try:
        while "READY=1" not in notifications(notify):
            pass
        upgraded = aiodaemon_cli("upgrade", "--pidfile", pidfile, timeout=90)
        assert upgraded.returncode == 0, upgraded.stderr
        successor = int(upgraded.stdout)
        # What systemd hears: the old daemon hands the unit over, then exits 0.
        while f"MAINPID={successor}" not in notifications(notify):
            pass
        assert first.wait(timeout=60) == 0, journal.read_text()
        assert echo(port) == b"hi\n"

        stopped = run_command(unit, "ExecStop", tmp_path, port)
        assert stopped.returncode == 0, stopped.stderr
        assert stopped.stderr == f"aiodaemon: stopped (pid {successor})\n"
        while "STOPPING=1" not in notifications(notify):
            pass
        assert not pidfile.exists()
        assert not is_alive(successor)
    finally:
        notify.close()
        if first.poll() is None:
            first.kill()
            first.wait()
        if successor is not None:
            kill_quietly(successor)
    records = [
        json.loads(line) for line in journal.read_text().splitlines() if line.startswith("{")
    ]
    assert {"event": "exit", "pid": successor, "status": 0}.items() <= records[-1].items()


def test_echo_template_instances_are_controlled_one_by_one(tmp_path: Path) -> None:
    """echo@.service: two instances; reload and stop reach only their own, the other runs on.

    systemd removes a stopped instance's RuntimeDirectory=: the other instance's
    pidfile and control socket are in a directory of their own and stay.
    """
    template = (UNITS / "echo@.service").read_text()
    (tmp_path / "log").mkdir()
    ports = [free_port(), free_port()]
    units = {port: template.replace("%i", str(port)) for port in ports}
    daemons: dict[int, subprocess.Popen[str]] = {}
    try:
        for port, unit in units.items():
            (runtime,) = re.findall(r"^RuntimeDirectory=(.*)$", unit, re.M)
            (tmp_path / "run" / runtime).mkdir(parents=True)
            with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as notify:
                notify.bind(str(tmp_path / f"notify-{port}"))
                notify.settimeout(20)
                daemons[port] = subprocess.Popen(
                    command(unit, "ExecStart", tmp_path, port),
                    cwd=REPO,
                    env=clean_env({"NOTIFY_SOCKET": str(tmp_path / f"notify-{port}")}),
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    text=True,
                )
                while "READY=1" not in notifications(notify):
                    pass
        first, second = ports
        for port in ports:
            reloaded = reload(units[port], tmp_path, port)
            assert (
                reloaded.stderr == f"aiodaemon: reloaded (pid {daemons[port].pid}; no reload hooks;"
                " log files reopened)\n"
            )
        stopped = run_command(units[first], "ExecStop", tmp_path, first)
        assert stopped.stderr == f"aiodaemon: stopped (pid {daemons[first].pid})\n"
        assert daemons[first].wait(timeout=30) == 0
        (runtime,) = re.findall(r"^RuntimeDirectory=(.*)$", units[first], re.M)
        shutil.rmtree(tmp_path / "run" / runtime)  # as systemd does after the stop
        assert echo(second) == b"hi\n"
        reloaded = reload(units[second], tmp_path, second)
        assert (
            reloaded.stderr == f"aiodaemon: reloaded (pid {daemons[second].pid}; no reload hooks;"
            " log files reopened)\n"
        )
        stopped = run_command(units[second], "ExecStop", tmp_path, second)
        assert stopped.stderr == f"aiodaemon: stopped (pid {daemons[second].pid})\n"
        assert daemons[second].wait(timeout=30) == 0
    finally:
        for daemon in daemons.values():
            if daemon.poll() is None:
                daemon.kill()
                daemon.wait()
