"""Upgrades with one virtual environment per release: the successor runs the new release's.

The deploy layout: ``releases/N`` holds the program and its own ``venv``,
``current`` names the live release, and the daemon is started from
``current`` through ``current/venv/bin/...``. The deploy switches
``current``, then upgrades: the new process must run the new release's code
on the new release's interpreter and packages, and keep doing so once the old
release is pruned.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import sysconfig
import threading
from pathlib import Path

import pytest

from .support import (
    AIODAEMON,
    PYTHON,
    REPO,
    aiodaemon_cli,
    clean_env,
    cmdline,
    get_logged_listener,
    read_json_lines,
    read_pid,
    wait_for,
)

PROGRAM = REPO / "tests" / "programs" / "release_app.py"
#: How pip writes a console script's ``#!`` line: the interpreter's real path,
#: with an argument, or (a path too long or with spaces) through ``/bin/sh``.
SHEBANGS = {
    "plain": "#!{python}\n",
    "argument": "#!{python} -u\n",
    "sh": "#!/bin/sh\n'''exec' {python} \"$0\" \"$@\"\n' '''\n",
}


def _release(root: Path, name: str, shebang: str = "plain") -> Path:
    """``releases/NAME``: the program at version ``vNAME`` and a venv with its own console script.

    The venv reaches the test's packages through a ``.pth`` file and holds a
    ``release_marker`` module of its own.
    """
    release = root / "releases" / name
    release.mkdir(parents=True)
    text = PROGRAM.read_text().replace('VERSION = "v1"', f'VERSION = "v{name}"')
    (release / "release_app.py").write_text(text)
    venv = release / "venv"
    # Copies: each release's interpreter is a file of its own, told apart in /proc/PID/exe.
    subprocess.run(
        [PYTHON, "-m", "venv", "--without-pip", "--copies", venv], check=True, timeout=60
    )
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    site = venv / "lib" / version / "site-packages"
    (site / "test_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    (site / "release_marker.py").write_text(f'RELEASE = "{name}"\n')
    # pip's console script, its first lines as pip writes them for this venv.
    body = AIODAEMON.read_text().partition("\n")[2]
    script = venv / "bin" / "aiodaemon"
    script.write_text(SHEBANGS[shebang].format(python=venv / "bin" / "python") + body)
    script.chmod(0o755)
    return release


def _layout(root: Path, shebang: str = "plain") -> Path:
    """Releases 1 and 2, ``current`` naming 1: the path of ``current``."""
    _release(root, "1", shebang)
    _release(root, "2", shebang)
    current = root / "current"
    current.symlink_to(root / "releases" / "1")
    (root / "run").mkdir()
    return current


def _switch(current: Path, release: str) -> None:
    """Point ``current`` at ``releases/RELEASE`` atomically, as a deploy tool does."""
    following = current.with_name("next")
    following.symlink_to(current.parent / "releases" / release)
    os.replace(following, current)


def _answer(run: Path) -> tuple[str, str, str, int]:
    """One request to the daemon: its code's version, its venv's marker, ``sys.prefix``, pid."""
    version, marker, prefix, pid = get_logged_listener(run / "app.log").split()
    return version, marker, os.path.realpath(prefix), int(pid)


def _exe(pid: int) -> str:
    """The interpreter binary ``pid`` runs."""
    return os.readlink(f"/proc/{pid}/exe")


def _start(current: Path, command: list[str]) -> int:
    """Run ``command`` from ``current`` as a shell there would (``$PWD`` set): the daemon's pid."""
    run = current.parent / "run"
    env = {
        "PWD": str(current),
        "APP_PIDFILE": str(run / "app.pid"),
        "APP_LOG": str(run / "app.log"),
    }
    started = subprocess.run(
        command,
        capture_output=True,
        text=True,
        cwd=current,
        env=clean_env(env),
        stdin=subprocess.DEVNULL,
        timeout=45,
        check=False,
    )
    assert started.returncode == 0, started.stderr
    return int((run / "app.pid").read_text())


def _upgrade(current: Path) -> int:
    """``current/venv/bin/aiodaemon upgrade``, as the deploy runs it: the new pid."""
    pidfile = current.parent / "run" / "app.pid"
    command = [str(current / "venv" / "bin" / "aiodaemon"), "upgrade", "--pidfile", str(pidfile)]
    upgraded = subprocess.run(
        command, capture_output=True, text=True, env=clean_env(), timeout=60, check=False
    )
    assert upgraded.returncode == 0, upgraded.stderr
    return int(pidfile.read_text())


def _options(current: Path) -> list[str]:
    """The pidfile and log file options, in ``run`` beside ``current``."""
    run = current.parent / "run"
    return ["--pidfile", str(run / "app.pid"), "--log-file", str(run / "app.log")]


@pytest.mark.parametrize(
    ("shebang", "depth"),
    [*((shebang, 0) for shebang in sorted(SHEBANGS)), ("sh", 240)],
    ids=[*sorted(SHEBANGS), "sh-long-path"],
)
def test_upgrade_of_a_console_script_runs_the_new_release_venv(
    tmp_path: Path, shebang: str, depth: int
) -> None:
    """``current/venv/bin/aiodaemon start``: after the switch the successor runs release 2's venv.

    It ran release 2's code on release 1's interpreter and packages (the path
    the kernel wrote from release 1's ``#!`` line), and failed once release 1
    was pruned. ``depth``: the root's path is that much longer, so the ``sh``
    form's ``exec`` line ends beyond the kernel's 256 bytes of ``#!`` line
    (pip writes that form for any interpreter path over 124 bytes).
    """
    if depth:
        tmp_path /= "x" * depth
        tmp_path.mkdir()
    current = _layout(tmp_path, shebang)
    releases = tmp_path / "releases"
    script = current / "venv" / "bin" / "aiodaemon"
    options = [*_options(current), "--listen", "http=127.0.0.1:0"]
    pid = _start(current, [str(script), "start", "release_app:main", *options])
    try:
        assert _answer(tmp_path / "run") == ("v1", "1", str(releases / "1" / "venv"), pid)
        assert _exe(pid) == str(releases / "1" / "venv" / "bin" / "python")
        _switch(current, "2")
        successor = _upgrade(current)
        assert successor != pid
        assert _answer(tmp_path / "run") == ("v2", "2", str(releases / "2" / "venv"), successor)
        assert _exe(successor) == str(releases / "2" / "venv" / "bin" / "python")
        # The script again, as it was named; the kernel chose release 2's interpreter.
        words = cmdline(successor).split("\0")
        assert words[0] == str(releases / "2" / "venv" / "bin" / "python")
        assert words[words.index(str(script)) + 1 :] == ["start", "release_app:main", *options, ""]
        if shebang == "argument":
            assert words[1] == "-u"
        # Keep-last-N prunes release 1: the next upgrade needs nothing of it.
        shutil.rmtree(releases / "1")
        again = _upgrade(current)
        assert again != successor
        assert _answer(tmp_path / "run") == ("v2", "2", str(releases / "2" / "venv"), again)
    finally:
        aiodaemon_cli("stop", "--pidfile", tmp_path / "run" / "app.pid", "--timeout", "10")


@pytest.mark.parametrize(
    "typed",
    [
        ["venv/bin/python", "-m", "aiodaemon", "start", "release_app:main"],
        ["{current}/venv/bin/python", "-X", "dev", "{current}/venv/bin/aiodaemon", "start"],
        ["venv/bin/python", "-u", "release_app.py"],
    ],
    ids=["module", "flags-and-script", "program"],
)
def test_upgrade_runs_the_interpreter_as_typed(tmp_path: Path, typed: list[str]) -> None:
    """An interpreter named on the command line is run by that path, through ``current``.

    ``venv/bin/python`` typed in ``current`` became release 1's interpreter
    (``sys.executable`` is resolved); the flags typed are carried.
    """
    current = _layout(tmp_path)
    releases = tmp_path / "releases"
    command: list[str] = [word.format(current=current) for word in typed]
    if command[-1] == "start":
        command.append("release_app:main")
    if "start" in command:
        command += [*_options(current), "--listen", "http=127.0.0.1:0"]
    pid = _start(current, command)
    try:
        assert _answer(tmp_path / "run") == ("v1", "1", str(releases / "1" / "venv"), pid)
        assert _exe(pid) == str(releases / "1" / "venv" / "bin" / "python")
        _switch(current, "2")
        successor = _upgrade(current)
        assert _answer(tmp_path / "run") == ("v2", "2", str(releases / "2" / "venv"), successor)
        assert _exe(successor) == str(releases / "2" / "venv" / "bin" / "python")
        assert cmdline(successor).split("\0")[:-1] == command
        shutil.rmtree(releases / "1")
        again = _upgrade(current)
        assert _answer(tmp_path / "run") == ("v2", "2", str(releases / "2" / "venv"), again)
    finally:
        aiodaemon_cli("stop", "--pidfile", tmp_path / "run" / "app.pid", "--timeout", "10")


def test_a_program_read_from_a_fifo_starts(tmp_path: Path) -> None:
    """``python app`` with ``app`` a FIFO: the start does not wait for a writer to read its ``#!``.

    The interpreter read the program to its end; what the upgrade looks for at
    the start must not open the FIFO for a second read, which waits forever.
    """
    fifo = tmp_path / "app"
    os.mkfifo(fifo)

    def write() -> None:
        with open(fifo, "wb") as pipe:
            pipe.write(PROGRAM.read_bytes())

    writer = threading.Thread(target=write)
    writer.start()
    pidfile = tmp_path / "app.pid"
    env = {"APP_PIDFILE": str(pidfile), "APP_LOG": str(tmp_path / "app.log"), "APP_FOREGROUND": "1"}
    daemon = subprocess.Popen(
        [PYTHON, str(fifo)],
        env=clean_env(env),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        writer.join(timeout=30)
        assert read_pid(pidfile) == daemon.pid
        wait_for(
            lambda: [r for r in read_json_lines(tmp_path / "app.log") if r["event"] == "ready"],
            what="the ready record",
        )
        stopped = aiodaemon_cli("stop", "--pidfile", pidfile, "--timeout", "10")
        assert stopped.returncode == 0, stopped.stderr
        assert daemon.wait(timeout=30) == 0
    finally:
        daemon.kill()
        daemon.wait()
        if writer.is_alive():  # the interpreter never opened the FIFO: let the writer go
            os.close(os.open(fifo, os.O_RDONLY | os.O_NONBLOCK))
