"""The systemd units shipped in examples/ and shown in docs/ pass systemd-analyze verify."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.support import PYTHON, REPO, require_tool

EXAMPLES = REPO / "examples" / "systemd"
DOCS = REPO / "docs"
#: Where the units expect aiodaemon to be installed; verify needs a real executable.
INSTALLED = re.compile(r"/\S*/venv/bin/aiodaemon")


def doc_units() -> dict[str, str]:
    """Every ``ini`` block of the docs that is a unit, by ``page:index``."""
    units = {}
    for page in sorted(DOCS.glob("*.md")):
        blocks = re.findall(r"```ini\n(.*?)```", page.read_text(), re.S)
        for index, block in enumerate(blocks):
            if "[Service]" in block or "[Socket]" in block:
                units[f"{page.stem}:{index}"] = block
    return units


def verify(tmp_path: Path, units: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """``systemd-analyze verify`` on ``units`` (file name -> text), installed paths made real."""
    analyze = require_tool("systemd-analyze")
    paths = []
    for name, text in units.items():
        path = tmp_path / name
        path.write_text(INSTALLED.sub(PYTHON, text))
        paths.append(str(path))
    return subprocess.run(
        [analyze, "verify", "--man=no", *paths],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_example_units_verify_cleanly(tmp_path: Path) -> None:
    """echo.service, echo@.service, echo.socket and echo-forking.service: no error, no warning."""
    units = {
        path.name: path.read_text()
        for path in sorted(EXAMPLES.iterdir())
        if path.suffix in (".service", ".socket")
    }
    assert set(units) == {"echo.service", "echo@.service", "echo.socket", "echo-forking.service"}
    # An instance of the template, so that its specifiers are expanded and checked too.
    units["echo@8007.service"] = units["echo@.service"]
    result = verify(tmp_path, units)
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_echo_service_works_on_systemd_252() -> None:
    """echo.service uses Type=notify (252 rejects notify-reload); the variant sits beside it."""
    unit = (EXAMPLES / "echo.service").read_text()
    assert re.search(r"^Type=notify$", unit, re.M)
    assert re.search(r"^ExecReload=\S+/aiodaemon reload --pidfile \S+$", unit, re.M)
    variant = (EXAMPLES / "echo.service.d" / "notify-reload.conf").read_text()
    assert re.search(r"^Type=notify-reload$", variant, re.M)
    assert re.search(r"^ExecReload=$", variant, re.M)


@pytest.mark.parametrize("name", sorted(doc_units()))
def test_units_in_the_docs_verify_cleanly(name: str, tmp_path: Path) -> None:
    """Each unit printed in docs/ passes systemd-analyze verify without a warning."""
    result = verify(tmp_path, {"echo.service": doc_units()[name]})
    assert result.returncode == 0, result.stderr
    assert result.stderr == ""


def test_the_forking_unit_in_the_docs_creates_its_directories() -> None:
    """The docs' forking unit has systemd create the pidfile's and the log's directories."""
    (unit,) = [text for text in doc_units().values() if "Type=forking" in text]
    assert "RuntimeDirectory=echo" in unit
    assert "/run/echo/echo.pid" in unit
    assert "LogsDirectory=echo" in unit
    assert "/var/log/echo/echo.jsonl" in unit


def every_unit() -> dict[str, str]:
    """The example units and the docs' units, by name."""
    examples = {
        path.name: path.read_text()
        for path in sorted(EXAMPLES.iterdir())
        if path.suffix in (".service", ".socket")
    }
    return {**examples, **doc_units()}


def pidfiles(unit: str, key: str) -> set[str]:
    """The ``--pidfile`` paths of the ``key=`` command lines of ``unit``."""
    lines = re.findall(rf"^{key}=(.*)$", unit, re.M)
    return {path for line in lines for path in re.findall(r"--pidfile[= ](\S+)", line)}


@pytest.mark.parametrize("name", sorted(every_unit()))
def test_a_unit_controls_the_daemon_through_the_pidfile_it_started_it_with(name: str) -> None:
    """ExecReload= and ExecStop= name ExecStart='s pidfile, in a directory systemd creates."""
    unit = every_unit()[name]
    started = pidfiles(unit, "ExecStart")
    controlled = pidfiles(unit, "ExecReload") | pidfiles(unit, "ExecStop")
    assert controlled <= started, f"{name}: {controlled} not given to the daemon ({started})"
    created = set(re.findall(r"^RuntimeDirectory=(.*)$", unit, re.M))
    for path in started:
        match = re.fullmatch(r"/run/(.+)/[^/]+", path)
        if match:
            assert match[1] in created, f"{name}: nothing creates /run/{match[1]} ({path})"
