"""A startup error naming a file that is not UTF-8 reaches the terminal with the byte escaped.

The launcher showed ``caf?.toml``: the daemon's message crossed the readiness
pipe with the byte replaced by ``?``. It now reads ``caf\\udce9.toml``, as
``status`` and ``reload`` show such a name.
"""

from __future__ import annotations

from pathlib import Path

from .support import aiodaemon_cli, program, python

SAID = r"load_config failed: ValueError: cannot parse caf\udce9.toml"


def test_run_detached_says_the_error_with_the_byte_escaped(tmp_path: Path) -> None:
    """``run(detach=True)``: exit 1, the error's last line ends with ``caf\\udce9.toml``."""
    result = python([program("startup_odd_error"), tmp_path / "d.pid"])
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].endswith(SAID), result.stderr
    assert not (tmp_path / "d.pid").exists()


def test_cli_start_says_the_error_with_the_byte_escaped(tmp_path: Path) -> None:
    """``aiodaemon start``: the same line, exit 1."""
    pidfile = tmp_path / "d.pid"
    result = aiodaemon_cli("start", "tests.programs.startup_odd_error:main", "--pidfile", pidfile)
    assert result.returncode == 1
    assert result.stderr.splitlines()[-1].endswith(SAID), result.stderr
