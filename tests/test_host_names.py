"""Host names the resolver cannot take are refused at start, in one line, exit 2.

``getaddrinfo`` on a str host runs the "idna" codec, which raised a
UnicodeError (a traceback, after the pidfile was taken) for an empty or
over-long label; the options now apply DNS's limits themselves.
"""

from __future__ import annotations

import pytest

from tests.support import python

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
