"""Addresses in options: listening sockets and syslog targets, parsed and validated; octal modes."""

from __future__ import annotations

import os
from typing import Literal, NamedTuple

from ..exceptions import ConfigError
from ._messages import shown

__all__ = [
    "InetAddress",
    "ListenAddress",
    "SyslogTarget",
    "UnixAddress",
    "encoded_host",
    "parse_listen_address",
    "parse_octal",
    "parse_syslog",
]


# NamedTuples, not dataclasses: as immutable, and far cheaper to define at import.


class InetAddress(NamedTuple):
    """A TCP listening address; ``host`` is an IP literal or a name, "" for all.

    ``reuse_port``: bind with ``SO_REUSEPORT`` (``?reuseport``), so that several
    daemons of one user can share the port, the kernel spreading connections.
    """

    host: str
    port: int
    ipv6: bool = False
    reuse_port: bool = False

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if self.ipv6 else f"{self.host}:{self.port}"

    def query(self) -> str:
        """The options as written after the address: ``?reuseport`` or ""."""
        return "?reuseport" if self.reuse_port else ""


class UnixAddress(NamedTuple):
    """A Unix stream socket path, with the file mode to give it (None: umask decides)."""

    path: str
    mode: int | None = None

    def __str__(self) -> str:
        return f"unix:{self.path}"

    def query(self) -> str:
        """The options as written after the path: ``?mode=0660`` or ""."""
        return "" if self.mode is None else f"?mode={self.mode:04o}"


ListenAddress = InetAddress | UnixAddress


class SyslogTarget(NamedTuple):
    """Where syslog records go: a Unix datagram socket path, or UDP/TCP host and port."""

    transport: Literal["unix", "udp", "tcp"]
    path: str = ""
    host: str = ""
    port: int = 0

    def __str__(self) -> str:
        if self.transport == "unix":
            return self.path
        # As written: only an IPv6 literal holds a colon, and only in brackets is it taken.
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"{self.transport}://{host}:{self.port}"


def parse_octal(text: str) -> int:
    """``text`` as an octal number: ASCII octal digits, after an optional ``0o``.

    Not ``int(text, 8)`` alone, which also reads a sign (``-0``, ``+022``),
    spaces, underscores and other scripts' digits (``٠٢٢``): ports and ids
    refuse them all, and a mode or umask written so is a mistake.

    Raises:
        ValueError: anything else.
    """
    digits = text[2:] if text[:2] in ("0o", "0O") else text
    if not (digits.isascii() and digits.isdigit()):
        raise ValueError(text)
    return int(digits, 8)


def parse_listen_address(option: str, text: object) -> ListenAddress:
    """Parse ``host:port[?reuseport]``, ``[v6]:port[?reuseport]`` or ``unix:/path[?mode=0660]``.

    Raises:
        ConfigError: naming ``option`` when the address is malformed.
    """
    if not isinstance(text, str):
        raise ConfigError(option, f"address must be a string, not {shown(text)}")
    if text.startswith("unix:"):
        path, _, query = text[5:].partition("?")
        if path.startswith("@"):
            # What socket activation shows as unix:@name is not ours to bind:
            # an abstract socket has no file, so no owner or mode keeps other
            # local users from connecting to it (docs/systemd.md).
            raise ConfigError(
                option,
                f"abstract unix sockets are not supported: {text!r}"
                " (no file, so no owner or mode limits who connects); use an absolute path",
            )
        if not path.startswith("/") or "\0" in path:
            raise ConfigError(option, f"unix socket path must be absolute: {text!r}")
        _path_bytes(option, path, text)
        # Only unix addresses load it (a small module, needed by acquire anyway).
        from ._sunpath import name_too_long

        # A longer path is bound through /proc/self/fd, as the control socket is.
        too_long = name_too_long(path)
        if too_long is not None:
            raise ConfigError(option, f"{path} {too_long}")
        mode = None
        if query:
            key, _, raw_mode = query.partition("=")
            try:
                if key != "mode":
                    raise ValueError(key)
                mode = parse_octal(raw_mode)
            except ValueError:
                raise ConfigError(
                    option, f"expected ?mode=OCTAL after the path: {shown(text)}"
                ) from None
            if not 0 <= mode <= 0o777:
                raise ConfigError(option, f"socket mode out of range: {shown(text)}")
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            raise ConfigError(option, f"directory does not exist for {text!r}")
        # Only unix addresses load it (a small module, needed by acquire anyway).
        from ._sharedfile import is_open_to_all

        if is_open_to_all(os.stat(directory).st_mode):
            # Anyone may remove the socket file there and bind their own at the
            # path: the daemon's clients would then talk to them (the rule of
            # the pidfile, log files and control socket).
            raise ConfigError(
                option, f"directory is world-writable without the sticky bit: {directory}"
            )
        return UnixAddress(path, mode)
    address, mark, query = text.partition("?")
    if mark and query != "reuseport":
        raise ConfigError(option, f"expected ?reuseport after the port: {shown(text)}")
    host, sep, port_text = address.rpartition(":")
    # ASCII digits: "²" and "①" are str.isdigit() but int() refuses them.
    if not sep or not (port_text.isascii() and port_text.isdigit()):
        expected = f"expected host:port, [v6]:port or unix:/path, not {shown(text)}"
        if not sep and address.isascii() and address.isdigit() and int(address) <= 65535:
            # A bare port (``--listen http=8080``): binding every address or
            # only this host's is the user's choice, so both are offered.
            expected += f"; {inet_form_hint(int(address), every_first=True)}"
        raise ConfigError(option, expected)
    # Counted first: int() refuses thousands of digits.
    if len(port_text.lstrip("0")) > 5 or int(port_text) > 65535:
        raise ConfigError(option, f"port out of range: {shown(text)}")
    port = int(port_text)
    ipv6 = host.startswith("[") and host.endswith("]")
    if ipv6:
        host = host[1:-1]
        # Only a bracketed literal needs it: ipaddress is not free to import.
        import ipaddress

        literal, zone, zone_id = host.partition("%")
        try:
            address_v6 = ipaddress.IPv6Address(literal)
        except ValueError:
            raise ConfigError(option, f"not an IPv6 address: {shown(text)}") from None
        # Refused here, not by bind's "Invalid argument" or the resolver's "Name
        # or service not known" at start, exit 1, which did not say what was wrong.
        if address_v6.ipv4_mapped is not None:
            raise ConfigError(
                option,
                f"IPv4-mapped address {shown(text)}: write {address_v6.ipv4_mapped}:{port}",
            )
        if address_v6.is_multicast:
            raise ConfigError(option, f"a multicast address cannot listen: {shown(text)}")
        if zone and not zone_id:
            raise ConfigError(option, f"expected an interface after %: {shown(text)}")
        if zone and not address_v6.is_link_local:
            raise ConfigError(
                option, f"a zone (%{zone_id}) is for link-local addresses only: {shown(text)}"
            )
    elif host in ("*", ""):
        host = ""
    elif ":" in host or not all(c.isalnum() or c in ".-_" for c in host):
        raise ConfigError(option, f"bad host in {shown(text)} (IPv6 goes in brackets)")
    elif not ipv6:
        _check_name(option, text, host)
    return InetAddress(host, port, ipv6, reuse_port=bool(mark))


def inet_form_hint(port: int, *, every_first: bool = False) -> str:
    """``write HOST:PORT, e.g. '127.0.0.1:8080' (this host only) or ':8080' (all addresses)``.

    The CLI words it for ``--listen`` as ``NAME=HOST:PORT`` (see
    ``aiodaemon._cli._flags``): keep ``write HOST:PORT`` and the quotes.
    """
    examples = [f"'127.0.0.1:{port}' (this host only)", f"':{port}' (all addresses)"]
    if every_first:
        examples.reverse()
    return f"write HOST:PORT, e.g. {' or '.join(examples)}"


def _check_name(option: str, text: str, host: str) -> None:
    """Refuse a host name the resolver would refuse before asking anyone (DNS's limits).

    Found at start rather than by ``getaddrinfo``, whose str host goes through
    the "idna" codec: that raised a UnicodeError (a traceback) for these.
    """
    try:
        name = encoded_host(host)
    except UnicodeError:
        raise ConfigError(option, f"not a valid host name in {shown(text)}") from None
    labels = name.removesuffix(b".").split(b".")
    if len(name) > 253 or not all(1 <= len(label) <= 63 for label in labels):
        raise ConfigError(
            option,
            f"bad host name in {shown(text)}: at most 253 characters,"
            " each dot-separated part 1 to 63",
        )


def encoded_host(host: str) -> bytes:
    """``host`` as ``getaddrinfo`` should be given it: ASCII bytes.

    An ASCII name or literal is passed as it is: a str host would go through
    the "idna" codec, whose import (with stringprep and unicodedata) costs
    ~1.5 ms of every start. Only an internationalised name needs the codec.

    Raises:
        UnicodeError: an internationalised name the codec refuses.
    """
    return host.encode("ascii") if host.isascii() else host.encode("idna")


def parse_syslog(value: object) -> SyslogTarget | None:
    """Parse ``syslog=``: True (``/dev/log``), a socket path, or udp:// / tcp:// host:port.

    Raises:
        ConfigError: when the target is malformed.
    """
    if value is None or value is False:
        return None
    if value is True:
        return SyslogTarget("unix", path="/dev/log")
    if isinstance(value, os.PathLike):
        # A socket path as every other path option takes it (``Path("/dev/log")``).
        value = os.fspath(value)
    if not isinstance(value, str) or not value or "\0" in value:
        raise ConfigError(
            "syslog", f"must be True, a socket path or udp://host:port, not {shown(value)}"
        )
    for scheme in ("udp", "tcp"):
        if value.startswith(f"{scheme}://"):
            expected = ConfigError("syslog", f"expected {scheme}://host:port, not {shown(value)}")
            inner = value[len(scheme) + 3 :]
            _, colon, port = inner.rpartition(":")
            if (
                inner.startswith("unix:")
                or "?" in inner
                or not colon
                or not (port.isascii() and port.isdigit())
            ):
                # Not the listen= forms parse_listen_address would name (unix:/path,
                # ?reuseport): neither applies inside udp:// or tcp://.
                raise expected
            address = parse_listen_address("syslog", inner)
            if not isinstance(address, InetAddress) or not address.host or address.port == 0:
                raise expected
            return SyslogTarget(scheme, host=address.host, port=address.port)
    if not value.startswith("/"):
        raise ConfigError(
            "syslog", f"must be an absolute socket path or udp://, tcp://: {shown(value)}"
        )
    _path_bytes("syslog", value, value)
    return SyslogTarget("unix", path=value)


def _path_bytes(option: str, path: str, text: str) -> bytes:
    """``path`` as the file name it is, checked as the other path options are (_config).

    Raises:
        ConfigError: ``path`` holds a control character (a newline would split
            the one-line error and log lines in two), or a lone surrogate no
            file name can hold (a traceback from ``bind`` otherwise).
    """
    if any(ord(c) < 0x20 or c == "\x7f" for c in path):
        raise ConfigError(option, f"must not contain control characters: {text!r}")
    try:
        return os.fsencode(path)
    except UnicodeEncodeError:
        raise ConfigError(option, f"not encodable as a file name: {text!r}") from None
