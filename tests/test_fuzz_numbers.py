"""Numbers written as text in options: digits of every script, and more of them than int() takes.

``str.isdigit()`` is true for "²" and "①", which ``int()`` refuses, and
``int()`` refuses more than 4,300 digits: a check by ``isdigit()`` followed by
``int()`` (ports in ``listen``, ``health`` and ``syslog``; ids in ``user`` and
``group``) was a ValueError traceback instead of the option's one-line error.
"""

from __future__ import annotations

import base64
import math
import pickle
import signal
import subprocess
from pathlib import Path

import pytest
from hypothesis import example, given, settings
from hypothesis import strategies as st

from aiodaemon._prefork._addresses import InetAddress
from aiodaemon._prefork._config import parse_options
from aiodaemon.exceptions import ConfigError

from .support import (
    AIODAEMON,
    aiodaemon_cli,
    clean_env,
    install_program,
    python,
    read_json_lines,
    wait_for,
)

#: digits and digit-like characters of every script (superscripts, circled, Arabic-Indic...).
_DIGIT_LIKE = st.characters(categories=["Nd", "No"])

_NUMBER_TEXT = st.one_of(
    st.text(_DIGIT_LIKE, min_size=1, max_size=6),
    st.integers(4000, 6000).map(lambda n: "1" * n),
    st.text(st.one_of(_DIGIT_LIKE, st.sampled_from("0123456789")), min_size=1, max_size=6),
)


def _as_option(kind: str, number: str, tmp: str) -> dict[str, object]:
    """``number`` where ``kind`` of option takes one."""
    options: dict[str, dict[str, object]] = {
        "listen port": {"listen": {"h": f"127.0.0.1:{number}"}},
        "listen v6 port": {"listen": {"h": f"[::1]:{number}"}},
        "health port": {"health": f":{number}"},
        "syslog port": {"syslog": f"udp://localhost:{number}"},
        "socket mode": {"listen": {"h": f"unix:{tmp}/s?mode={number}"}},
        "umask": {"umask": number},
        "user": {"user": number},
        "group": {"group": number},
        "shutdown_timeout": {"shutdown_timeout": number},
    }
    return options[kind]


_KINDS = ["listen port", "listen v6 port", "health port", "syslog port", "socket mode"]
_KINDS += ["umask", "user", "group", "shutdown_timeout"]


@settings(max_examples=400, deadline=None, derandomize=True, database=None)
@given(kind=st.sampled_from(_KINDS), number=_NUMBER_TEXT)
@example(kind="listen port", number="²")
@example(kind="syslog port", number="①")
@example(kind="health port", number="1" * 5000)
@example(kind="group", number="1" * 5000)
def test_a_number_in_any_digits_is_taken_or_a_config_error(kind: str, number: str) -> None:
    """Any digit-like text where an option takes a number: accepted sanely, or a ConfigError."""
    raw = _as_option(kind, number, "/tmp")
    error: ConfigError | None = None
    try:
        options = parse_options(raw)
    except ConfigError as exc:
        error = exc
    if error is not None:
        assert "\n" not in str(error)
        return
    # Only ASCII digits are numbers: int() would read Arabic-Indic "022" as 0o22.
    assert number.isascii(), (kind, number)
    # What was taken is what the digits say, within range.
    addresses = [*options.listen.values(), options.health]
    assert all(0 <= a.port <= 65535 for a in addresses if isinstance(a, InetAddress))
    assert 0 <= options.umask <= 0o777
    assert math.isfinite(options.shutdown_timeout)


@pytest.mark.parametrize(
    "flags",
    [["--listen", "h=:²"], ["--health", "127.0.0.1:①"], ["--syslog", "udp://localhost:²"]],
)
def test_a_port_in_digits_int_refuses_is_one_line(tmp_path: Path, flags: list[str]) -> None:
    """aiodaemon run, a port in superscript or circled digits: exit 2, one line naming the flag."""
    install_program("noop", tmp_path)
    result = aiodaemon_cli("run", "app:main", "--pidfile", tmp_path / "app.pid", *flags)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"aiodaemon: {flags[0]}"), result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "app.pid").exists()


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["run", "app:main", "--umask", "\u0660\u0662\u0662"], "--umask"),
        (["run", "app:main", "--listen", "h=unix:{tmp}/s?mode=\u0666\u0660\u0660"], "--listen"),
        (["run", "app:main", "--shutdown-timeout", "\uff11\uff10"], "--shutdown-timeout"),
        (["stop", "--pidfile", "{tmp}/app.pid", "--timeout", "\u0661"], "--timeout"),
    ],
)
def test_digits_of_other_scripts_are_refused_like_a_port(
    tmp_path: Path, flags: list[str], named: str
) -> None:
    """A umask, socket mode or seconds in Arabic-Indic or fullwidth digits: exit 2, one line.

    int() and float() read them (``--umask ٠٢٢`` was taken as 022) while a port
    or a user id in the same digits was refused.
    """
    install_program("noop", tmp_path)
    argv = [flag.replace("{tmp}", str(tmp_path)) for flag in flags]
    result = aiodaemon_cli(*argv)
    assert result.returncode == 2, result.stderr
    assert named in result.stderr, result.stderr
    assert result.stderr.count("\n") == 1, result.stderr
    assert not (tmp_path / "app.pid").exists()


def test_seconds_past_31_years_mean_as_long_as_it_takes() -> None:
    """shutdown_timeout, start_timeout and drain_delay of 1e12 or 1e300 are taken as 1e9 s."""
    options = parse_options(
        {"shutdown_timeout": 1e300, "start_timeout": 1e12, "drain_delay": 9.3e9}
    )
    assert (options.shutdown_timeout, options.start_timeout, options.drain_delay) == (1e9,) * 3
    assert parse_options({"shutdown_timeout": 12.5}).shutdown_timeout == 12.5


def test_infinity_is_as_long_as_it_takes_too(tmp_path: Path) -> None:
    """math.inf, or ``inf`` on the command line, is 1e9 s as 1e12 is; it was "not positive"."""
    inf = math.inf
    options = parse_options({"shutdown_timeout": inf, "start_timeout": inf, "drain_delay": inf})
    assert (options.shutdown_timeout, options.start_timeout, options.drain_delay) == (1e9,) * 3
    with pytest.raises(ConfigError, match="shutdown_timeout: must be a positive number"):
        parse_options({"shutdown_timeout": math.nan})
    result = aiodaemon_cli("stop", "--pidfile", tmp_path / "app.pid", "--timeout", "inf")
    assert result.returncode == 0, result.stderr
    assert result.stderr == f"aiodaemon: not running (no pidfile {tmp_path / 'app.pid'})\n"


def test_a_daemon_with_huge_timeouts_starts_and_stops_cleanly(tmp_path: Path) -> None:
    """run --shutdown-timeout 1e11 --start-timeout 1e300: no thread dies, SIGTERM exits 0.

    Their backstop threads died of OverflowError (logged as unhandled), and the
    exit ended in a traceback from the log writer's join(1e11).
    """
    install_program("forever", tmp_path)
    log = tmp_path / "log.jsonl"
    argv = ["run", "app:main", "--log-file", str(log), "--no-control"]
    argv += ["--shutdown-timeout", "1e11", "--start-timeout", "1e300"]
    proc = subprocess.Popen(
        [str(AIODAEMON), *argv],
        cwd=tmp_path,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        wait_for(lambda: log.exists() and any(r["event"] == "ready" for r in read_json_lines(log)))
        proc.send_signal(signal.SIGTERM)
        _, stderr = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0, stderr
    assert "Traceback" not in stderr
    events = [record["event"] for record in read_json_lines(log)]
    assert "unhandled exception in thread" not in events
    assert events[-1] == "exit"


@pytest.mark.parametrize("option", ["shutdown_timeout", "start_timeout", "drain_delay"])
def test_an_int_past_any_float_is_seconds_too(tmp_path: Path, option: str) -> None:
    """run(..., option=10**400) is taken as 1e300 is; -10**400 is refused in one line, exit 2.

    float() of such an int raises OverflowError: run() ended in its traceback.
    """
    assert parse_options({option: 10**400})._asdict()[option] == 1e9
    script = install_program("fuzz_launch", tmp_path)
    ran = tmp_path / "main-ran"
    # A drain of 1e9 s after main returns would be waited out: only the timeouts run.
    values = [-(10**400)] if option == "drain_delay" else [-(10**400), 10**400]
    for value in values:
        options = {"detach": False, "log_file": str(tmp_path / "log.jsonl"), option: value}
        payload = base64.b64encode(pickle.dumps(options)).decode()
        result = python([script, payload, ran, "fuzz-numbers"], cwd=tmp_path)
        assert "Traceback" not in result.stderr
        if value > 0:
            assert result.returncode == 0, result.stderr
            assert ran.exists()
        else:
            assert result.returncode == 2, result.stderr
            assert result.stderr.startswith(f"aiodaemon: {option}: must be "), result.stderr
            assert result.stderr.count("\n") == 1, result.stderr
            assert not ran.exists()


@pytest.mark.parametrize(
    ("option", "value", "shown"),
    [
        ("drain_delay", -(10**400), "-1e+400"),
        ("umask", -(10**400), "-1e+400"),
        ("group", -(10**5000), "-1e+5000"),
        ("log_level", 10**5000, "1e+5000"),
        ("start_timeout", "9" * 1000, "'" + "9" * 79 + "..."),
    ],
    ids=["drain_delay", "umask", "group", "log_level", "long-text"],
)
def test_an_absurd_value_is_shown_short_in_its_error(
    tmp_path: Path, option: str, value: object, shown: str
) -> None:
    """-(10**400) is -1e+400 in run()'s one-line error, not 400 digits.

    Past 4,300 digits repr() raises: run() ended in a ValueError traceback.
    """
    script = install_program("fuzz_launch", tmp_path)
    ran = tmp_path / "main-ran"
    payload = base64.b64encode(pickle.dumps({"detach": False, option: value})).decode()
    result = python([script, payload, ran, "fuzz-numbers"], cwd=tmp_path)
    assert result.returncode == 2, result.stderr
    assert result.stderr.startswith(f"aiodaemon: {option}: "), result.stderr
    assert result.stderr.endswith(f" {shown}\n"), result.stderr
    assert result.stderr.count("\n") == 1
    assert not ran.exists()
