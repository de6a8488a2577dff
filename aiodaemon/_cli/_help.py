"""The ``aiodaemon`` command's help texts: each command's one-line help and its examples.

Plain strings, kept apart from the parser that shows them (:mod:`._parser`).
"""

from __future__ import annotations

__all__ = ["COMMANDS", "COMMON_EPILOG", "EXAMPLES"]

#: Every command and its one-line help, in the order ``--help`` lists them.
COMMANDS = {
    "run": "run TARGET in the foreground (Ctrl-C stops it)",
    "start": "start TARGET detached; print its pid when it is ready",
    "stop": "stop the daemon holding --pidfile (TERM, wait, KILL)",
    "restart": "stop the daemon holding --pidfile, then start TARGET",
    "reload": "reload the daemon holding --pidfile and report the result",
    "status": "tell what the daemon holding --pidfile is doing (LSB codes)",
    "upgrade": "replace the daemon holding --pidfile by new code, no downtime",
}

#: How TARGET is read and where the log records go, for run, start and restart.
COMMON_EPILOG = """\
TARGET is MODULE:ATTR (or MODULE, meaning MODULE:main), imported with the
current directory on sys.path. ATTR is an async main function (hooks come from
aiodaemon.on_startup etc.) or an aiodaemon.Daemon (its hooks are used, and its
program is the Daemon's own `main` attribute if it has one, else MODULE's
`main`). ATTR may be dotted: MODULE:obj.attr.

where the log records go:
  no --log-file/--syslog  stderr: console lines on a terminal in the foreground,
                          else JSON lines (always JSON as PID 1, a container);
                          detached, the --stderr file or nowhere
  --log-file F            F, as JSON lines (console lines with --log-format
                          console); in the foreground, warnings and errors also
                          show on stderr when it is a terminal
  --syslog [WHERE]        syslog (with --log-file: both), JSON message bodies
  --log-format FORMAT     json or console for every destination above
"""

#: Each command's examples and what its exit status tells, after its options.
EXAMPLES = {
    "run": """\
examples:
  aiodaemon run examples.echo:main --listen echo=127.0.0.1:8007
  aiodaemon run app:daemon --log-level debug --log-format console
  ExecStart=/usr/bin/aiodaemon run app:main      (systemd Type=notify)
""",
    "start": """\
examples:
  aiodaemon start examples.echo:main --pidfile /run/echo.pid --listen echo=:8007 \\
      --log-file /var/log/echo.jsonl
  aiodaemon start app:main --pidfile /run/app.pid --user app --listen http=:80

Prints the daemon's pid once it is ready (exit 0); if the start fails, the
daemon's error and status (1 when it ended before ready by its own choice). If
the pidfile is held by a running daemon, says so and exits 0 starting nothing
(LSB).
""",
    "restart": """\
examples:
  aiodaemon restart examples.echo:main --pidfile /run/echo.pid --listen echo=:8007 \\
      --log-file /var/log/echo.jsonl

Stops the daemon holding --pidfile (as `stop` does), then starts a new one with
the options given (as `start` does); with nothing running, just starts it.
Nothing is carried over from the running daemon: give its options again. A
daemon whose control socket says it serves a --listen or --health socket the
new one would not (by name) is left running (exit 1), the line naming the
options that keep them; stop, then start, to drop them on purpose. TARGET and
the options are checked first: on a usage error (exit 2) nothing is
stopped. Exit 0 with the new pid printed once it is ready (0 too, as for
`start`, when another start won the race and its daemon became ready:
"already running"); 1 when the stop failed (a holder that cannot be verified,
or one that survived SIGKILL: nothing started); the start's status when the
new daemon fails (the old one is gone by then: `aiodaemon upgrade` replaces a
daemon and rolls back instead); 4 when you may not stop it, or when, not root,
you could not bind again a privileged port it listens on (nothing stopped).
""",
    "stop": """\
examples:
  aiodaemon stop --pidfile /run/echo.pid
  aiodaemon stop --pidfile /run/echo.pid --timeout 5

Asks the daemon over its control socket to stop (the graceful shutdown SIGTERM
begins), or sends SIGTERM when it has no control socket; then SIGKILL after
--timeout seconds (without it: 30, or the daemon's own drain delay + shutdown
timeout + 2 s, from what it tells, when longer). A daemon already stopping is left
to finish ("already stopping (pid N); waiting"): several stops at once never
force its exit, as a second SIGTERM would. Only the process holding the
pidfile's lock is signalled, never a stale pid. A pidfile left by a dead daemon
(nobody holds its lock) is removed with its stale control socket, and the
command says so. The daemon (also one with --no-control) says how it ended when
that was not gracefully ("stopped (pid N); it exited with status 4: forced exit
(shutdown took longer than 30.0s)"). Exit 0 once it is gone or when it was not running; 1 when the
pidfile's holder cannot be verified (nothing signalled) or it survived SIGKILL;
4 when you may not signal it (or read its pidfile). A daemon whose pidfile was
removed or emptied by hand is found through its control socket or the lock. In a shared sticky
directory another user's pidfile is not believed (1) unless --user names that
user.
""",
    "reload": """\
examples:
  aiodaemon reload --pidfile /run/echo.pid
  ExecReload=/usr/bin/aiodaemon reload --pidfile /run/echo.pid   (systemd)

Log files are reopened and reload hooks run; waits for the result over the
control socket. Exit 0 when every reload hook succeeded; 1 with the failing
hook's "Type: message" on stderr (the daemon keeps running), or "still
reloading after S s" on --timeout; 7 when the daemon is not running; 4 when
the control socket (or a pidfile private to it) is the daemon user's and you
are someone else. A daemon that answers "busy" (every control slot taken) or
is being upgraded is asked again within --timeout (the new process reloads
once it took over); 1 "...; nothing reloaded" if it never gets through.
--no-wait, or a daemon without a control socket: only SIGHUP is sent (exit 0);
give a daemon started with --control the same --control here, or its result
is not known. A program without reload hooks: "reloaded (pid N; no reload
hooks; log files reopened)".
""",
    "upgrade": """\
examples:
  aiodaemon upgrade --pidfile /run/echo.pid
  aiodaemon upgrade --pidfile /run/echo.pid --timeout 120

Starts a fresh process of the same program (same command line and environment,
new code read from disk) that inherits the listening sockets and the locked
pidfile, waits until it is ready, then lets the old one drain and exit: no
request is refused. Prints the new pid (exit 0); if the new process fails or is
not ready within --timeout seconds it is killed, the old one keeps serving and
the error is printed (exit 1). A control socket that answers "busy", or a
daemon still starting or reloading, is asked again within --timeout. Exit 7
when the daemon is not running; 4 when you may not use its control socket (or
read its pidfile).
""",
    "status": """\
examples:
  aiodaemon status --pidfile /run/echo.pid
  aiodaemon status --pidfile /run/echo.pid --json

Prints the state (starting, running, reloading, stopping), the pid, the uptime,
the hook running now and for how long (a start, reload or stop that hangs),
the listening addresses, the last reload's result and aiodaemon's version.
--json prints one object with the keys state, pid, uptime, sockets,
last_reload and version. Exit status (LSB): 0 running (any of those states,
also with the pidfile removed or emptied while the daemon runs: a warning says
so; stopping, too, from its removal by the daemon itself until the process
ends), 1 dead but the pidfile exists, 3 not running, 4 unknown (unreadable
pidfile, unverifiable holder, the daemon's control socket not answering within
--timeout, another user's pidfile in a shared sticky directory unless --user
names that user). A control socket that stays "busy" for 2 s, or one that is
not the daemon's (another user's, or served by another process): running from
the pidfile (0), with a warning.
""",
}
