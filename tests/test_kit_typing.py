"""The testing kit's documented usage passes mypy --strict, as a typed user's tests would."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from .support import REPO, clean_env, python_snippets


def mypy_strict(tmp_path: Path, sources: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Run mypy --strict on ``sources`` (file name -> code) in ``tmp_path``."""
    for name, code in sources.items():
        (tmp_path / name).write_text(code)
    config = tmp_path / "mypy.ini"
    config.write_text("[mypy]\nstrict = True\n")
    return subprocess.run(
        [
            sys.executable,
            "-m",
            "mypy",
            "--no-error-summary",
            "--config-file",
            str(config),
            "--cache-dir",
            str(tmp_path / "cache"),
            *sources,
        ],
        capture_output=True,
        text=True,
        timeout=240,
        env=clean_env({"MYPYPATH": str(REPO)}),
        cwd=tmp_path,
        check=False,
    )


@pytest.mark.timeout(300)
def test_the_pages_kit_examples_pass_mypy_strict(tmp_path: Path) -> None:
    """Every Python example of docs/testing.md using the kit type-checks under --strict."""
    blocks = [b for b in python_snippets(REPO / "docs" / "testing.md") if "aiodaemon.testing" in b]
    assert len(blocks) == 3
    result = mypy_strict(tmp_path, {f"example_{i}.py": b for i, b in enumerate(blocks)})
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.timeout(300)
def test_only_the_typed_accessors_unpack_cleanly(tmp_path: Path) -> None:
    """address() may be a unix path, so unpacking it is an error; inet_address() is not."""
    code = (
        "from aiodaemon.testing import DaemonProcess\n"
        "def ports(daemon: DaemonProcess) -> tuple[int, str]:\n"
        '    _, port = daemon.inet_address("http")\n'
        '    path = daemon.unix_address("sock")\n'
        "    return port, path\n"
        "def loose(daemon: DaemonProcess) -> None:\n"
        '    host, port = daemon.address("http")\n'
    )
    result = mypy_strict(tmp_path, {"user_test.py": code})
    errors = [line for line in result.stdout.splitlines() if ": error:" in line]
    assert len(errors) == 1, result.stdout + result.stderr
    assert "user_test.py:7:" in errors[0]
    assert "str-unpack" in errors[0]
