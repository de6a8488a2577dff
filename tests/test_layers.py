"""Architecture rules: the detach side never imports asyncio, layers only call downward.

The static checks read the imports; the others run real interpreters, so a lazy
import or an import hidden in a dependency cannot slip past them.
"""

from __future__ import annotations

import ast
import json
import subprocess
from pathlib import Path

import pytest

from .support import PYTHON, REPO, clean_env, python, wait_for

PACKAGE = Path(__file__).resolve().parent.parent / "aiodaemon"

#: Modules of the synchronous, pre-fork side: no event loop may exist there.
SYNC_SIDE = (
    "_addresses",
    "_identity",
    "_messages",
    "_config",
    "_pidfile",
    "_stdfds",
    "_readiness",
    "_detach",
    "_init",
    "_handoff",
    "_adopt",
    "_adopt_fds",
    "_privileges",
    "_terminal",
    "_prctl",
    "_sockets",
    "_control_protocol",
    "_control_socket",
    "_control_client",
    "_control_trust",
    "_control",
    "_lost_pidfile",
    "_lost_holder",
    "_pidfile_trust",
    "_reload_command",
    "_stale",
    "_stop",
    "_safeopen",
    "_sharedfile",
    "_unixbind",
    "exceptions",
    "_pidlock",
    "_pep3143_pidfile",
    "pep3143",
)

#: Phase order: a module may import only modules of its own or an earlier layer.
LAYERS = [
    {"exceptions", "_messages", "_control_protocol", "_sharedfile"},
    {"_addresses", "_safeopen", "_identity", "_prctl"},
    {"_config", "_options"},
    {
        "_pidfile",
        "_sockets",
        "_unixbind",
        "_control_socket",
        "_logsinks",
        "_syslogsocket",
        "_syslogsink",
        "_logchain",
        "_logecho",
        "_logwriter",
        "_logging",
        "_readiness",
        "_state",
        "_outcome",
    },
    {"_stdfds", "_acquire", "_detach", "_init", "_handoff", "_adopt", "_adopt_fds"},
    {"_privileges", "_terminal"},
    {"_pidlock", "_pep3143_pidfile"},
    {"pep3143"},
    {
        "_systemd",
        "_hooks",
        "_context",
        "_serving",
        "_health",
        "_forced",
        "_signal_mask",
        "_user_exit",
        "_upgrade_channel",
    },
    {
        "_loop",
        "_reloads",
        "_control_server",
        "_services",
        "_upgrade",
        "_takeover",
        "_upgrade_reloads",
    },
    {"_upgrade_service"},
    {"_signal_handlers"},
    {"_runtime", "_shutdown", "_builtin", "_startup", "_reload"},
    {"_launch", "_successor"},
    {"_daemon"},
    {"__init__"},
    {
        "_control_client",
        "_control_trust",
        "_pidfile_trust",
        "_lost_pidfile",
        "_control",
        "_lost_holder",
        "_reload_command",
        "_stale",
        "_stop",
        "_upgrade_command",
        "_importer",
        "_cli_parser",
    },
    {"_cli", "__main__"},
    # The testing kit drives a daemon from outside, like a user: it sits on top of everything.
    {"_kit_errors", "_kit_options", "_kit_process", "testing", "_pytest_plugin"},
]


def imports_of(module: str) -> set[str]:
    """Top-level names of every module ``module`` imports, package-relative ones with a dot."""
    tree = ast.parse((PACKAGE / f"{module}.py").read_text())
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                if node.module:
                    found.add("." + node.module.split(".")[0])
                else:
                    found.update("." + alias.name for alias in node.names)
            elif node.module:
                found.add(node.module.split(".")[0])
    return found


def closure(module: str) -> set[str]:
    """Every package module reachable from ``module`` through imports, and itself."""
    seen, todo = set(), [module]
    while todo:
        current = todo.pop()
        if current in seen or not (PACKAGE / f"{current}.py").exists():
            continue
        seen.add(current)
        todo.extend(name[1:] for name in imports_of(current) if name.startswith("."))
    return seen


def test_detach_side_never_imports_asyncio() -> None:
    """No module of the pre-fork side, nor anything it imports, imports asyncio."""
    for module in SYNC_SIDE:
        for reached in closure(module):
            assert "asyncio" not in imports_of(reached), f"{module} reaches asyncio via {reached}"
            assert "uvloop" not in imports_of(reached), f"{module} reaches uvloop via {reached}"


def test_layers_only_import_downward() -> None:
    """Each module imports only modules of its own or an earlier phase."""
    rank = {name: i for i, layer in enumerate(LAYERS) for name in layer}
    modules = sorted(p.stem for p in PACKAGE.glob("*.py"))
    assert set(modules) <= set(rank), f"unranked modules: {set(modules) - set(rank)}"
    for module in modules:
        for name in imports_of(module):
            if name.startswith(".") and name[1:] in rank:
                assert rank[name[1:]] <= rank[module], f"{module} imports later layer {name}"


def test_the_testing_kit_uses_no_private_module() -> None:
    """aiodaemon.testing talks to daemons only through the command, signals and the log file."""
    kit = closure("testing")
    assert kit == {"testing", "_kit_errors", "_kit_options", "_kit_process"}
    for module in kit:
        assert not [n for n in imports_of(module) if n.startswith(".") and n[1:] not in kit]


@pytest.mark.parametrize("module", SYNC_SIDE)
def test_importing_a_pre_fork_module_loads_no_asyncio(module: str) -> None:
    """In a fresh interpreter, importing a pre-fork module (and aiodaemon) loads no asyncio."""
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
