"""A newcomer's typos (a listen= name, TARGET, an option, an address) are named with the fix."""

from __future__ import annotations

from pathlib import Path

import pytest

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


@pytest.mark.parametrize(
    ("target", "hint"),
    [
        ("forever:mian", "module 'forever' has no attribute 'mian'; did you mean forever:main?"),
        ("forever.main", "; did you mean forever:main?"),
        ("forever.mian", "; did you mean forever:main?"),
    ],
    ids=["misspelt attribute", "dot for colon", "dot and misspelt"],
)
def test_a_target_typo_suggests_the_target(tmp_path: Path, target: str, hint: str) -> None:
    """TARGET app:mian or app.main: one line, exit 2, naming app:main as a file path does."""
    result = aiodaemon_cli("start", target, "--pidfile", tmp_path / "a.pid", cwd=_PROGRAMS)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("aiodaemon: ")
    assert line.endswith(hint), line


def test_a_target_with_nothing_close_has_no_suggestion(tmp_path: Path) -> None:
    """An attribute like none of the module's async functions is only said to be missing."""
    result = aiodaemon_cli("start", "forever:xyz", "--pidfile", tmp_path / "a.pid", cwd=_PROGRAMS)
    assert (result.returncode, result.stderr) == (
        2,
        "aiodaemon: module 'forever' has no attribute 'xyz'\n",
    )


@pytest.mark.parametrize(
    ("args", "hint"),
    [
        (["start", "forever:main", "--pid-file", "/tmp/a.pid"], "; did you mean --pidfile?"),
        (["start", "forever:main", "--log-levle=debug"], "; did you mean --log-level?"),
        (["stop", "--pidfile", "/tmp/a.pid", "--tiemout", "3"], "; did you mean --timeout?"),
    ],
)
def test_a_misspelt_flag_suggests_the_closest_one(args: list[str], hint: str) -> None:
    """An unknown flag close to one of the command's: named, before the pointer to --help."""
    result = aiodaemon_cli(*args, cwd=_PROGRAMS)
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("aiodaemon: unrecognized arguments: ")
    assert f"{hint} (see 'aiodaemon {args[0]} --help')" in line, line


def test_a_misspelt_run_option_suggests_the_closest_one(tmp_path: Path) -> None:
    """run(pid_file=...): one line naming pidfile, exit 2, nothing started."""
    status, lines = _run_program(tmp_path, f"pid_file={str(tmp_path / 'a.pid')!r}")
    assert (status, lines) == (2, ["aiodaemon: pid_file: unknown option; did you mean pidfile?"])
    assert not (tmp_path / "a.pid").exists()


def test_a_bare_port_suggests_both_addresses(tmp_path: Path) -> None:
    """--listen tcp=8080: exit 2, the line shows tcp=:8080 and tcp=127.0.0.1:8080."""
    result = aiodaemon_cli(
        "start", "forever:main", "--pidfile", tmp_path / "a.pid", "--listen", "tcp=8080",
        cwd=_PROGRAMS,
    )  # fmt: skip
    assert result.returncode == 2
    (line,) = result.stderr.splitlines()
    assert line.startswith("aiodaemon: --listen tcp: ")
    assert "write NAME=HOST:PORT, e.g. tcp=:8080 (all addresses) or tcp=127.0.0.1:8080" in line


def test_a_bare_port_to_run_suggests_both_addresses(tmp_path: Path) -> None:
    """listen={"tcp": "8080"}: exit 2, the line shows ':8080' and '127.0.0.1:8080'."""
    status, lines = _run_program(tmp_path, "listen={'tcp': '8080'}")
    assert status == 2
    (line,) = lines
    assert line.startswith("aiodaemon: listen[tcp]: ")
    assert line.endswith(
        "write HOST:PORT, e.g. ':8080' (all addresses) or '127.0.0.1:8080' (this host only)"
    )


def test_an_unresolved_host_says_so_and_shows_the_form(tmp_path: Path) -> None:
    """--listen tcp=no-such-host.invalid:8080: the host did not resolve, NAME=HOST:PORT, exit 1."""
    result = aiodaemon_cli(
        "start", "forever:main", "--pidfile", tmp_path / "a.pid",
        "--listen", "tcp=no-such-host.invalid:8080", cwd=_PROGRAMS,
    )  # fmt: skip
    assert result.returncode == 1
    (line,) = result.stderr.splitlines()
    assert line.startswith("aiodaemon: --listen tcp: cannot resolve no-such-host.invalid:8080: ")
    assert "host 'no-such-host.invalid' did not resolve" in line
    assert "write NAME=HOST:PORT, e.g. tcp=127.0.0.1:8080 (this host only)" in line
    assert not (tmp_path / "a.pid").exists()


def test_an_unresolved_host_to_run_says_so(tmp_path: Path) -> None:
    """listen={"tcp": "no-such-host.invalid:8080"}: the host did not resolve, HOST:PORT, exit 1."""
    status, lines = _run_program(tmp_path, "listen={'tcp': 'no-such-host.invalid:8080'}")
    assert status == 1
    (line,) = lines
    assert line.startswith("aiodaemon: listen[tcp]: cannot resolve no-such-host.invalid:8080: ")
    assert "host 'no-such-host.invalid' did not resolve" in line
    assert line.endswith(
        "write HOST:PORT, e.g. '127.0.0.1:8080' (this host only) or ':8080' (all addresses)"
    )


_PROGRAMS = Path(__file__).resolve().parent / "programs"
