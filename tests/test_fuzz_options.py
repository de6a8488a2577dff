"""Hostile input: random and invalid ``run()`` options and CLI flags never crash or half-start."""

from __future__ import annotations

import base64
import contextlib
import io
import math
import os
import pickle
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from aiodaemon._cli._main import main as cli_main
from aiodaemon._prefork._config import OPTION_NAMES, Options, parse_options
from aiodaemon.exceptions import ConfigError

from .support import install_program, pids_with, python


class _FakeFile:
    """An object with a hostile ``fileno()``, as ``files_preserve`` may receive."""

    def __init__(self, result: object) -> None:
        self.result = result

    def fileno(self) -> object:
        if isinstance(self.result, BaseException):
            raise self.result
        return self.result

    def __repr__(self) -> str:
        return f"_FakeFile({self.result!r})"


_PATHLIKE_TEXT = st.one_of(
    st.sampled_from(
        [
            "",
            "/",
            ".",
            "..",
            "/dev/null",
            "/proc/self",
            "/etc/passwd",
            "/nonexistent/x",
            "/tmp",
            "/tmp/",
            "relative/path",
            "/tmp/a\nb",
            "/tmp/\udc80",
            "/tmp/\ud800",
            "/tmp/nul\0byte",
            "/" + "x" * 5000,
            "/" + "/".join(["y" * 255] * 20),
            "~",
            "\\",
        ]
    ),
    st.text(max_size=40),
    st.text(max_size=20).map(lambda t: "/tmp/" + t),
)

_SCALARS = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30),
    st.binary(max_size=10),
    _PATHLIKE_TEXT,
    _PATHLIKE_TEXT.map(Path),
    st.sampled_from(["info", "DEBUG", "json", "console", "manual", "0o22", "022", "777", "8"]),
)

_ANY = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=3),
        st.frozensets(st.integers(-5, 2**40), max_size=3),
    ),
    max_leaves=6,
)

_FILENOS = st.builds(
    _FakeFile,
    st.one_of(
        st.integers(-(2**70), 2**70),
        st.text(max_size=4),
        st.none(),
        st.floats(),
        st.sampled_from([OSError("boom"), ValueError("closed")]),
    ),
)

# Values aimed at each option's parser, on top of arbitrary junk.
_PER_OPTION: dict[str, st.SearchStrategy[Any]] = {
    "user": st.one_of(
        st.sampled_from(["nobody", "root", "0", "65534", "²", "١٢", "-1", "4294967295", "no body"]),
        st.integers(-(2**40), 2**40),
        st.text(max_size=12),
    ),
    "group": st.one_of(
        st.sampled_from(["nogroup", "0", "65534", "²", "-1", "4294967295", "root\0"]),
        st.integers(-(2**40), 2**40),
        st.text(max_size=12),
    ),
    "umask": st.one_of(
        st.integers(-1000, 5000),
        st.sampled_from(["022", "0o022", "0x1f", "9", " 22 ", "2_2", "-0", "٠٢٢", "", "77777"]),
        st.text(max_size=6),
    ),
    "listen": st.one_of(
        st.dictionaries(st.text(max_size=6), st.text(max_size=30), max_size=3),
        st.dictionaries(
            st.sampled_from(["http", "x", "", "a:b"]),
            st.sampled_from(
                [
                    "127.0.0.1:0",
                    "[::1]:80",
                    "[zz]:1",
                    "unix:/tmp/s",
                    "unix:rel",
                    "unix:/tmp/s?mode=9",
                    "unix:/tmp/s?mode=",
                    "host:99999",
                    ":",
                    "x:-1",
                    "*:\u0661",  # ARABIC-INDIC DIGIT ONE
                    "unix:/" + "a" * 200,
                ]
            ),
            max_size=2,
        ),
    ),
    "syslog": st.one_of(
        st.sampled_from(["udp://", "udp://:1", "tcp://h:0", "tcp://[::1]:514", "rel", "/dev/log"]),
        st.text(max_size=20),
    ),
    "files_preserve": st.one_of(
        st.lists(st.one_of(st.integers(-(2**70), 2**70), _FILENOS), max_size=3),
        _FILENOS.map(lambda f: [f]),
    ),
    "shutdown_timeout": st.one_of(st.floats(), st.integers(-(2**70), 2**70)),
}


def _value_for(option: str) -> st.SearchStrategy[Any]:
    extra = _PER_OPTION.get(option)
    return _ANY if extra is None else st.one_of(extra, _ANY)


_OPTION_LIST = sorted(OPTION_NAMES)


@st.composite
def _raw_options(draw: st.DrawFn) -> dict[str, Any]:
    names = draw(st.lists(st.sampled_from(_OPTION_LIST), min_size=1, max_size=4, unique=True))
    raw = {name: draw(_value_for(name)) for name in names}
    if draw(st.booleans()):
        raw[draw(st.text(min_size=1, max_size=10))] = draw(_SCALARS)
    return raw


def _check_outcome(raw: dict[str, Any]) -> None:
    error: ConfigError | None = None
    try:
        options = parse_options(raw)
    except ConfigError as exc:
        error = exc
    if error is not None:
        message = str(error)
        assert message.count("\n") == 0, f"multi-line error: {message!r}"
        assert message.startswith(f"{error.option}: "), message
        known = error.option in OPTION_NAMES or error.option.startswith("listen[")
        assert known or ": unknown option" in message, message
    else:
        assert isinstance(options, Options)
        # What is accepted is sane, not merely not-crashing.
        assert 0 <= options.umask <= 0o777
        assert math.isfinite(options.shutdown_timeout)
        assert options.shutdown_timeout > 0
        if options.identity is not None and options.identity.uid not in (None, 0):
            assert options.identity.gid is not None, "dropping a uid must come with a gid"


# 600 examples, all CPU: 20 s was seen on a busy machine, a third of the suite's 60 s.
@pytest.mark.timeout(300)
@settings(max_examples=600, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_raw_options())
def test_parse_options_raises_only_config_error(raw: dict[str, Any]) -> None:
    """Any mix of run() keywords either validates or raises ConfigError with one line."""
    _check_outcome(raw)


@pytest.mark.parametrize("option", _OPTION_LIST)
@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_each_option_alone_raises_only_config_error(option: str, data: st.DataObject) -> None:
    """Every single keyword, given junk, validates or raises a one-line ConfigError."""
    _check_outcome({option: data.draw(_value_for(option), label=option)})


# --- end to end: aiodaemon.run() in a child process ------------------------------------

# Plain data only: a child process must be able to unpickle it without this module.
_PLAIN = st.recursive(
    st.one_of(
        st.none(),
        st.booleans(),
        st.integers(-(2**70), 2**70),
        st.floats(),
        st.text(max_size=20),
        st.binary(max_size=6),
        _PATHLIKE_TEXT,
        _PATHLIKE_TEXT.map(Path),
    ),
    lambda inner: st.one_of(
        st.lists(inner, max_size=3), st.dictionaries(st.text(max_size=6), inner, max_size=2)
    ),
    max_leaves=4,
)


def _one_line(text: str) -> bool:
    """One terminal line: a single trailing newline (str.splitlines also splits on \\x85)."""
    return text.endswith("\n") and text.count("\n") == 1


def _assert_refused(result: Any, workdir: Path, marker: str) -> None:
    assert result.returncode == 2, (result.returncode, result.stderr)
    assert "Traceback" not in result.stderr, result.stderr
    assert _one_line(result.stderr), result.stderr
    assert result.stderr.startswith("aiodaemon"), result.stderr
    assert sorted(p.name for p in workdir.iterdir()) == ["app.py"], "something was created"
    assert pids_with(marker) == [], "a process was left behind"


# A child interpreter per example: more than the suite's 60 s on a busy machine.
@pytest.mark.timeout(300)
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(option=st.sampled_from(_OPTION_LIST), data=st.data())
def test_run_with_an_invalid_option_exits_2_with_one_line_and_starts_nothing(
    option: str, data: st.DataObject
) -> None:
    """aiodaemon.run() with one bad keyword: exit 2, one stderr line, no pidfile, no process."""
    value = data.draw(st.one_of(_PER_OPTION.get(option, _PLAIN), _PLAIN), label=option)
    with tempfile.TemporaryDirectory(prefix="aiodaemon-fuzz-") as tmp:
        workdir = Path(tmp)
        raw = {"pidfile": str(workdir / "app.pid"), "detach": True, option: value}
        try:
            parse_options(raw)
        except ConfigError:
            pass
        else:
            assume(False)  # a valid value: that would start a real daemon
        script = install_program("fuzz_launch", workdir, "app.py")
        marker = f"fuzz-{os.urandom(6).hex()}"
        payload = base64.b64encode(pickle.dumps(raw)).decode()
        result = python([script, payload, workdir / "main-ran", marker], cwd=workdir)
        _assert_refused(result, workdir, marker)


# --- the CLI --------------------------------------------------------------------------

_FLAGS_WITH_VALUE = [
    "--pidfile",
    "--log-file",
    "--log-level",
    "--log-format",
    "--listen",
    "--user",
    "--group",
    "--workdir",
    "--umask",
    "--stdout",
    "--stderr",
    "--shutdown-timeout",
    "--chroot",
    "--ready",
    "--syslog",
]
_BARE_FLAGS = ["--no-prevent-core", "--uvloop", "--no-uvloop", "--syslog", "--bogus", "-x", "--"]


def _argv_safe(text: str) -> bool:
    """Whether ``text`` can be a real argument: no NUL, encodable (surrogateescape only)."""
    try:
        os.fsencode(text)
    except UnicodeEncodeError:
        return False
    return "\0" not in text


_CLI_VALUES = st.one_of(
    _PATHLIKE_TEXT.filter(_argv_safe),
    st.text(max_size=15).filter(_argv_safe),
    st.sampled_from(
        [
            *("nobody", "0", "-1", "²", "999", "0o22", "x=1.2.3.4:5", "=", "a=unix:rel"),
            *("nan", "-5", "two\nlines", "carriage\rreturn", "a=b\nc"),
        ]
    ),
)


def _not_help(token: str) -> bool:
    # "--he" is argparse's abbreviation of --help, which rightly exits 0.
    return token != "-h" and not (len(token) > 2 and "--help".startswith(token))


@st.composite
def _cli_argv(draw: st.DrawFn) -> list[str]:
    command = draw(st.sampled_from(["run", "start", "restart"]))
    # A target that cannot be imported: whatever the flags, nothing is ever launched.
    argv = [command, "aiodaemon_fuzz_no_such_module:main"]
    for _ in range(draw(st.integers(0, 4))):
        kind = draw(st.sampled_from(["pair", "bare", "stray"]))
        if kind == "pair":
            argv += [draw(st.sampled_from(_FLAGS_WITH_VALUE)), draw(_CLI_VALUES)]
        elif kind == "bare":
            argv.append(draw(st.sampled_from(_BARE_FLAGS)))
        else:
            argv.append(draw(_CLI_VALUES))
    assume(all(_not_help(token) for token in argv))
    return argv


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(_cli_argv())
@example(["run", "aiodaemon_fuzz_no_such_module:main", "--", "two\nlines"])
def test_cli_with_bad_flags_exits_2_with_one_line(argv: list[str]) -> None:
    """Any mix of flags to run/start/restart: exit 2 and exactly one line on stderr."""
    stderr, stdout = io.StringIO(), io.StringIO()
    with contextlib.redirect_stderr(stderr), contextlib.redirect_stdout(stdout):
        try:
            code: object = cli_main(argv)
        except SystemExit as exc:
            code = exc.code
    assert code == 2, (code, stderr.getvalue())
    assert _one_line(stderr.getvalue()), stderr.getvalue()
    assert stdout.getvalue() == ""


# A child interpreter per example: more than the suite's 60 s on a busy machine.
@pytest.mark.timeout(300)
@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(flag=st.sampled_from(_FLAGS_WITH_VALUE), value=_CLI_VALUES)
def test_cli_start_with_a_bad_flag_value_starts_nothing(flag: str, value: str) -> None:
    """python -m aiodaemon start with one bad flag: exit 2, one line, no pidfile, no process."""
    with tempfile.TemporaryDirectory(prefix="aiodaemon-fuzz-") as tmp:
        workdir = Path(tmp)
        install_program("fuzz_main_ran", workdir, "app.py")
        argv = ["start", "app:main", "--pidfile", str(workdir / "app.pid"), flag, value]
        assume(all(_not_help(token) for token in argv))
        stderr = io.StringIO()
        with (
            contextlib.redirect_stderr(stderr),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.suppress(SystemExit),
        ):
            cli_main([*argv[:1], "aiodaemon_fuzz_no_such_module:main", *argv[2:]])
        # Only values the CLI refuses whatever the target: a valid one would start a daemon.
        assume("no module named" not in stderr.getvalue())
        # The temporary directory's unique name is in every command line of this run.
        result = python(["-m", "aiodaemon", *argv], cwd=workdir)
        _assert_refused(result, workdir, str(workdir))
