"""The testing kit's documented usage passes mypy --strict, as a typed user's tests would."""

from __future__ import annotations

from pathlib import Path

import pytest

from .support import REPO, mypy_strict, python_snippets


@pytest.mark.timeout(300)
def test_the_pages_kit_examples_pass_mypy_strict(tmp_path: Path) -> None:
    """Every Python example of docs/testing.md using the kit type-checks under --strict."""
    blocks = [b for b in python_snippets(REPO / "docs" / "testing.md") if "aiodaemon.testing" in b]
    assert len(blocks) == 6
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
