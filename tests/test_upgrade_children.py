"""What the processes an upgraded daemon's startup hooks start inherit from it."""

from __future__ import annotations

from pathlib import Path

from .support import aiodaemon_cli, install_program, is_alive, kill_quietly, wait_for, wait_gone


def test_a_helper_of_the_new_process_keeps_writing_to_the_daemon_s_stderr(
    tmp_path: Path,
) -> None:
    """After the hand-over, a helper the new process started still writes to the --stderr file."""
    install_program("stderr_helper", tmp_path)
    pidfile, stderr, helpers = tmp_path / "d.pid", tmp_path / "err.txt", tmp_path / "helpers"
    helpers.mkdir()
    env = {"HELPER_DIR": str(helpers)}
    options: list[str | Path] = ["--pidfile", pidfile, "--log-file", tmp_path / "log"]
    options += ["--stderr", stderr]
    try:
        started = aiodaemon_cli("start", "app:main", *options, cwd=tmp_path, env=env)
        assert started.returncode == 0, started.stderr
        old = int(pidfile.read_text())
        upgraded = aiodaemon_cli("upgrade", "--pidfile", pidfile, cwd=tmp_path, env=env)
        assert upgraded.returncode == 0, upgraded.stderr
        new = int(upgraded.stdout)
        wait_gone(old, 30)
        helper = int((helpers / str(new)).read_text())

        def ticks() -> int:
            return stderr.read_text().count(f"tick {helper}\n")

        # Lines written once nobody read the pipe to the old daemon any more.
        after = ticks()
        wait_for(lambda: ticks() >= after + 3, 10, "the helper's lines after the hand-over")
        assert is_alive(helper)
    finally:
        aiodaemon_cli("stop", "--pidfile", pidfile)
        for path in helpers.iterdir():
            kill_quietly(int(path.read_text()))
