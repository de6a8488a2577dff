"""Architecture rules: the detach side never imports asyncio, layers only call downward."""

from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parent.parent / "aiodaemon"

#: Modules of the synchronous, pre-fork side: no event loop may exist there.
SYNC_SIDE = (
    "_addresses",
    "_messages",
    "_config",
    "_pidfile",
    "_stdfds",
    "_readiness",
    "_detach",
    "_init",
    "_privileges",
    "_sockets",
    "_control_protocol",
    "_control_socket",
    "_control_client",
    "_control",
    "_safeopen",
    "_unixbind",
    "exceptions",
    "_pidlock",
    "pep3143",
)

#: Phase order: a module may import only modules of its own or an earlier layer.
LAYERS = [
    {"exceptions", "_messages", "_control_protocol"},
    {"_addresses", "_safeopen"},
    {"_config", "_options"},
    {
        "_pidfile",
        "_sockets",
        "_unixbind",
        "_control_socket",
        "_logsinks",
        "_logchain",
        "_logecho",
        "_logging",
        "_readiness",
        "_state",
        "_outcome",
    },
    {"_stdfds", "_acquire", "_detach", "_init"},
    {"_privileges"},
    {"_pidlock"},
    {"pep3143"},
    {"_systemd", "_hooks", "_context", "_serving", "_health", "_forced"},
    {"_loop", "_reloads", "_control_server", "_services"},
    {"_signal_handlers"},
    {"_builtin"},
    {"_runtime"},
    {"_daemon"},
    {"__init__"},
    {"_control_client", "_control", "_cli", "__main__"},
    # The testing kit drives a daemon from outside, like a user: it sits on top of everything.
    {"testing", "_pytest_plugin"},
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
    assert not [name for name in imports_of("testing") if name.startswith(".")]
