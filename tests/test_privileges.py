"""Drop phase: real processes started as root drop to nobody/nogroup, chroot, lose core dumps.

Observed from outside through /proc, and from inside through what the daemon
itself writes to files (a setuid(0) attempt, the modes of files it creates).
"""

from __future__ import annotations

import grp
import json
import os
import pwd
import shutil
import signal
import stat
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .support import (
    PROGRAMS,
    PYTHON,
    clean_env,
    install_program,
    is_alive,
    kill_quietly,
    open_fds,
    pids_with,
    proc_status,
    program,
    python,
    read_json_lines,
    read_pid,
    require_tool,
    wait_for,
    wait_gone,
    without_nproc_note,
)

pytestmark = pytest.mark.root

NOBODY = pwd.getpwnam("nobody")
NOGROUP = grp.getgrnam("nogroup")


@pytest.fixture(autouse=True)
def _need_root() -> None:
    """These tests drop privileges for real, which only root can do."""
    if os.geteuid() != 0:
        pytest.fail("test_privileges needs root: run the suite as root (as .ci/run does)")


@pytest.fixture
def base() -> Iterator[Path]:
    """A directory nobody can traverse (pytest's tmp_path is 0700, closed to nobody)."""
    path = Path(tempfile.mkdtemp(prefix="aiodaemon-priv-"))
    path.chmod(0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture
def run_dir(base: Path) -> Path:
    """A directory owned by nobody: where its pidfile and logs go, like /run/NAME."""
    path = base / "run"
    path.mkdir(mode=0o755)
    os.chown(path, NOBODY.pw_uid, NOGROUP.gr_gid)
    return path


@pytest.fixture
def daemons() -> Iterator[list[int]]:
    """Pids of daemons started by a test, killed at teardown whatever happened."""
    pids: list[int] = []
    yield pids
    for pid in pids:
        kill_quietly(pid)


def start_daemon(
    base: Path, options: dict[str, Any], daemons: list[int]
) -> tuple[int, dict[str, Any]]:
    """Start priv_daemon detached with ``options``; return its pid and its inside report.

    The report goes to the daemon's workdir, which the dropped user can write.
    """
    script = install_program("priv_daemon", base, "daemon_app.py")
    report = Path(options["workdir"]) / "report.json"
    result = python([script, json.dumps(options), report], cwd=base)
    assert result.returncode == 0, result.stderr
    pid = read_pid(Path(options["pidfile"]))
    daemons.append(pid)
    data: dict[str, Any] = wait_for(
        lambda: report.exists() and json.loads(report.read_text() or "null"),
        what="the daemon's report",
    )
    return pid, data


def stop_daemon(pid: int) -> None:
    """SIGTERM and wait until the daemon has exited."""
    os.kill(pid, signal.SIGTERM)
    wait_gone(pid)


def drop_in_child(options: dict[str, Any], mode: str = "") -> tuple[int, dict[str, Any]]:
    """Run drop_privileges in a forked child of a fresh interpreter; its exit status and report."""
    result = python([program("priv_drop_only"), json.dumps(options), mode])
    assert result.stderr == "", result.stderr
    return result.returncode, json.loads(result.stdout)


def nothing_started(marker: str) -> bool:
    """Whether no process has ``marker`` in its command line."""
    return not pids_with(marker)


# --- drop_privileges in a forked child -------------------------------------------------


def test_drop_to_user_sets_all_ids_and_only_its_groups() -> None:
    """Dropping to nobody sets real, effective and saved ids and nobody's groups only."""
    code, report = drop_in_child({"user": "nobody"})
    assert code == 0
    assert report["resuid"] == [NOBODY.pw_uid] * 3
    assert report["resgid"] == [NOGROUP.gr_gid] * 3
    assert sorted(report["groups"]) == sorted(os.getgrouplist("nobody", NOBODY.pw_gid))
    assert 0 not in report["groups"]
    assert report["setuid0"] == "Operation not permitted"
    assert report["core"] == [0, 0]


def test_numeric_user_gets_the_same_drop_as_its_name() -> None:
    """user="65534" resolves to nobody and drops exactly like user="nobody"."""
    _, by_id = drop_in_child({"user": str(NOBODY.pw_uid)})
    _, by_name = drop_in_child({"user": "nobody"})
    assert by_id["resuid"] == by_name["resuid"]
    assert by_id["groups"] == by_name["groups"]


def test_group_only_clears_supplementary_groups_and_keeps_uid() -> None:
    """group= alone changes the gid, empties the groups and leaves the uid alone."""
    code, report = drop_in_child({"group": "nogroup"})
    assert code == 0
    assert report["resgid"] == [NOGROUP.gr_gid] * 3
    assert report["groups"] == []
    assert report["resuid"] == [0, 0, 0]


def test_user_with_group_override_uses_that_gid() -> None:
    """user=nobody, group=<another group> drops to nobody with that group as its gid."""
    other = grp.getgrnam("daemon")
    code, report = drop_in_child({"user": "nobody", "group": "daemon"})
    assert code == 0
    assert report["resgid"] == [other.gr_gid] * 3
    assert other.gr_gid in report["groups"]
    assert 0 not in report["groups"]


def test_prevent_core_false_keeps_the_core_limit() -> None:
    """prevent_core=False leaves RLIMIT_CORE as inherited."""
    _, report = drop_in_child({"user": "nobody", "prevent_core": False})
    import resource

    assert report["core"] == list(resource.getrlimit(resource.RLIMIT_CORE))


def test_drop_that_keeps_capabilities_is_refused() -> None:
    """When a uid change keeps root's powers (SECBIT_NO_SETUID_FIXUP), startup fails."""
    code, report = drop_in_child({"user": "nobody"}, "keep-caps")
    assert code == 1
    assert report["error"] == "dropped to user 65534 but could still regain root; refusing to run"


def test_chroot_moves_root_and_workdir(base: Path) -> None:
    """chroot= makes the directory the new / and workdir is taken inside it."""
    jail = base / "jail"
    (jail / "srv").mkdir(parents=True)
    (jail / "marker").touch()
    code, report = drop_in_child({"chroot": str(jail), "workdir": "/srv", "user": "nobody"})
    assert code == 0
    assert report["cwd"] == "/srv"
    assert report["root_listing"] == ["marker", "srv"]


def test_chroot_without_root_is_a_one_line_error(base: Path) -> None:
    """A chroot that the kernel refuses fails with one line naming the directory."""
    jail = base / "jail"
    jail.mkdir()
    code, report = drop_in_child({"chroot": str(jail)}, "nobody-first")
    assert code == 1
    assert report["error"] == f"cannot chroot to {jail}: Operation not permitted"


# --- real daemons ------------------------------------------------------------------------


def test_daemon_runs_as_nobody_without_root_groups(
    base: Path, run_dir: Path, daemons: list[int]
) -> None:
    """A daemon started as root with user=nobody shows nobody's ids and groups in /proc."""
    options = {"pidfile": str(run_dir / "d.pid"), "user": "nobody", "workdir": str(run_dir)}
    pid, report = start_daemon(base, options, daemons)
    status = proc_status(pid)
    assert status["Uid"].split() == [str(NOBODY.pw_uid)] * 4
    assert status["Gid"].split() == [str(NOGROUP.gr_gid)] * 4
    assert status["Groups"].split() == [str(NOGROUP.gr_gid)]
    assert report["setuid0"] == "Operation not permitted"
    stop_daemon(pid)


def test_daemon_has_no_core_dumps(base: Path, run_dir: Path, daemons: list[int]) -> None:
    """The running daemon's RLIMIT_CORE is 0, soft and hard."""
    options = {"pidfile": str(run_dir / "d.pid"), "user": "nobody", "workdir": str(run_dir)}
    pid, _ = start_daemon(base, options, daemons)
    limits = Path(f"/proc/{pid}/limits").read_text().splitlines()
    core = next(line for line in limits if line.startswith("Max core file size"))
    assert core.split()[4:6] == ["0", "0"]
    stop_daemon(pid)


@pytest.mark.parametrize(
    ("umask", "mode"), [(None, 0o644), (0, 0o666), (0o077, 0o600), ("027", 0o640)]
)
def test_files_created_by_the_daemon_follow_its_umask(
    base: Path, run_dir: Path, daemons: list[int], umask: int | str | None, mode: int
) -> None:
    """Files the daemon creates are 0644 by default, 0666 only when umask=0 is asked for."""
    options: dict[str, Any] = {
        "pidfile": str(run_dir / "d.pid"),
        "user": "nobody",
        "workdir": str(run_dir),
    }
    if umask is not None:
        options["umask"] = umask
    pid, report = start_daemon(base, options, daemons)
    assert report["mode"] == mode
    assert stat.S_IMODE((run_dir / "created-by-daemon").stat().st_mode) == mode
    # The pidfile is 0644 minus the daemon's umask (never more: readers need no write).
    assert stat.S_IMODE((run_dir / "d.pid").stat().st_mode) == 0o644 & mode
    stop_daemon(pid)


@pytest.mark.parametrize("directory", ["owned", "sticky"])
def test_pidfile_is_removed_at_exit_after_the_drop(
    base: Path, run_dir: Path, daemons: list[int], directory: str
) -> None:
    """In a directory the user owns, or a sticky one like /tmp, the pidfile goes at exit."""
    if directory == "sticky":
        pid_dir = base / "sticky"
        pid_dir.mkdir()
        pid_dir.chmod(0o1777)
    else:
        pid_dir = run_dir
    pidfile = pid_dir / "d.pid"
    options = {"pidfile": str(pidfile), "user": "nobody", "workdir": str(run_dir)}
    pid, _ = start_daemon(base, options, daemons)
    assert pidfile.stat().st_uid == NOBODY.pw_uid
    stop_daemon(pid)
    assert not pidfile.exists()


def test_pidfile_in_a_root_only_directory_is_emptied_at_exit(
    base: Path, run_dir: Path, daemons: list[int]
) -> None:
    """Where nobody may not unlink, the pidfile is emptied, so status reads it as not running."""
    import aiodaemon

    pidfile = base / "d.pid"  # base is root's, mode 0755
    options = {"pidfile": str(pidfile), "user": "nobody", "workdir": str(run_dir)}
    pid, _ = start_daemon(base, options, daemons)
    stop_daemon(pid)
    assert pidfile.read_text() == ""
    assert aiodaemon.read_pidfile(pidfile).running_pid is None
    status = python(["-m", "aiodaemon", "status", "--pidfile", pidfile])
    assert status.returncode == 3, status.stdout  # LSB "not running"


def test_start_stop_daemon_stops_a_dropped_daemon_named_with_its_user(
    base: Path, run_dir: Path, daemons: list[int]
) -> None:
    """start-stop-daemon refuses nobody's pidfile alone (docs/production.md); --user stops it."""
    ssd = require_tool("start-stop-daemon")
    pidfile = run_dir / "d.pid"
    options = {"pidfile": str(pidfile), "user": "nobody", "workdir": str(run_dir)}
    pid, _ = start_daemon(base, options, daemons)

    def ssd_run(*args: str) -> subprocess.CompletedProcess[str]:
        command = [ssd, *args, "--pidfile", str(pidfile)]
        return subprocess.run(command, capture_output=True, text=True, timeout=30, check=False)

    refused = ssd_run("--stop", "--retry", "TERM/20")
    assert refused.returncode == 2, refused.stderr
    assert f"matching only on non-root pidfile {pidfile} is insecure" in refused.stderr
    assert ssd_run("--status").returncode == 4
    assert is_alive(pid)
    assert ssd_run("--status", "--user", "nobody").returncode == 0
    stopped = ssd_run("--stop", "--user", "nobody", "--retry", "TERM/20/KILL/5")
    assert stopped.returncode == 0, stopped.stderr
    wait_gone(pid)
    assert not pidfile.exists()
    assert ssd_run("--status", "--user", "nobody").returncode == 3


def test_log_file_is_reopened_on_sigusr1_after_the_drop(
    base: Path, run_dir: Path, daemons: list[int]
) -> None:
    """After a rename (logrotate without copytruncate), SIGUSR1 makes a new file as nobody."""
    log = run_dir / "app.jsonl"
    options = {
        "pidfile": str(run_dir / "d.pid"),
        "user": "nobody",
        "workdir": str(run_dir),
        "log_file": str(log),
    }
    pid, _ = start_daemon(base, options, daemons)
    assert log.stat().st_uid == NOBODY.pw_uid
    log.rename(run_dir / "app.jsonl.1")
    os.kill(pid, signal.SIGUSR1)
    wait_for(log.exists, what="the reopened log file")
    assert log.stat().st_uid == NOBODY.pw_uid
    stop_daemon(pid)
    events = [line["event"] for line in read_json_lines(log)]
    assert events[-1] == "exit"
    old = [line["event"] for line in read_json_lines(run_dir / "app.jsonl.1")]
    assert not any("cannot reopen" in str(event) for event in events + old)


def test_log_in_a_root_only_directory_is_reopened_after_logrotate_create(
    base: Path, run_dir: Path, daemons: list[int]
) -> None:
    """Where nobody may not create files, a file made for it (logrotate create) is reopened."""
    log_dir = base / "log"  # root's, 0755, like /var/log
    log_dir.mkdir(mode=0o755)
    log = log_dir / "app.jsonl"
    options = {
        "pidfile": str(run_dir / "d.pid"),
        "user": "nobody",
        "workdir": str(run_dir),
        "log_file": str(log),
    }
    pid, _ = start_daemon(base, options, daemons)
    log.rename(log_dir / "app.jsonl.1")
    # What logrotate's "create 0640 nobody nogroup" does before its postrotate kill -USR1.
    log.touch(mode=0o640)
    os.chown(log, NOBODY.pw_uid, NOGROUP.gr_gid)
    os.kill(pid, signal.SIGUSR1)
    wait_for(lambda: str(log) in open_fds(pid).values(), what="the new log file to be opened")
    stop_daemon(pid)
    assert [line["event"] for line in read_json_lines(log)][-1] == "exit"
    assert stat.S_IMODE(log.stat().st_mode) == 0o640


def test_daemon_environment_has_no_framework_variables(
    base: Path, run_dir: Path, daemons: list[int]
) -> None:
    """The daemon's environment, in /proc and in os.environ, is exactly what it was given."""
    options = {"pidfile": str(run_dir / "d.pid"), "user": "nobody", "workdir": str(run_dir)}
    pid, report = start_daemon(base, options, daemons)
    given = set(clean_env())
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    in_proc = {item.split(b"=", 1)[0].decode() for item in raw if item}
    assert in_proc == given
    assert set(report["environ"]) == given
    stop_daemon(pid)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        # root's own values, as a root shell or sudo -i has them: the service account's.
        (
            {"HOME": "/root", "USER": "root", "LOGNAME": "root"},
            {"HOME": NOBODY.pw_dir, "USER": "nobody", "LOGNAME": "nobody"},
        ),
        # Given on purpose for the daemon: kept. Absent: not added.
        ({"HOME": "/srv/app", "USER": "app"}, {"HOME": "/srv/app", "USER": "app", "LOGNAME": None}),
    ],
)
def test_a_drop_names_the_new_user_in_home_user_and_logname(
    base: Path,
    run_dir: Path,
    daemons: list[int],
    given: dict[str, str],
    expected: dict[str, str | None],
) -> None:
    """user=nobody started by root: HOME, USER, LOGNAME that were root's are nobody's.

    Left as root's, a child tool of the service account read /root (git: "unable
    to read config file '/root/.gitconfig'"). Values given on purpose stay.
    """
    options = {"pidfile": str(run_dir / "d.pid"), "user": "nobody", "workdir": str(run_dir)}
    script = install_program("priv_daemon", base, "daemon_app.py")
    report = run_dir / "report.json"
    env = {k: v for k, v in clean_env().items() if k not in ("HOME", "USER", "LOGNAME")}
    result = subprocess.run(
        [PYTHON, script, json.dumps(options), report],
        cwd=base,
        env=env | given,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    pid = read_pid(run_dir / "d.pid")
    daemons.append(pid)
    data = wait_for(
        lambda: report.exists() and json.loads(report.read_text() or "null"),
        what="the daemon's report",
    )
    assert data["identity_variables"] == expected
    assert data["child_home"] == f"{expected['HOME']} {expected['USER']}"
    stop_daemon(pid)


def test_daemon_in_chroot_runs_reports_ready_and_stops(
    base: Path, run_dir: Path, daemons: list[int]
) -> None:
    """With chroot=, the daemon's root and cwd are inside the jail, and SIGTERM stops it."""
    jail = base / "jail"
    (jail / "srv").mkdir(parents=True)
    os.chown(jail / "srv", NOBODY.pw_uid, NOGROUP.gr_gid)
    options = {
        "pidfile": str(run_dir / "d.pid"),
        "user": "nobody",
        "chroot": str(jail),
        "workdir": "/srv",
        "log_file": str(run_dir / "app.jsonl"),
    }
    script = install_program("priv_daemon", base, "daemon_app.py")
    result = python([script, json.dumps(options), "/srv/report.json"], cwd=base)
    assert result.returncode == 0, result.stderr  # exit 0 means the daemon said ready
    pid = read_pid(run_dir / "d.pid")
    daemons.append(pid)
    assert os.readlink(f"/proc/{pid}/root") == str(jail)
    assert os.readlink(f"/proc/{pid}/cwd") == str(jail / "srv")
    report_path = jail / "srv/report.json"
    wait_for(lambda: report_path.exists() and report_path.stat().st_size, what="the report")
    report = json.loads(report_path.read_text())
    assert report["cwd"] == "/srv"
    assert report["setuid0"] == "Operation not permitted"
    stop_daemon(pid)
    events = [line["event"] for line in read_json_lines(run_dir / "app.jsonl")]
    assert events[-1] == "exit"


@pytest.mark.parametrize("where", ["inside", "outside"])
def test_pidfile_after_a_chroot_is_removed_inside_the_jail_and_emptied_outside(
    base: Path, run_dir: Path, daemons: list[int], where: str
) -> None:
    """A chrooted daemon removes a pidfile inside its jail and empties one it can no longer see."""
    jail = base / "jail"
    (jail / "srv").mkdir(parents=True)
    os.chown(jail / "srv", NOBODY.pw_uid, NOGROUP.gr_gid)
    pidfile = (jail / "srv" if where == "inside" else run_dir) / "d.pid"
    options = {"pidfile": str(pidfile), "user": "nobody", "chroot": str(jail), "workdir": "/srv"}
    script = install_program("priv_daemon", base, "daemon_app.py")
    result = python([script, json.dumps(options), "/srv/report.json"], cwd=base)
    assert result.returncode == 0, result.stderr
    pid = read_pid(pidfile)
    daemons.append(pid)
    stop_daemon(pid)
    if where == "inside":
        assert not pidfile.exists()
    else:
        assert pidfile.read_text() == ""


# --- refused before anything starts ------------------------------------------------------


def _refused(base: Path, options: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    marker = f"marker-{os.urandom(6).hex()}"
    script = install_program("priv_daemon", base, "daemon_app.py")
    result = python([script, json.dumps(options), str(base / "report.json"), marker], cwd=base)
    assert result.returncode != 0
    assert len(result.stderr.splitlines()) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert nothing_started(marker)
    assert not (base / "report.json").exists()
    return result


def test_symlinked_pidfile_is_refused(base: Path, run_dir: Path) -> None:
    """A pidfile path that is a symlink is refused in one line; its target is untouched."""
    target = base / "precious"
    target.write_text("keep me\n")
    (run_dir / "d.pid").symlink_to(target)
    result = _refused(base, {"pidfile": str(run_dir / "d.pid"), "user": "nobody"})
    assert "symlink" in result.stderr
    assert target.read_text() == "keep me\n"


def test_pidfile_in_world_writable_directory_without_sticky_bit_is_refused(base: Path) -> None:
    """A pidfile directory anyone can write to, without the sticky bit, is refused."""
    open_dir = base / "open"
    open_dir.mkdir()
    open_dir.chmod(0o777)
    result = _refused(base, {"pidfile": str(open_dir / "d.pid"), "user": "nobody"})
    assert result.returncode == 2
    assert "world-writable without the sticky bit" in result.stderr
    assert list(open_dir.iterdir()) == []


def test_a_start_whose_fork_fails_leaves_no_file_it_created(run_dir: Path) -> None:
    """No process left to fork: the log and stdout files the start created are gone again.

    Refused in the acquire phase, a start removed them; refused by the fork
    just after, it left them empty behind.
    """
    log, out = run_dir / "d.log", run_dir / "out.txt"
    options = {"detach": True, "log_file": str(log), "stdout": str(out)}
    result = python([program("priv_as_nobody"), program("fork_refused"), json.dumps(options)])
    assert result.returncode == 1
    assert (
        without_nproc_note(result.stderr)
        == "aiodaemon: cannot fork the daemon: Resource temporarily unavailable\n"
    )
    assert list(run_dir.iterdir()) == []


def test_a_start_whose_daemon_cannot_start_a_thread_leaves_no_file_it_created(
    run_dir: Path,
) -> None:
    """No thread left to start once dropped to nobody: the start fails, its files are gone.

    The daemon dies before its first record; the log and stdout files it
    would have written stayed behind empty.
    """
    log, out, pidfile = run_dir / "d.log", run_dir / "out.txt", run_dir / "d.pid"
    options = {"detach": True, "log_file": str(log), "stdout": str(out), "pidfile": str(pidfile)}
    options["user"] = "nobody"
    prlimit = require_tool("prlimit")
    # Root's launcher may fork past the limit; the daemon, nobody by then, not even a thread.
    result = subprocess.run(
        [prlimit, "--nproc=1", PYTHON, program("idle"), json.dumps(options)],
        env=clean_env(),
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
    )
    assert (result.returncode, without_nproc_note(result.stderr)) == (
        1,
        "aiodaemon: cannot start the log writer thread: can't start new thread\n",
    )
    assert list(run_dir.iterdir()) == []


def test_non_root_asking_for_another_user_fails_before_any_fork(base: Path, run_dir: Path) -> None:
    """Started as nobody with user=daemon: exit 2, one line, nothing started, no pidfile."""
    marker = f"marker-{os.urandom(6).hex()}"
    script = install_program("priv_daemon", base, "daemon_app.py")
    pidfile = run_dir / "d.pid"
    options = {"pidfile": str(pidfile), "user": "daemon"}
    # The interpreter lives under /root here, closed to nobody, so the child
    # becomes nobody itself right after start-up, before aiodaemon.run().
    result = python(
        [program("priv_as_nobody"), script, json.dumps(options), base / "report.json", marker],
        cwd=run_dir,
    )
    assert result.returncode == 2
    assert result.stderr == "aiodaemon: user: changing identity needs root\n"
    assert nothing_started(marker)
    assert not pidfile.exists()


@pytest.mark.parametrize(
    ("flag", "refusal"),
    [
        (
            ["--user", "nobody"],
            "--user: uid 65534 is not mapped in this user namespace (/proc/self/uid_map)",
        ),
        (
            ["--group", "nogroup"],
            "--group: gid 65534 is not mapped in this user namespace (/proc/self/gid_map)",
        ),
    ],
)
def test_an_id_outside_the_user_namespace_is_refused_in_one_line(
    tmp_path: Path, flag: list[str], refusal: str
) -> None:
    """Root of ``unshare -r`` asking for an unmapped id: exit 2, one line, no pidfile.

    Nothing could take or be given that id there: the pidfile's chown ended
    in an ``OSError: [Errno 22] Invalid argument`` traceback.
    """
    pidfile = tmp_path / "d.pid"
    unshare = [require_tool("unshare"), "--user", "--map-root-user", "--"]
    cli = [PYTHON, "-m", "aiodaemon", "run", "cli_app:main", "--pidfile", str(pidfile), *flag]
    result = subprocess.run(
        [*unshare, *cli],
        capture_output=True,
        text=True,
        cwd=PROGRAMS,
        env=clean_env(),
        stdin=subprocess.DEVNULL,
        timeout=30,
        check=False,
    )
    assert (result.returncode, result.stdout) == (2, ""), result
    assert result.stderr == f"aiodaemon: {refusal}\n"
    assert not pidfile.exists()


@pytest.fixture
def odd_user(request: pytest.FixtureRequest) -> Iterator[tuple[bytes, int]]:
    """A user whose name ends in ``request.param`` (bytes), member of a group of its own too.

    Returns its name's bytes and that group's gid; both are removed at the end.
    """
    useradd, userdel = require_tool("useradd"), require_tool("userdel")
    groupadd, groupdel = require_tool("groupadd"), require_tool("groupdel")
    name = b"aiodbyt%d" % os.getpid() + request.param
    extra = f"aiodbytg{os.getpid()}"
    subprocess.run([groupadd, "--system", extra], check=True, timeout=30)
    try:
        add = [useradd, "--badname", "--system", "--user-group", "--no-create-home"]
        add += ["-s", "/usr/sbin/nologin", "-G", extra, os.fsdecode(name)]
        subprocess.run(add, check=True, timeout=30)
        try:
            yield name, grp.getgrnam(extra).gr_gid
        finally:
            subprocess.run([userdel, os.fsdecode(name)], check=True, timeout=30)
    finally:
        subprocess.run([groupdel, extra], check=True, timeout=30)


@pytest.mark.parametrize(
    ("odd_user", "locale"),
    [
        (b"\xe9", "C.UTF-8"),
        (b"\xc3\xa9", "C"),
    ],
    ids=["latin1-name", "utf8-name-in-c-locale"],
    indirect=["odd_user"],
)
def test_a_user_whose_name_the_locale_cannot_decode_gets_its_groups(
    base: Path, odd_user: tuple[bytes, int], locale: str
) -> None:
    """``user=`` a name that is not text in the locale's encoding: the drop takes its groups."""
    name, extra_gid = odd_user
    pidfile = base / "d.pid"
    # The name as the daemon's Python decodes it: undecodable bytes as surrogates.
    shown = name.decode("utf-8" if locale == "C.UTF-8" else "ascii", "surrogateescape")
    options = {"detach": True, "pidfile": str(pidfile), "user": shown}
    env = {"LC_ALL": locale, "PYTHONUTF8": "0", "PYTHONCOERCECLOCALE": "0"}
    started = python([program("idle"), json.dumps(options)], env=env)
    assert started.returncode == 0, started.stderr
    pid = read_pid(pidfile)
    try:
        entry = pwd.getpwnam(os.fsdecode(name))
        status = proc_status(pid)
        assert status["Uid"].split() == [str(entry.pw_uid)] * 4
        assert sorted(status["Groups"].split()) == sorted([str(entry.pw_gid), str(extra_gid)])
    finally:
        stop_daemon(pid)


@pytest.mark.parametrize("odd_user", [b"\xe9"], ids=["latin1-name"], indirect=True)
def test_pep3143_initgroups_of_a_user_whose_name_is_not_utf8(
    base: Path, odd_user: tuple[bytes, int]
) -> None:
    """``DaemonContext(initgroups=True)`` for such a user takes its groups, no traceback."""
    name, extra_gid = odd_user
    report = base / "groups.json"
    ran = python([program("pep3143_user_groups"), os.fsdecode(name), report])
    assert ran.returncode == 0, ran.stderr
    entry = pwd.getpwnam(os.fsdecode(name))
    assert json.loads(report.read_text()) == sorted([entry.pw_gid, extra_gid])
