"""A newcomer's typos (a listen= name, TARGET, an option, an address) are named with the fix."""

from __future__ import annotations

from pathlib import Path

from .support import aiodaemon_cli, python


def _run_program(tmp_path: Path, call: str) -> tuple[int, list[str]]:
    """Run a script calling ``aiodaemon.run(main, <call>)``: its exit status and stderr lines."""
    script = tmp_path / "app.py"
    script.write_text(
        "import aiodaemon\n\n\nasync def main() -> None:\n    pass\n\n\n"
        f"aiodaemon.run(main, {call})\n"
    )
    result = python([script], cwd=tmp_path)
    return result.returncode, result.stderr.splitlines()


def test_a_missing_socket_name_lists_the_known_ones(tmp_path: Path) -> None:
    """ctx.sockets["http"] with only web bound: the start fails naming 'web', not bare."""
    result = aiodaemon_cli(
        "start",
        "tests.programs.wrong_listen_name:main",
        "--pidfile",
        tmp_path / "app.pid",
        "--listen",
        "web=127.0.0.1:0",
    )
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert "KeyError" in line
    assert "no listen= socket named 'http' (known: 'web')" in line, line
    assert not (tmp_path / "app.pid").exists()


_PROGRAMS = Path(__file__).resolve().parent / "programs"
