"""Listening sockets: bound by the framework, or adopted from systemd's socket activation."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import stat
import subprocess
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from aiodaemon._prefork._addresses import ListenAddress, parse_listen_address
from aiodaemon._prefork._sockets import Listeners, open_listeners
from aiodaemon.exceptions import StartupError
from tests.support import (
    PYTHON,
    REPO,
    SESSION_VARIABLE,
    clean_env,
    free_port,
    program,
    read_pid,
    require_tool,
    wait_for,
)


def parse(listen: Mapping[str, str]) -> dict[str, ListenAddress]:
    """``listen=`` as the configure phase hands it over."""
    return {name: parse_listen_address(f"listen[{name}]", text) for name, text in listen.items()}


@contextlib.contextmanager
def opened(listen: Mapping[str, str]) -> Iterator[Listeners]:
    """Listeners for ``listen``, closed afterwards."""
    listeners = open_listeners(parse(listen), env={})
    try:
        yield listeners
    finally:
        listeners.close()


def own_fds() -> set[int]:
    """This process's open descriptors."""
    return {int(name) for name in os.listdir("/proc/self/fd")}


def round_trip(
    family: socket.AddressFamily, address: tuple[Any, ...] | str, server: socket.socket
) -> None:
    """Connect to ``address`` and check that ``server`` accepts the connection."""
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.settimeout(10)
        client.connect(address)
        server.settimeout(10)
        conn, _ = server.accept()
        server.setblocking(False)
        with conn:
            conn.sendall(b"ping")
            assert client.recv(4) == b"ping"


# -- TCP ----------------------------------------------------------------------------------


def test_port_zero_gets_a_real_port() -> None:
    """Port 0 binds an ephemeral port the program reads back, listening and ready to accept."""
    with opened({"http": "127.0.0.1:0"}) as listeners:
        sock = listeners["http"]
        host, port = sock.getsockname()
        assert host == "127.0.0.1"
        assert port > 0
        round_trip(socket.AF_INET, ("127.0.0.1", port), sock)


def test_listening_socket_options() -> None:
    """Sockets reuse addresses, do not block, listen, and do not leak into exec'd programs."""
    with opened({"http": "127.0.0.1:0"}) as listeners:
        sock = listeners["http"]
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR) == 1
        assert sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
        assert sock.getblocking() is False
        assert sock.get_inheritable() is False
        assert listeners.keep_fds() == [sock.fileno()]


def test_ipv6_loopback() -> None:
    """[::1]:0 is an IPv6-only socket reachable on ::1."""
    with opened({"v6": "[::1]:0"}) as listeners:
        sock = listeners["v6"]
        assert sock.family == socket.AF_INET6
        assert sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
        round_trip(socket.AF_INET6, ("::1", sock.getsockname()[1]), sock)


def test_empty_host_listens_on_ipv4_and_ipv6() -> None:
    """ ":port" is one socket on all interfaces, reached over both IPv4 and IPv6."""
    with opened({"any": ":0"}) as listeners:
        sock = listeners["any"]
        port = sock.getsockname()[1]
        round_trip(socket.AF_INET, ("127.0.0.1", port), sock)
        round_trip(socket.AF_INET6, ("::1", port), sock)


def test_host_name_is_resolved() -> None:
    """A host name is resolved with getaddrinfo and bound to its first address."""
    with opened({"local": "localhost:0"}) as listeners:
        sock = listeners["local"]
        address = sock.getsockname()
        round_trip(sock.family, address, sock)


def test_unresolvable_host_is_a_startup_error() -> None:
    """A name that does not resolve fails with one line naming the entry."""
    with pytest.raises(
        StartupError, match=r"^listen\[web\]: cannot resolve no-such-host\.invalid:80"
    ):
        open_listeners(parse({"web": "no-such-host.invalid:80"}), env={})


def test_port_in_use_fails_cleanly_and_leaves_nothing_behind(tmp_path: Path) -> None:
    """A taken port is one clear error; sockets and files bound before it are released."""
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        path = tmp_path / "admin.sock"
        before = own_fds()
        with pytest.raises(StartupError) as caught:
            open_listeners(
                parse(
                    {"admin": f"unix:{path}", "metrics": "127.0.0.1:0", "http": f"127.0.0.1:{port}"}
                ),
                env={},
            )
        assert (
            str(caught.value)
            == f"listen[http]: cannot bind 127.0.0.1:{port}: Address already in use"
        )
        assert own_fds() == before
        assert not path.exists()


# -- Unix sockets -------------------------------------------------------------------------


def test_unix_socket_mode_is_applied(tmp_path: Path) -> None:
    """?mode= sets the socket file's permissions, beyond what the umask would allow."""
    path = tmp_path / "app.sock"
    old_umask = os.umask(0o077)
    try:
        with opened({"app": f"unix:{path}?mode=0666"}) as listeners:
            assert stat.S_ISSOCK(path.stat().st_mode)
            assert stat.S_IMODE(path.stat().st_mode) == 0o666
            round_trip(socket.AF_UNIX, str(path), listeners["app"])
    finally:
        os.umask(old_umask)


def test_unix_socket_is_removed_at_close(tmp_path: Path) -> None:
    """Closing the listeners removes the socket file they created."""
    path = tmp_path / "app.sock"
    with opened({"app": f"unix:{path}"}):
        assert path.exists()
    assert not path.exists()


def test_stale_unix_socket_is_replaced(tmp_path: Path) -> None:
    """A socket file left by a dead process is replaced by a working one."""
    path = tmp_path / "app.sock"
    leftover = socket.socket(socket.AF_UNIX)
    leftover.bind(str(path))
    leftover.close()
    assert path.exists()
    with opened({"app": f"unix:{path}"}) as listeners:
        round_trip(socket.AF_UNIX, str(path), listeners["app"])


def test_live_unix_socket_is_refused(tmp_path: Path) -> None:
    """A socket file another process accepts on is "address in use", and stays in service."""
    path = tmp_path / "app.sock"
    with socket.socket(socket.AF_UNIX) as live:
        live.bind(str(path))
        live.listen()
        inode = path.stat().st_ino
        with pytest.raises(
            StartupError, match=r"^listen\[app\]: cannot bind unix:.*: Address already in use$"
        ):
            open_listeners(parse({"app": f"unix:{path}"}), env={})
        assert path.stat().st_ino == inode
        # The check was a connection attempt: the owner sees it as an empty connection.
        live.settimeout(10)
        probe, _ = live.accept()
        with probe:
            assert probe.recv(1) == b""
        round_trip(socket.AF_UNIX, str(path), live)


def test_non_socket_file_is_refused(tmp_path: Path) -> None:
    """A regular file at the socket path is an error and is left untouched."""
    path = tmp_path / "app.sock"
    path.write_text("precious")
    with pytest.raises(
        StartupError,
        match=r"^listen\[app\]: cannot bind unix:.*: file exists and is a regular file, not a sock",
    ):
        open_listeners(parse({"app": f"unix:{path}"}), env={})
    assert path.read_text() == "precious"


def test_close_spares_a_socket_file_that_replaced_ours(tmp_path: Path) -> None:
    """A file replaced meanwhile (a new instance's socket) is not removed at close."""
    path = tmp_path / "app.sock"
    listeners = open_listeners(parse({"app": f"unix:{path}"}), env={})
    path.unlink()
    with socket.socket(socket.AF_UNIX) as newer:
        newer.bind(str(path))
        listeners.close()
        assert path.exists()


def test_close_without_unlink_leaves_the_file(tmp_path: Path) -> None:
    """close(unlink=False) is for a process handing the socket file over to another."""
    path = tmp_path / "app.sock"
    listeners = open_listeners(parse({"app": f"unix:{path}"}), env={})
    listeners.close(unlink=False)
    assert path.exists()


def test_listeners_are_read_only(tmp_path: Path) -> None:
    """ctx.sockets is a mapping the program can read but not change."""
    with opened({"a": "127.0.0.1:0", "b": f"unix:{tmp_path / 'b.sock'}"}) as listeners:
        assert list(listeners) == ["a", "b"]
        assert len(listeners) == 2
        with pytest.raises(TypeError):
            listeners["c"] = listeners["a"]  # type: ignore[index]


def test_no_listen_entries_leaves_passed_fds_to_the_program() -> None:
    """Without listen=, the LISTEN_* variables stay for a program that reads them itself."""
    env = {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid())}
    assert len(open_listeners({}, env=env)) == 0
    assert env == {"LISTEN_FDS": "1", "LISTEN_PID": str(os.getpid())}


def test_listen_fds_for_another_process_are_ignored() -> None:
    """LISTEN_PID naming another process means the fds are not ours: bind as usual."""
    env = {"LISTEN_FDS": "1", "LISTEN_PID": "1", "LISTEN_FDNAMES": "http"}
    listeners = open_listeners(parse({"http": "127.0.0.1:0"}), env=env)
    with contextlib.closing(listeners):
        assert listeners.activated is False
        assert listeners["http"].getsockname()[0] == "127.0.0.1"
    assert env["LISTEN_PID"] == "1"


# -- socket activation with the real systemd-socket-activate -------------------------------


class Activated:
    """A child started by the real systemd-socket-activate on the given ports."""

    def __init__(
        self,
        tmp_path: Path,
        names: str,
        ports: list[int],
        fdnames: str | None,
        options: tuple[str, ...] = (),
    ) -> None:
        """Start ``systemd-socket-activate -l 127.0.0.1:PORT... [--fdname=...] python child``."""
        tool = require_tool("systemd-socket-activate")
        script = program("sockets_activated")
        # The tool passes on only the variables named with -E (and PATH, HOME, TERM).
        argv = [tool, "-E", "PYTHONPATH", "-E", SESSION_VARIABLE, *options]
        for port in ports:
            argv += ["-l", f"127.0.0.1:{port}"]
        if fdnames is not None:
            argv.append(f"--fdname={fdnames}")
        argv += [PYTHON, str(script), names]
        self.ports = ports
        self.proc = subprocess.Popen(
            argv,
            env=clean_env(),
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def ask(self, port: int) -> str:
        """Connect to ``port`` (retrying until the tool listens) and return the reply."""

        def connect() -> socket.socket | None:
            try:
                return socket.create_connection(("127.0.0.1", port), timeout=10)
            except ConnectionRefusedError:
                assert self.proc.poll() is None, self.proc.communicate()[1]
                return None

        with wait_for(connect, 15, f"systemd-socket-activate to listen on {port}") as client:
            return client.recv(100).decode()

    def report(self) -> dict[str, object]:
        """The child's JSON report of what it adopted."""
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        assert line, self.proc.communicate()[1]
        report: dict[str, object] = json.loads(line)
        return report

    def stop(self) -> tuple[int, str]:
        """Kill the child if still running; its exit status and stderr."""
        if self.proc.poll() is None:
            self.proc.kill()
        _, err = self.proc.communicate(timeout=30)
        return self.proc.returncode, err


Start = Callable[..., Activated]


@pytest.fixture
def activate(tmp_path: Path) -> Iterator[Start]:
    """Start activated children (names, ports, fdnames); every one is stopped at the end."""
    started: list[Activated] = []

    def start(
        names: str, ports: list[int], fdnames: str | None, options: tuple[str, ...] = ()
    ) -> Activated:
        child = Activated(tmp_path, names, ports, fdnames, options)
        started.append(child)
        return child

    yield start
    for child in started:
        child.stop()


def test_socket_activation_serves_on_the_passed_socket(activate: Start) -> None:
    """Under systemd-socket-activate the named socket is adopted, served, and LISTEN_* are gone."""
    port = free_port()
    child = activate("http", [port], "http")
    # The first connection is what makes the tool start the child; it waits in the backlog.
    assert child.ask(port) == "http"
    report = child.report()
    assert report["activated"] is True
    assert report["sockets"] == {
        "http": {"fd": 3, "port": port, "blocking": False, "inheritable": False}
    }
    assert report["environ"] == []
    assert report["child_environ"] == []
    pid = report["pid"]
    assert pid == child.proc.pid  # the tool execs the program in its own process
    environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    assert [entry for entry in environ if entry.startswith(b"LISTEN_")] == []
    assert child.ask(port) == "http"


def test_single_unnamed_socket_matches_single_entry(activate: Start) -> None:
    """One passed socket without a name serves the one listen= entry, whatever its name."""
    port = free_port()
    child = activate("web", [port], None)
    assert child.ask(port) == "web"
    assert child.report()["sockets"] == {
        "web": {"fd": 3, "port": port, "blocking": False, "inheritable": False}
    }


def test_sockets_are_matched_by_name(activate: Start) -> None:
    """With several passed sockets, each listen= name gets the socket systemd named so."""
    ports = [free_port(), free_port()]
    child = activate("admin,http", ports, "http:admin")
    assert child.ask(ports[0]) == "http"
    assert child.ask(ports[1]) == "admin"
    sockets = child.report()["sockets"]
    assert isinstance(sockets, dict)
    assert {name: info["port"] for name, info in sockets.items()} == {
        "http": ports[0],
        "admin": ports[1],
    }


def test_unclaimed_passed_socket_stays_open_outside_ctx_sockets(activate: Start) -> None:
    """A passed socket no listen= name claims is not in the mapping, but is kept open."""
    ports = [free_port(), free_port()]
    child = activate("http", ports, "http:spare")
    assert child.ask(ports[0]) == "http"
    report = child.report()
    assert list(report["sockets"]) == ["http"]  # type: ignore[call-overload]
    assert report["unclaimed"] == {"spare": [4]}
    assert report["unclaimed_inheritable"] == [False]
    assert 4 in {int(fd) for fd in os.listdir(f"/proc/{report['pid']}/fd")}


def test_name_mismatch_is_a_clear_startup_error(activate: Start) -> None:
    """A listen= name systemd did not pass fails with one line saying what was passed."""
    port = free_port()
    child = activate("http", [port], "metrics")
    with contextlib.suppress(OSError):
        child.ask(port)
    wait_for(lambda: child.proc.poll() is not None, 15, "the child to fail")
    status, err = child.stop()
    assert status == 1
    assert (
        "listen[http]: the service manager passed no socket named 'http' (passed: metrics); "
        "set FileDescriptorName=http in the .socket unit"
    ) in err


def test_passed_datagram_socket_is_refused(activate: Start) -> None:
    """A passed socket that is not a listening stream socket is a clear startup error."""
    port = free_port()
    child = activate("http", [port], "http", ("--datagram",))

    def triggered() -> bool:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
            udp.sendto(b"wake up", ("127.0.0.1", port))
        return child.proc.poll() is not None

    wait_for(triggered, 15, "the activated child to exit")
    status, err = child.stop()
    assert status == 1
    assert (
        "listen[http]: passed fd 3 is not a stream socket (use ListenStream= in the .socket unit)"
        in err
    )


@pytest.mark.parametrize(
    ("variables", "message"),
    [
        ({"LISTEN_FDS": "two"}, "listen: bad LISTEN_FDS='two' from the service manager"),
        (
            {"LISTEN_FDS": "2", "LISTEN_FDNAMES": "http"},
            "listen: LISTEN_FDNAMES names 1 sockets but LISTEN_FDS=2",
        ),
        (
            {"LISTEN_FDS": "0"},
            "listen[http]: the service manager passed no socket named 'http' (passed: none)",
        ),
    ],
)
def test_malformed_activation_variables_are_startup_errors(
    variables: dict[str, str], message: str
) -> None:
    """Activation variables that do not add up fail the start with one line."""
    env = {"LISTEN_PID": str(os.getpid()), **variables}
    with pytest.raises(StartupError) as caught:
        open_listeners(parse({"http": "127.0.0.1:0"}), env=env)
    assert str(caught.value).startswith(message)


def test_echo_example_under_socket_activation(tmp_path: Path) -> None:
    """examples/echo.py under systemd-socket-activate echoes on the passed socket, foreground."""
    tool = require_tool("systemd-socket-activate")
    port = free_port()
    pidfile = tmp_path / "echo.pid"
    # --listen names the very port the tool holds: binding it again would fail,
    # so an answer proves the passed socket was adopted.
    proc = subprocess.Popen(
        [
            tool,
            "-E",
            "PYTHONPATH",
            "-E",
            SESSION_VARIABLE,
            "-l",
            f"127.0.0.1:{port}",
            "--fdname=echo",
            PYTHON,
            str(REPO / "examples" / "echo.py"),
            "--listen",
            f"127.0.0.1:{port}",
            "--pidfile",
            str(pidfile),
            "--log-file",
            str(tmp_path / "echo.jsonl"),
        ],
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:

        def connect() -> socket.socket | None:
            try:
                return socket.create_connection(("127.0.0.1", port), timeout=10)
            except ConnectionRefusedError:
                assert proc.poll() is None, proc.communicate()[1]
                return None

        with wait_for(connect, 15, "the echo port") as client:
            client.sendall(b"hello\n")
            assert client.recv(100) == b"hello\n"
        # Supervised (LISTEN_FDS), so detach=None stayed in the foreground.
        assert read_pid(pidfile) == proc.pid
        environ = Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0")
        assert [entry for entry in environ if entry.startswith(b"LISTEN_")] == []
        os.kill(proc.pid, signal.SIGTERM)
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


@pytest.mark.root
def test_unix_socket_files_are_given_to_the_daemon_user(tmp_path: Path) -> None:
    """Socket files are created owned by the identity the daemon drops to."""
    if os.geteuid() != 0:
        pytest.fail("changing a file's owner needs root")
    path = tmp_path / "app.sock"
    listen = parse({"app": f"unix:{path}?mode=0660"})
    listeners = open_listeners(listen, env={}, owner=(65534, 65534))
    try:
        st = path.stat()
        assert (st.st_uid, st.st_gid) == (65534, 65534)
        assert stat.S_IMODE(st.st_mode) == 0o660
    finally:
        listeners.close()
