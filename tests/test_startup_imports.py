"""What a minimal daemon's start-up imports: only what every configuration needs.

Start-up cost is measured by ``benchmarks/detach.py --startup``; this only keeps
the modules that made it slow (pathlib with urllib.parse and ipaddress, package
metadata, the health and control servers) off the path of a daemon that does not
use them.
"""

from __future__ import annotations

import json
import signal
import subprocess
from pathlib import Path

import pytest

from tests.support import (
    PYTHON,
    REPO,
    clean_env,
    kill_quietly,
    program,
    python,
    read_pid,
    wait_for,
    wait_gone,
)

#: Imported only by configurations that need them (a pidfile, listening or
#: syslog addresses, stdio files, a control socket, health, a service manager,
#: a chroot or a privilege drop, asyncio's loop), never by a minimal daemon.
NOT_FOR_EVERYONE = {
    "pathlib",
    "urllib.parse",
    "ipaddress",
    "importlib.metadata",
    "importlib.util",
    "encodings.idna",
    "concurrent.futures.thread",
    "ctypes",
    "grp",
    "pwd",
    "aiodaemon._prefork._addresses",
    "aiodaemon._prefork._filekind",
    "aiodaemon._prefork._control_socket",
    "aiodaemon._run._health",
    "aiodaemon._prefork._identity",
    "aiodaemon._prefork._lockholder",
    "aiodaemon._prefork._pidfile",
    "aiodaemon._prefork._pidfile_status",
    "aiodaemon._prefork._prctl",
    "aiodaemon._prefork._safeopen",
    "aiodaemon._prefork._sharedfile",
    "aiodaemon._prefork._sockets",
    "aiodaemon._prefork._syslogsink",
    "aiodaemon._prefork._syslogsocket",
    "aiodaemon._run._notify_backlog",
    "aiodaemon._run._notify_socket",
    "aiodaemon._run._systemd",
    "aiodaemon._prefork._terminal",
    "aiodaemon._prefork._unixbind",
    "aiodaemon._run._selector_loop",
    "aiodaemon._logs._fullstdio",
    "aiodaemon._logs._outputs",
    "aiodaemon._logs._console",
}


#: Every module a minimal daemon's start-up loads beyond the floor (asyncio,
#: uvloop, structlog): each costs ~0.1-0.3 ms of every start (issue 16,
#: benchmarks/detach.py --instructions). A module new here is a conscious choice:
#: load it lazily if only some configurations need it, else add it here.
MINIMAL_START = frozenset(
    {
        "aiodaemon",
        "aiodaemon._daemon",
        "aiodaemon._launch",
        "aiodaemon._logs",
        "aiodaemon._logs._logchain",
        "aiodaemon._logs._logging",
        "aiodaemon._logs._logwriter",
        "aiodaemon._logs._sinkwriter",
        "aiodaemon._prefork",
        "aiodaemon._prefork._acquire",
        "aiodaemon._prefork._config",
        "aiodaemon._prefork._cwd",
        "aiodaemon._prefork._detach",
        "aiodaemon._prefork._handoff",
        "aiodaemon._prefork._inherited",
        "aiodaemon._prefork._interrupts",
        "aiodaemon._prefork._invocation",
        "aiodaemon._prefork._launcher",
        "aiodaemon._prefork._logsinks",
        "aiodaemon._prefork._messages",
        "aiodaemon._prefork._pinned",
        "aiodaemon._prefork._privileges",
        "aiodaemon._prefork._readiness",
        "aiodaemon._prefork._stdfds",
        "aiodaemon._run",
        "aiodaemon._run._backlog",
        "aiodaemon._run._builtin",
        "aiodaemon._run._children",
        "aiodaemon._run._context",
        "aiodaemon._run._exit_notice",
        "aiodaemon._run._forced",
        "aiodaemon._run._forked_child",
        "aiodaemon._run._hooks",
        "aiodaemon._run._kept_signals",
        "aiodaemon._run._loop",
        "aiodaemon._run._outcome",
        "aiodaemon._run._own_children",
        "aiodaemon._run._own_tasks",
        "aiodaemon._run._process_end",
        "aiodaemon._run._reload",
        "aiodaemon._run._reloads",
        "aiodaemon._run._runner",
        "aiodaemon._run._runtime",
        "aiodaemon._run._services",
        "aiodaemon._run._serving",
        "aiodaemon._run._shutdown",
        "aiodaemon._run._signal_handlers",
        "aiodaemon._run._signal_mask",
        "aiodaemon._run._startup",
        "aiodaemon._run._state",
        "aiodaemon._run._upgrade",
        "aiodaemon._run._upgrade_service",
        "aiodaemon._run._user_exit",
        "aiodaemon._run._uvloop_signals",
        "aiodaemon._version",
        "aiodaemon.exceptions",
        "orjson",
        "orjson.orjson",
        "resource",
    }
)


def started_on_files(tmp_path: Path) -> set[str]:
    """What a minimal daemon's start-up loads, its stdio on files (no reader to lose)."""
    out, err = tmp_path / "out", tmp_path / "err"
    with out.open("w") as stdout, err.open("w") as stderr:
        result = subprocess.run(
            [PYTHON, REPO / "tests" / "programs" / "startup_modules.py"],
            stdin=subprocess.DEVNULL,
            stdout=stdout,
            stderr=stderr,
            env=clean_env(),
            timeout=30,
            check=False,
        )
    assert result.returncode == 0, err.read_text()
    return set(out.read_text().split())


def test_a_minimal_daemon_imports_nothing_it_does_not_use(tmp_path: Path) -> None:
    """A foreground daemon with no options loads none of the optional modules."""
    loaded = started_on_files(tmp_path)
    assert "aiodaemon._run._runtime" in loaded
    assert loaded & NOT_FOR_EVERYONE == set()
    assert sorted(loaded - MINIMAL_START) == [], "new on every start"
    assert sorted(MINIMAL_START - loaded) == [], "no longer loaded: drop from MINIMAL_START"


def test_a_foreground_daemon_on_a_pipe_loads_only_what_survives_its_readers_end() -> None:
    """Its stdout's reader may exit (a terminal hang up): that costs _fullstdio, nothing more."""
    result = python([REPO / "tests" / "programs" / "startup_modules.py"])
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert sorted(loaded - MINIMAL_START) == ["aiodaemon._logs._fullstdio"]


def test_a_daemon_with_a_pidfile_loads_no_metadata_nor_pathlib(tmp_path: Path) -> None:
    """A pidfile and its control socket cost neither: ~15 ms and ~3 ms to ready.

    The status answer's version is a literal, not importlib.metadata; paths are
    strings, not pathlib (which brings urllib.parse and ipaddress).
    """
    options = json.dumps({"pidfile": str(tmp_path / "d.pid")})
    result = python([REPO / "tests" / "programs" / "startup_modules.py", options])
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert {"aiodaemon._prefork._pidfile", "aiodaemon._run._control_server"} <= loaded
    assert loaded & {"importlib.metadata", "pathlib", "urllib.parse", "ipaddress"} == set()


@pytest.mark.parametrize("host", ["127.0.0.1", "localhost"])
def test_listening_on_an_ascii_host_loads_no_idna_codec(host: str) -> None:
    """A str host would go through the "idna" codec (~1.5 ms): an ASCII one is passed as bytes."""
    options = json.dumps({"listen": {"web": f"{host}:0"}, "health": f"{host}:0"})
    result = python([REPO / "tests" / "programs" / "startup_modules.py", options])
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert {"aiodaemon._prefork._sockets", "aiodaemon._run._health"} <= loaded
    assert loaded & {"encodings.idna", "ipaddress"} == set()


def test_the_version_is_the_installed_distributions() -> None:
    """``__version__``, ``--version`` and the installed metadata say the same."""
    import importlib.metadata

    import aiodaemon

    result = python(["-m", "aiodaemon", "--version"])
    assert result.returncode == 0, result.stderr
    assert result.stdout == f"aiodaemon {aiodaemon.__version__}\n"
    assert aiodaemon.__version__ == importlib.metadata.version("aiodaemon")


@pytest.mark.root
def test_a_privilege_dropping_daemon_loads_no_hashlib() -> None:
    """What a dropped daemon may import later is loaded ahead, but not ``secrets``.

    An upgrade's one-time secret is ``os.urandom`` in hex: ``secrets`` (with
    hashlib, hmac and random) cost ~3 ms of every such start.
    """
    options = json.dumps({"user": "nobody"})
    result = python([REPO / "tests" / "programs" / "startup_modules.py", options])
    assert result.returncode == 0, result.stderr
    loaded = set(result.stdout.split())
    assert {"aiodaemon._prefork._identity", "aiodaemon._run._systemd", "pwd"} <= loaded
    assert loaded & {"secrets", "hashlib", "hmac", "random"} == set()


@pytest.mark.parametrize("collector", ["on", "off"])
def test_the_collector_is_back_as_the_program_left_it_once_ready(
    tmp_path: Path, collector: str
) -> None:
    """The start-up pauses garbage collection; a ready daemon has it back, nothing frozen.

    A program that turned the collector off itself finds it still off.
    """
    pidfile, report = tmp_path / "d.pid", tmp_path / "gc.json"
    result = python([program("startup_gc"), pidfile, report, collector])
    assert result.returncode == 0, result.stderr
    pid = read_pid(pidfile)
    try:
        state = wait_for(lambda: report.exists() and report.read_text(), what="the gc report")
        assert json.loads(state) == {"enabled": collector == "on", "frozen": 0}
    finally:
        kill_quietly(pid, signal.SIGTERM)
    wait_gone(pid)


def test_loading_aiodaemon_compiles_no_string() -> None:
    """A TypeVar's string bound or a NamedTuple's string annotation is a ForwardRef
    compiled at every start (~0.2 M instructions each); ``Options`` had 23."""
    result = python([program("startup_compiles")])
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == []


def test_a_detached_daemon_imports_nothing_after_its_fork(tmp_path: Path) -> None:
    """Its launcher loads what it runs: imported in the daemon, a module costs more to ready."""
    written = tmp_path / "imports"
    result = python([REPO / "tests" / "programs" / "detached_imports.py", written])
    assert result.returncode == 0, result.stderr
    wait_for(written.exists, what="the daemon's list")
    pid, *imported = written.read_text().split()
    assert imported == []
    wait_gone(int(pid))  # main returned: the daemon exits
