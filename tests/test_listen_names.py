"""``listen=`` names systemd could not pass are refused at start, in one line, exit 2.

A name is what ``FileDescriptorName=`` matches in socket activation, and
systemd takes only printable ASCII without ':' there, at most 255 characters
(sd_listen_fds_with_names(3)): a name outside that, accepted, would bind and
serve when started by hand and never be adopted from a ``.socket`` unit.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.support import python

BAD_NAMES = ["héllo", "a:b", "tab\tx", "del\x7f", "ħttp", "x" * 256]
GOOD_NAMES = ["http", "my web", "x" * 255, "a=b~!"]
RULE = "a name is printable ASCII without ':', at most 255 characters"


def _run(listen: str, tmp_path: Path) -> tuple[int, str, str]:
    result = python(
        [
            "-c",
            "import sys, aiodaemon\n"
            "async def main(ctx): print(sorted(ctx.sockets))\n"
            "aiodaemon.run(main, detach=False, control=False, listen=eval(sys.argv[1]))\n",
            listen,
        ],
        cwd=tmp_path,
    )
    return result.returncode, result.stdout, result.stderr


@pytest.mark.parametrize("name", BAD_NAMES)
def test_run_refuses_a_name_systemd_cannot_pass(name: str, tmp_path: Path) -> None:
    """run(): one line naming the option and the name, exit 2, nothing started."""
    code, stdout, stderr = _run(repr({name: "127.0.0.1:0"}), tmp_path)
    assert code == 2, stderr
    assert stdout == ""
    assert stderr.count("\n") == 1, stderr
    assert stderr.startswith("aiodaemon: listen: bad socket name "), stderr
    assert RULE in stderr


@pytest.mark.parametrize("name", BAD_NAMES)
def test_the_cli_refuses_a_name_systemd_cannot_pass(name: str, tmp_path: Path) -> None:
    """``--listen NAME=ADDR``: the same line, naming the flag, exit 2, no pidfile."""
    pidfile = tmp_path / "d.pid"
    listen = f"{name}=127.0.0.1:0"
    result = python(
        ["-m", "aiodaemon", "start", "json:dumps", "--pidfile", pidfile, "--listen", listen],
        cwd=tmp_path,
    )
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert result.stderr.count("\n") == 1, result.stderr
    assert result.stderr.startswith("aiodaemon: --listen: bad socket name "), result.stderr
    assert RULE in result.stderr
    assert not pidfile.exists()


@pytest.mark.parametrize("name", GOOD_NAMES)
def test_a_name_systemd_can_pass_is_served(name: str, tmp_path: Path) -> None:
    """Spaces and punctuation other than ':' are fine, up to 255 characters."""
    code, stdout, stderr = _run(repr({name: "127.0.0.1:0"}), tmp_path)
    assert code == 0, stderr
    assert stdout == f"[{name!r}]\n"
