"""Host names the resolver cannot take are refused at start, in one line, exit 2.

``getaddrinfo`` on a str host runs the "idna" codec, which raised a
UnicodeError (a traceback, after the pidfile was taken) for an empty or
over-long label; the options now apply DNS's limits themselves.
"""

from __future__ import annotations

import socket
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.support import python, read_json_lines

LONG_LABEL = "a" * 64 + ".example"
BAD_NAMES = ["a..b", LONG_LABEL, ".lead", "x." * 127 + "y", "ä" * 70]


def _run(option: str, value: str) -> tuple[int, str]:
    result = python(
        [
            "-c",
            "import sys, aiodaemon\n"
            "async def main(ctx): pass\n"
            f"aiodaemon.run(main, detach=False, {option}=eval(sys.argv[1]))\n",
            value,
        ]
    )
    return result.returncode, result.stderr


@pytest.mark.parametrize("name", BAD_NAMES)
@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("listen", "{{'web': {name!r} + ':8080'}}"),
        ("health", "{name!r} + ':8080'"),
        ("syslog", "'udp://' + {name!r} + ':514'"),
    ],
)
def test_a_host_name_dns_cannot_carry_is_one_line_exit_2(
    name: str, option: str, value: str
) -> None:
    code, stderr = _run(option, value.format(name=name))
    assert code == 2, stderr
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert lines[0].startswith(f"aiodaemon: {option}")
    assert "host name" in lines[0]
    assert "Traceback" not in stderr


def test_the_cli_refuses_it_naming_the_flag() -> None:
    result = python(["-m", "aiodaemon", "run", "--listen", f"web={LONG_LABEL}:8080", "json:dumps"])
    assert result.returncode == 2, result.stderr
    assert result.stderr.count("\n") == 1
    assert result.stderr.startswith("aiodaemon: --listen web: bad host name")
    assert "each dot-separated part 1 to 63" in result.stderr


@pytest.mark.parametrize("name", ["localhost", "localhost.", "a" * 63 + ".localhost"])
def test_names_within_the_limits_are_taken(name: str) -> None:
    """A trailing dot (a fully qualified name) and 63-character labels are fine."""
    from aiodaemon._prefork._addresses import InetAddress, parse_listen_address

    assert parse_listen_address("listen", f"{name}:80") == InetAddress(name, 80)


@pytest.mark.parametrize(
    ("address", "said"),
    [
        ("[::ffff:127.0.0.1]:0", "IPv4-mapped address '[::ffff:127.0.0.1]:0': write 127.0.0.1:0"),
        ("[::1%lo]:0", "a zone (%lo) is for link-local addresses only: '[::1%lo]:0'"),
        ("[fe80::1%]:0", "expected an interface after %: '[fe80::1%]:0'"),
        ("[ff02::1]:0", "a multicast address cannot listen: '[ff02::1]:0'"),
    ],
    ids=["v4-mapped", "zone-not-link-local", "empty-zone", "multicast"],
)
@pytest.mark.parametrize("option", ["listen", "health"])
def test_an_ipv6_literal_no_socket_can_listen_on_is_one_line_exit_2(
    option: str, address: str, said: str
) -> None:
    """Refused with the options, not by bind ("Invalid argument") or the resolver, exit 1."""
    value = f"{{'web': {address!r}}}" if option == "listen" else repr(address)
    code, stderr = _run(option, value)
    assert code == 2, stderr
    label = "listen[web]" if option == "listen" else "health"
    assert stderr == f"aiodaemon: {label}: {said}\n"


_V6 = st.sampled_from(["::1", "fe80::1%lo", "2001:db8::5", "::"])
_HOSTS = st.one_of(_V6.map(lambda host: f"[{host}]"), st.sampled_from(["127.0.0.1", "localhost"]))


@settings(max_examples=100, deadline=None, derandomize=True, database=None)
@given(scheme=st.sampled_from(["udp", "tcp"]), host=_HOSTS, port=st.integers(1, 65535))
def test_a_syslog_address_is_shown_as_it_is_written(scheme: str, host: str, port: int) -> None:
    """syslog= as messages and the ``starting`` record show it: as written, read back alike."""
    from aiodaemon._prefork._addresses import parse_syslog

    written = f"{scheme}://{host}:{port}"
    target = parse_syslog(written)
    assert str(target) == written
    assert parse_syslog(str(target)) == target


def test_the_starting_record_shows_an_ipv6_syslog_in_brackets(tmp_path: Path) -> None:
    """syslog=udp://[::1]:PORT: the ``starting`` record says so, not udp://::1:PORT.

    Written without its brackets, the address was one the option itself refuses.
    """
    collector = socket.socket(socket.AF_INET6, socket.SOCK_DGRAM)
    with collector:
        collector.bind(("::1", 0))
        syslog = f"udp://[::1]:{collector.getsockname()[1]}"
        log_file = tmp_path / "log.jsonl"
        result = python(
            [
                "-c",
                "import sys, aiodaemon\n"
                "async def main(ctx): pass\n"
                "aiodaemon.run(main, detach=False, log_file=sys.argv[1], syslog=sys.argv[2])\n",
                log_file,
                syslog,
            ]
        )
    assert result.returncode == 0, result.stderr
    (starting,) = [r for r in read_json_lines(log_file) if r["event"] == "starting"]
    assert starting["options"] == {"detach": False, "log_file": str(log_file), "syslog": syslog}
