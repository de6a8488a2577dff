"""Tables the docs repeat on several pages say what the code has: members, signals, exit codes."""

from __future__ import annotations

import inspect
import re

from aiodaemon._run._context import Context
from aiodaemon.exceptions import ExitCode
from aiodaemon.testing import DaemonProcess

from .support import REPO
from .test_docs import DOCS, table_rows


def public_members(cls: type) -> set[str]:
    """The public methods and properties of ``cls``, and the attributes its docstring lists."""
    # cleandoc: Python 3.13 already strips docstrings' indentation when compiling.
    doc = inspect.cleandoc(cls.__doc__ or "")
    attributes = doc.partition("Attributes:\n")[2]
    listed = set(re.findall(r"^ {4}([a-z_]+): ", attributes, re.M))
    return listed | {name for name in dir(cls) if not name.startswith("_")}


def test_the_context_table_lists_every_member() -> None:
    """docs/lifecycle.md's Context table has a row for each public member, and no other."""
    rows = table_rows(DOCS / "lifecycle.md", "## Context")
    documented = {name for row in rows for name in re.findall(r"ctx\.([a-z_]+)", row[0])}
    assert documented == public_members(Context)


def test_the_handle_table_lists_every_member() -> None:
    """docs/testing.md's handle table has a row for each public member of DaemonProcess."""
    rows = table_rows(DOCS / "testing.md", "## The handle")
    documented = {name for row in rows for name in re.findall(r"daemon\.([a-z_]+)", row[0])}
    assert documented == public_members(DaemonProcess)


def exit_statuses(page: str, heading: str) -> set[str]:
    """The statuses in the first column of the exit-status table under ``heading``."""
    return {row[0] for row in table_rows(REPO / page, heading)}


def test_every_exit_status_table_has_every_code() -> None:
    """The README's and production.md's exit-status tables list each ExitCode, 128 + n and n."""
    codes = {str(code.value) for code in ExitCode} | {"128 + n", "n"}
    assert exit_statuses("README.md", "## Exit status (`aiodaemon.ExitCode`)") == codes
    assert exit_statuses("docs/production.md", "### Of the daemon, and of `run`") == codes


def signals_in(page: str, heading: str) -> set[str]:
    """Every SIGxxx named in the first column of the signal table under ``heading``."""
    rows = table_rows(REPO / page, heading)
    return {name for row in rows for name in re.findall(r"\bSIG[A-Z0-9]+\b", row[0])}


def test_signal_tables_agree() -> None:
    """The README and production.md describe the signals docs/options.md's table lists."""
    owned = signals_in("docs/options.md", "## Signals")
    # The README leaves out SIGCHLD (PID 1 only); production.md adds SIGKILL (stop's last word).
    assert signals_in("README.md", "## Signals") == owned - {"SIGCHLD"}
    assert signals_in("docs/production.md", "## Signals") == owned | {"SIGKILL"}


def test_pid1_forwarded_signals_are_the_ones_forwarded() -> None:
    """lifecycle.md and kubernetes.md name the signals PID 1 passes on to the daemon."""
    import signal

    from aiodaemon._prefork._init import FORWARDED_SIGNALS

    forwarded = {signal.Signals(number).name for number in FORWARDED_SIGNALS}
    for page in ("lifecycle.md", "kubernetes.md"):
        text = " ".join((DOCS / page).read_text().split())
        (listed,) = re.findall(r"forwards (SIG[A-Z0-9, ]+) and the program's `on_signal`", text)
        assert set(re.findall(r"SIG[A-Z0-9]+", listed)) == forwarded, page


def test_the_readme_names_every_option_with_its_default() -> None:
    """The README's option list names every run() option; each default it gives is the real one."""
    import ast

    from aiodaemon._prefork._config import OPTION_NAMES, parse_options

    text = (REPO / "README.md").read_text().split("\n## Options\n", 1)[1].split("\n## ", 1)[0]
    text = " ".join(text.split())
    assert set(re.findall(r"`([a-z_]+)`", text)) >= set(OPTION_NAMES)
    baseline = parse_options({})
    defaults = re.findall(r"`([a-z_]+)` \(([^()]+)\)", text)
    assert len(defaults) >= 10, defaults
    for name, said in defaults:
        # `detach` (None: detach unless ...), `ready` ("startup" or "manual"): the first.
        default = said.split(":")[0].split(" or ")[0]
        value = ast.literal_eval(default)
        assert parse_options({name: value}) == baseline, f"README: {name} ({default})"


def test_lifecycle_names_every_signal_on_signal_refuses() -> None:
    """docs/lifecycle.md's "Refused when decorated" paragraph names exactly the refused signals."""
    import signal

    from aiodaemon._run._signal_handlers import REFUSED

    text = " ".join((DOCS / "lifecycle.md").read_text().split())
    paragraph = text.split("Refused when decorated", 1)[1].split(" As PID 1", 1)[0]
    named = set(re.findall(r"\bSIG[A-Z0-9]+\b", paragraph))
    assert named == {signal.Signals(number).name for number in REFUSED}
