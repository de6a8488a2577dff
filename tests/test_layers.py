"""Architecture rules: the folders are the phases, the sync side never imports asyncio.

The static checks read the imports; the others run real interpreters, so a lazy
import or an import hidden in a dependency cannot slip past them.
"""

from __future__ import annotations

import ast
import functools
import json
import subprocess
from pathlib import Path

import pytest

from .support import PYTHON, REPO, clean_env, python, wait_for

PACKAGE = Path(__file__).resolve().parent.parent / "aiodaemon"

#: The package's folders in phase order (STYLE): a module may import only from its
#: own folder or an earlier one. Top-level modules are ranked one by one.
FOLDERS: dict[str, int] = {
    "exceptions": 0,
    "_version": 0,
    "_options": 0,
    "_prefork": 1,
    "_logs": 2,
    "_run": 3,
    "_launch": 4,
    "_successor": 4,
    "_daemon": 4,
    "pep3143": 4,
    "__init__": 5,
    "_cli": 6,
    "__main__": 6,
    "_kit": 7,
    "testing": 7,
}

#: The pre-fork folder and the synchronous public modules: no event loop may exist
#: there, so nothing they import, even lazily, may import asyncio.
PRE_FORK = ("_prefork",)
SYNC_MODULES = ("exceptions", "pep3143")
#: Folders whose modules load no asyncio when imported: the control commands (the
#: CLI's run/start import the runtime only when they run a daemon).
SYNC_AT_IMPORT = ("_prefork", "_cli")

#: Phase order within and across the folders: a module may import only modules of
#: its own or an earlier layer (config -> acquire -> detach -> drop -> run -> CLI).
LAYERS = [
    {"_prefork._pidns"},
    {
        "_prefork._control_protocol",
        "_prefork._interrupts",
        "_prefork._exit_mark",
        "_prefork._fdshare",
        "_prefork._filekind",
        "_prefork._freezer",
        "_prefork._invocation",
        "_prefork._messages",
        "_prefork._nproc",
        "_prefork._pinned",
        "_prefork._procfs",
        "_prefork._relaunch",
        "_prefork._sharedfile",
        "_version",
        "exceptions",
    },
    {
        "_prefork._addresses",
        "_prefork._cwd",
        "_prefork._fd_placeholders",
        "_prefork._identity",
        "_prefork._jailpath",
        "_prefork._lockholder",
        "_prefork._prctl",
        "_prefork._safeopen",
        "_prefork._sunpath",
        "_prefork._tcpunsent",
        "_prefork._unixdiag",
    },
    {"_options", "_prefork._config"},
    {
        "_logs._console",
        "_logs._logchain",
        "_logs._logecho",
        "_logs._logging",
        "_logs._fullstdio",
        "_logs._outputs",
        "_logs._logwriter",
        "_logs._program_config",
        "_logs._sinkwriter",
        "_prefork._control_socket",
        "_prefork._kill",
        "_prefork._logsinks",
        "_prefork._pidfile",
        "_prefork._pidfile_status",
        "_prefork._readiness",
        "_prefork._resume",
        "_prefork._sockets",
        "_prefork._syslogsink",
        "_prefork._syslogsocket",
        "_prefork._unixbind",
        "_run._kept_signals",
        "_run._outcome",
        "_run._own_children",
        "_run._own_tasks",
        "_run._state",
    },
    {
        "_prefork._acquire",
        "_prefork._adopt",
        "_prefork._adopt_fds",
        "_prefork._detach",
        "_prefork._handoff",
        "_prefork._init",
        "_prefork._inherited",
        "_prefork._launcher",
        "_prefork._stdfds",
    },
    {"_prefork._privileges", "_prefork._terminal"},
    {"_prefork._pep3143_pidfile", "_prefork._pidlock"},
    {"_prefork._pep3143_caller", "_prefork._pep3143_open", "pep3143"},
    {
        "_run._backlog",
        "_run._children",
        "_run._context",
        "_run._exit_notice",
        "_run._forced",
        "_run._forked_child",
        "_run._health",
        "_run._hooks",
        "_run._notify_backlog",
        "_run._notify_socket",
        "_run._selector_loop",
        "_run._serving",
        "_run._signal_mask",
        "_run._systemd",
        "_run._upgrade_channel",
        "_run._user_exit",
        "_run._uvloop_signals",
    },
    {
        "_run._control_server",
        "_run._loop",
        "_run._process_end",
        "_run._reloads",
        "_run._services",
        "_run._takeover",
        "_run._upgrade",
        "_run._upgrade_reloads",
        "_run._upgrade_watch",
    },
    {"_run._upgrade_service"},
    {"_run._signal_handlers"},
    {
        "_run._builtin",
        "_run._reload",
        "_run._runner",
        "_run._runtime",
        "_run._shutdown",
        "_run._startup",
    },
    {"_launch", "_successor"},
    {"_daemon"},
    {"__init__"},
    {
        "_cli._control",
        "_cli._control_client",
        "_cli._control_trust",
        "_cli._exiting",
        "_cli._help",
        "_cli._importer",
        "_cli._lost_holder",
        "_cli._lost_pidfile",
        "_cli._parser",
        "_cli._pidfile_trust",
        "_cli._reload_command",
        "_cli._restart_binds",
        "_cli._restart_ports",
        "_cli._restart_sockets",
        "_cli._signalled_upgrade",
        "_cli._stale",
        "_cli._start_after_start",
        "_cli._start_after_stop",
        "_cli._start_suspended",
        "_cli._status_command",
        "_cli._stop",
        "_cli._stop_claim",
        "_cli._taken_over",
        "_cli._upgrade_command",
    },
    {
        "__main__",
        "_cli._args",
        "_cli._daemon_commands",
        "_cli._dispatch",
        "_cli._flags",
        "_cli._main",
    },
    # The testing kit drives a daemon from outside, like a user: it sits on top of everything.
    {
        "_kit._block",
        "_kit._errors",
        "_kit._files",
        "_kit._options",
        "_kit._process",
        "_kit._pytest_plugin",
        "_kit._watchdog",
        "testing",
    },
]


def all_modules() -> list[str]:
    """Every module of the package, dotted from the package (``_run._runtime``, ``_run``)."""
    found = []
    for path in PACKAGE.rglob("*.py"):
        parts = list(path.relative_to(PACKAGE).with_suffix("").parts)
        if parts[-1] == "__init__" and len(parts) > 1:
            parts.pop()
        found.append(".".join(parts))
    return sorted(found)


def source_of(module: str) -> Path:
    """The file of a dotted package-relative module name."""
    path = PACKAGE.joinpath(*module.split("."))
    return path / "__init__.py" if path.is_dir() else path.with_suffix(".py")


def folder_of(module: str) -> str:
    """The folder (or top-level module) a module ranks with."""
    return module.split(".")[0]


# Cached: the closures ask for the same modules hundreds of times, and parsing
# each again made a CPU-bound test take a large part of its time limit on a busy machine.
@functools.cache
def imports_of(module: str) -> frozenset[str]:
    """What ``module`` imports: package modules dotted with a leading dot, others by top name."""
    source = source_of(module)
    tree = ast.parse(source.read_text())
    is_package = source.name == "__init__.py" and module != "__init__"
    here = module.split(".") if is_package else module.split(".")[:-1]
    modules = set(all_modules())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = here[: len(here) - node.level + 1]
                target = ".".join([*base, *(node.module.split(".") if node.module else [])])
                for alias in node.names:
                    child = f"{target}.{alias.name}" if target else alias.name
                    if child in modules:
                        found.add("." + child)
                    elif target:
                        found.add("." + target)
            elif node.module:
                found.add(node.module.split(".")[0])
    return frozenset(found)


def closure(module: str) -> set[str]:
    """Every package module reachable from ``module`` through imports, and itself."""
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current in seen or not source_of(current).exists():
            continue
        seen.add(current)
        todo.extend(name[1:] for name in imports_of(current) if name.startswith("."))
    return seen


def in_folders(folders: tuple[str, ...]) -> list[str]:
    """Every module of ``folders``, and the synchronous top-level modules."""
    return [m for m in all_modules() if folder_of(m) in folders] + list(SYNC_MODULES)


def test_the_folders_are_the_phases() -> None:
    """Every module sits in a ranked folder, and each folder holds more than one module."""
    modules = all_modules()
    assert {folder_of(m) for m in modules} == set(FOLDERS)
    for folder in ("_prefork", "_logs", "_run", "_cli", "_kit"):
        assert len([m for m in modules if m.startswith(folder + ".")]) > 1


def test_detach_side_never_imports_asyncio() -> None:
    """No module of the pre-fork side, nor anything it imports, imports asyncio."""
    for module in in_folders(PRE_FORK):
        for reached in closure(module):
            for name in ("asyncio", "uvloop", "structlog"):
                assert name not in imports_of(reached), f"{module} reaches {name} via {reached}"


def test_folders_only_import_downward() -> None:
    """A module imports only from its own folder or an earlier one."""
    for module in all_modules():
        for name in imports_of(module):
            if name.startswith("."):
                rank, own = FOLDERS[folder_of(name[1:])], FOLDERS[folder_of(module)]
                assert rank <= own, f"{module} imports {name[1:]} of a later folder"


def test_layers_only_import_downward() -> None:
    """Each module imports only modules of its own or an earlier phase."""
    rank = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    modules = [m for m in all_modules() if source_of(m).name != "__init__.py" or m == "__init__"]
    assert set(modules) <= set(rank), f"unranked modules: {set(modules) - set(rank)}"
    for module in modules:
        for name in imports_of(module):
            if name.startswith(".") and name[1:] in rank:
                assert rank[name[1:]] <= rank[module], f"{module} imports later layer {name}"


def test_the_testing_kit_uses_no_private_module() -> None:
    """aiodaemon.testing talks to daemons only through the command, signals and the log file."""
    kit = closure("testing")
    assert kit == {
        "testing",
        "_kit._block",
        "_kit._errors",
        "_kit._files",
        "_kit._options",
        "_kit._process",
    }
    for module in kit:
        assert not [n for n in imports_of(module) if n.startswith(".") and n[1:] not in kit]


@pytest.mark.parametrize("module", in_folders(SYNC_AT_IMPORT))
def test_importing_a_pre_fork_module_loads_no_asyncio(module: str) -> None:
    """In a fresh interpreter, a synchronous-side module (and aiodaemon) loads no asyncio."""
    code = (
        f"import sys, aiodaemon.{module}; "
        "print(sorted(m for m in sys.modules if m.split('.')[0] in ('asyncio', 'uvloop')))"
    )
    result = python(["-c", code])
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "[]"


def test_no_thread_and_no_loop_exist_at_any_fork(tmp_path: Path) -> None:
    """A detached daemon forks with one thread and no event loop, and only then starts them."""
    record, pidfile = tmp_path / "record.txt", tmp_path / "d.pid"
    options = {"detach": True, "pidfile": str(pidfile), "log_file": str(tmp_path / "log")}
    program = REPO / "tests" / "programs" / "fork_witness.py"
    launched = subprocess.run(
        [PYTHON, str(program), json.dumps(options), str(record)],
        capture_output=True,
        text=True,
        timeout=30,
        env=clean_env(),
        check=False,
    )
    assert launched.returncode == 0, launched.stderr
    wait_for(lambda: "main" in record.read_text(), what="main to run")
    wait_for(lambda: not pidfile.exists(), what="the daemon to exit")
    lines = record.read_text().splitlines()
    assert lines == [
        "fork threads=1 loop=False",
        "fork threads=1 loop=False",
        "main threads>1=True",
    ]
