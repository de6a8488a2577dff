#!/usr/bin/env bash
# Run aiodaemon's documented systemd units under a real systemd, as PID 1 of a
# systemd-nspawn container booted from this host's own /usr, and check from
# outside (systemctl, journalctl) what docs/systemd.md and docs/production.md say.
#
#   sudo tools/systemd-check/check.sh [--keep]
#
# See README.md beside this file. Prints one PASS/FAIL line per check; exits 1 if
# any failed. --keep leaves the container running (and prints how to enter it).
set -uo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
REPO=$(cd "$HERE/../.." && pwd)
MACHINE=aiodaemon-check
KEEP=0
[ "${1:-}" = "--keep" ] && KEEP=1

[ "$(id -u)" -eq 0 ] || { echo "check.sh: run as root" >&2; exit 2; }
command -v systemd-nspawn >/dev/null || { echo "check.sh: needs systemd-nspawn (apt-get install systemd-container)" >&2; exit 2; }
[ -x /lib/systemd/systemd ] || { echo "check.sh: needs systemd in this host's /usr" >&2; exit 2; }

WORK=$(mktemp -d /tmp/aiodaemon-systemd-check.XXXXXX)
NSPAWN=
cleanup() {
    if [ -n "$NSPAWN" ] && [ "$KEEP" -eq 0 ]; then
        kill -TERM "$NSPAWN" 2>/dev/null   # nspawn asks the container's systemd to halt
        for _ in $(seq 100); do kill -0 "$NSPAWN" 2>/dev/null || break; sleep 0.2; done
        kill -KILL "$NSPAWN" 2>/dev/null
        wait "$NSPAWN" 2>/dev/null
    fi
    [ "$KEEP" -eq 0 ] && rm -rf "$WORK"
}
trap cleanup EXIT

echo "== building wheels of $REPO and its dependencies"
python3 -m pip wheel -q -w "$WORK/wheels" "$REPO" 2>&1 | grep -v '^WARNING' || true
ls "$WORK"/wheels/aiodaemon-*.whl >/dev/null || { echo "check.sh: no aiodaemon wheel built" >&2; exit 2; }

echo "== booting systemd in a container ($MACHINE)"
# --volatile=yes -D /: a tmpfs root with this host's /usr; systemd fills /etc.
# systemd.firstboot=off: no interactive first-boot questions on the console.
# shellcheck disable=SC2086
systemd-nspawn --volatile=yes -D / --boot --register=no --keep-unit -M "$MACHINE" \
    --console=passive --bind-ro="$REPO":/srv/aiodaemon-src --bind-ro="$WORK/wheels":/srv/wheels \
    ${NSPAWN_FLAGS:-} -- systemd.firstboot=off >"$WORK/console.log" 2>&1 </dev/null &
NSPAWN=$!
LEADER=
for _ in $(seq 150); do
    LEADER=$(pgrep -P "$NSPAWN" -x systemd || true)
    [ -n "$LEADER" ] && break
    sleep 0.2
done
[ -n "$LEADER" ] || { echo "check.sh: systemd did not start; console:" >&2; cat "$WORK/console.log" >&2; exit 1; }

c() { nsenter -t "$LEADER" -a "$@"; }
for _ in $(seq 150); do
    state=$(c systemctl is-system-running 2>/dev/null || true)
    case $state in running|degraded) break ;; esac
    sleep 0.2
done
echo "   $(c systemctl --version | head -n1) is PID 1 ($(c cat /proc/1/comm)), state $state"

FAILED=0
pass() { echo "PASS  $*"; }
fail() { echo "FAIL  $*"; FAILED=$((FAILED + 1)); }
check() { local name=$1; shift; if "$@"; then pass "$name"; else fail "$name"; fi; }
# For what the journal shows: journald writes a line a moment after it was sent.
checkj() { local name=$1; shift; check "$name" wait_until 50 "$@"; }
show() { c systemctl show "$1" -p "$2" --value; }
echo_hi() { c timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/8007; echo hi >&3; head -n1 <&3' 2>/dev/null; }
# grep reading all its input: with pipefail, grep -q ending early would fail
# the pipeline whenever journalctl then dies of SIGPIPE.
contains() { grep "$@" >/dev/null; }
journal() { c journalctl -u "$1" --no-pager -o cat "${@:2}"; }
wait_until() { local n=$1; shift; for _ in $(seq "$n"); do "$@" && return 0; sleep 0.2; done; return 1; }
mode() { echo "$1" >"/proc/$LEADER/root/run/checkapp-mode"; }
bin=/opt/aiodaemon/venv/bin/aiodaemon

echo "== installing aiodaemon and the units"
c sh -ec '
    mkdir -p /opt/aiodaemon/tools
    cp -r /srv/aiodaemon-src/examples /opt/aiodaemon/
    cp -r /srv/aiodaemon-src/tools/systemd-check /opt/aiodaemon/tools/
    python3 -m venv /opt/aiodaemon/venv
    /opt/aiodaemon/venv/bin/pip install -q --no-index --find-links /srv/wheels aiodaemon 2>&1 | grep -v "^WARNING" || true
    cp /srv/aiodaemon-src/examples/systemd/echo.service /srv/aiodaemon-src/examples/systemd/echo.socket \
       /srv/aiodaemon-src/examples/systemd/echo-forking.service /etc/systemd/system/
    # echo.service as it is, running the check program instead of the echo example.
    sed -e "s|^WorkingDirectory=.*|WorkingDirectory=/opt/aiodaemon/tools/systemd-check|" \
        -e "s|examples.echo:main|checkapp:main|" /etc/systemd/system/echo.service \
        >/etc/systemd/system/checkapp.service
    sed -e "s|^ExecStart=\(.*\)$|ExecStart=\1 --syslog|" /etc/systemd/system/checkapp.service \
        >/etc/systemd/system/checkapp-syslog.service
    useradd --system --user-group --no-create-home --shell /usr/sbin/nologin echo
'
# The units of docs/production.md, with the paths of this installation.
python3 - "$REPO/docs/production.md" "/proc/$LEADER/root/etc/systemd/system" <<'EOF'
import re, sys
from pathlib import Path
page, target = Path(sys.argv[1]).read_text(), Path(sys.argv[2])
blocks = [b for b in re.findall(r"```ini\n(.*?)```", page, re.S) if "[Service]" in b]
names = ["doc-notify", "doc-forking", "doc-upgrade"]
assert len(blocks) == len(names), f"{len(blocks)} units in production.md, expected {names}"
for name, unit in zip(names, blocks):
    unit = unit.replace("/srv/echo/venv/", "/opt/aiodaemon/venv/").replace(" echo:main", " examples.echo:main")
    unit = re.sub(r"^WorkingDirectory=.*$", "WorkingDirectory=/opt/aiodaemon", unit, flags=re.M)
    if "WorkingDirectory=" not in unit:
        unit = unit.replace("[Service]\n", "[Service]\nWorkingDirectory=/opt/aiodaemon\n")
    (target / f"{name}.service").write_text(unit)
EOF
c systemctl daemon-reload
c systemctl log-level debug   # "Got notification message from PID N (...)" in the journal

echo "== Type=notify (examples/systemd/echo.service)"
notified() { journal "$1" | contains "Got notification message from PID $2 ($3"; }
c systemctl start echo.service
check "start returns once the daemon is ready (active, answers at once)" \
    test "$(show echo ActiveState)/$(echo_hi)" = active/hi
check "status shows the daemon's STATUS=" test "$(show echo StatusText)" = running
checkj "the JSON lines on stderr are in the journal" eval 'journal echo | contains "\"event\":\"ready\""'
pid=$(show echo MainPID)
check "reload waits for the daemon, exit 0" c systemctl reload echo.service
checkj "... which sent RELOADING=1 with MONOTONIC_USEC=, then READY=1" \
    eval 'notified echo "$pid" "RELOADING=1, MONOTONIC_USEC=" && notified echo "$pid" "READY=1, MAINPID=$pid"'
check "stop through ExecStop=: exit 0" c systemctl stop echo.service
check "... inactive, result success, exit status 0" \
    test "$(show echo ActiveState)/$(show echo Result)/$(show echo ExecMainStatus)" = inactive/success/0
checkj "... the daemon sent STOPPING=1" notified echo "$pid" "STOPPING=1"

echo "== examples/systemd/echo.service.d/notify-reload.conf"
dropin=/proc/$LEADER/root/etc/systemd/system/echo.service.d
mkdir -p "$dropin" && cp "$REPO/examples/systemd/echo.service.d/notify-reload.conf" "$dropin/"
c systemctl daemon-reload
c systemctl start echo.service
version=$(c systemctl --version | awk 'NR == 1 {print $2}')
if [ "$version" -lt 253 ]; then
    check "systemd $version keeps Type=notify and has no reload with the drop-in, as it says" \
        eval 'test "$(show echo Type)" = notify && ! c systemctl reload echo.service 2>/dev/null'
else
    check "Type=notify-reload: systemctl reload exits 0" c systemctl reload echo.service
fi
c systemctl stop echo.service
rm -r "$dropin" && c systemctl daemon-reload

echo "== reload hooks and the watchdog (checkapp.service: echo.service running tools/systemd-check/checkapp.py)"
mode ""
c systemctl start checkapp.service
check "a startup hook's own status stays after READY=1" test "$(show checkapp StatusText)" = "warming up"
mode fail
check "a failing reload hook fails systemctl reload" eval '! c systemctl reload checkapp.service 2>/dev/null'
check "... the daemon still runs, and its status says why" \
    test "$(show checkapp ActiveState)/$(show checkapp StatusText)" = "active/running; last reload failed: ValueError: bad config"
checkj "... the journal has the hook's error" \
    eval 'journal checkapp | contains "aiodaemon: reload failed (pid [0-9]*, still running): ValueError: bad config"'
mode block
c systemctl kill --kill-who=main -s HUP checkapp.service   # the reload hook blocks the loop
restarted() { test "$(show checkapp NRestarts)/$(show checkapp ActiveState)" = 1/active; }
check "a blocked event loop is killed by the watchdog and restarted" wait_until 150 restarted
mode ""
checkj "... 'Failed with result watchdog', after PYTHONFAULTHANDLER's stack naming the blocking hook" \
    eval 'journal checkapp | contains "Failed with result '"'"'watchdog'"'"'" && journal checkapp | contains "in reload_config"'
c systemctl stop checkapp.service

mode startfail
c systemctl reset-failed checkapp.service
check "a failing startup hook fails systemctl start" eval '! c systemctl start checkapp.service 2>/dev/null'
check "... with the error as the unit's status" \
    test "$(show checkapp StatusText)" = "startup failed: KeyError: 'DATABASE_URL'"
mode ""
c systemctl stop checkapp.service
c systemctl reset-failed checkapp.service

echo "== syslog to journald (checkapp-syslog.service: --syslog)"
c systemctl start checkapp-syslog.service
mode fail
c systemctl reload checkapp-syslog.service 2>/dev/null
mode ""
checkj "records arrive as syslog messages tagged checkapp, an error at priority err" \
    eval 'journal checkapp-syslog -t checkapp -p err | contains "\"event\":\"reload hook failed\""'
c systemctl stop checkapp-syslog.service

echo "== socket activation (examples/systemd/echo.socket)"
c systemctl start echo.socket
check "the socket alone does not start the service" test "$(show echo ActiveState)" = inactive
check "the first connection starts it, and it answers" test "$(echo_hi)" = hi
checkj "... active, on systemd's socket (FileDescriptorName=echo), LISTEN_* removed" eval '
    test "$(show echo ActiveState)" = active &&
    journal echo | grep "\"event\":\"starting\"" | tail -n1 | contains "\"sockets\":{\"echo\":\"127.0.0.1:8007\"}" &&
    ! c cat "/proc/$(show echo MainPID)/environ" | tr "\0" "\n" | contains "^LISTEN_"'
new=$(c $bin upgrade --pidfile /run/aiodaemon-echo/echo.pid)
check "aiodaemon upgrade of a socket-activated daemon: MAINPID follows, answers" \
    test -n "$new" -a "$(show echo MainPID)/$(show echo ActiveState)/$(echo_hi)" = "$new/active/hi"
check "... stop (ExecStop=): success" eval 'c systemctl stop echo.service && test "$(show echo Result)" = success'
c systemctl stop echo.socket echo.service

echo "== Type=forking (examples/systemd/echo-forking.service)"
c systemctl start echo-forking.service
check "start: active, MAINPID read from PIDFile=, answers" \
    test "$(show echo-forking ActiveState)/$(show echo-forking MainPID)/$(echo_hi)" = "active/$(c cat /run/aiodaemon-echo/echo.pid)/hi"
check "reload waits for the daemon, exit 0" c systemctl reload echo-forking.service
new=$(c $bin upgrade --pidfile /run/aiodaemon-echo/echo.pid)
following() { test -n "$new" -a "$(show echo-forking MainPID)/$(show echo-forking ActiveState)" = "$new/active"; }
check "aiodaemon upgrade: systemd follows PIDFile= to the new process, active" wait_until 50 following
check "... which answers" test "$(echo_hi)" = hi
check "stop: exit 0" c systemctl stop echo-forking.service
check "... inactive, result success" test "$(show echo-forking ActiveState)/$(show echo-forking Result)" = inactive/success

echo "== aiodaemon upgrade under Type=notify (echo.service, NotifyAccess=main, WatchdogSec=10s)"
c systemctl start echo.service
old=$(show echo MainPID)
new=$(c $bin upgrade --pidfile /run/aiodaemon-echo/echo.pid)
check "upgrade prints the new pid, and MAINPID becomes it" test -n "$new" -a "$(show echo MainPID)" = "$new" -a "$new" != "$old"
sleep 12   # longer than WatchdogSec=10s: the new process must feed the watchdog
check "the unit stays active past WatchdogSec, no restart, answers" \
    test "$(show echo ActiveState)/$(show echo NRestarts)/$(echo_hi)" = active/0/hi
check "systemctl reload exits 0" c systemctl reload echo.service
checkj "... it reached the new process" eval 'journal echo | contains "reloaded (pid $new)"'
check "stop drains the new process (ExecStop=)" c systemctl stop echo.service
check "... inactive, result success, exit status 0 (no SIGKILL)" \
    test "$(show echo ActiveState)/$(show echo Result)/$(show echo ExecMainStatus)" = inactive/success/0

echo "== the units of docs/production.md"
check "Type=notify with User=echo: start" c systemctl start doc-notify.service
check "... active, answers" test "$(show doc-notify ActiveState)/$(echo_hi)" = active/hi
check "... reload, stop: success" eval 'c systemctl reload doc-notify && c systemctl stop doc-notify && test "$(show doc-notify Result)" = success'
check "Type=forking on port 7 with AmbientCapabilities=: start, reload, stop" \
    eval 'c systemctl start doc-forking && test "$(show doc-forking ActiveState)" = active &&
          c systemctl reload doc-forking && c systemctl stop doc-forking && test "$(show doc-forking Result)" = success'
c systemctl start doc-upgrade.service
old=$(show doc-upgrade MainPID)
check "ExecReload=aiodaemon upgrade: systemctl reload exits 0" c systemctl reload doc-upgrade.service
check "... MAINPID changed, active, answers" \
    eval 'test "$(show doc-upgrade MainPID)" != "$old" -a "$(show doc-upgrade ActiveState)/$(echo_hi)" = active/hi'
check "... stop after the upgrade: inactive, success" \
    eval 'c systemctl stop doc-upgrade && test "$(show doc-upgrade ActiveState)/$(show doc-upgrade Result)" = inactive/success'

echo "== the tutorial's unit (docs/tutorial.md, section 5), as written"
python3 - "$REPO/docs/tutorial.md" "/proc/$LEADER/root" <<'EOF'
import re, sys
from pathlib import Path
page, root = Path(sys.argv[1]).read_text(), Path(sys.argv[2])
program = re.search(r"`~/svc/greeter.py`:\n\n```python\n(.*?)```", page, re.S)[1]
(unit,) = [b for b in re.findall(r"```ini\n(.*?)```", page, re.S) if "[Service]" in b]
(root / "home/me/svc").mkdir(parents=True)
(root / "home/me/svc/greeter.py").write_text(program)
(root / "etc/systemd/system/greeter.service").write_text(unit)
EOF
c sh -ec '
    useradd --user-group --shell /bin/bash me
    python3 -m venv /home/me/svc/venv
    /home/me/svc/venv/bin/pip install -q --no-index --find-links /srv/wheels aiodaemon 2>&1 | grep -v "^WARNING" || true
    chown -R me:me /home/me && chmod 0700 /home/me
    systemctl daemon-reload'
greet() { c timeout 10 bash -c 'exec 3<>/dev/tcp/127.0.0.1/8008; echo me >&3; head -n1 <&3' 2>/dev/null; }
check "start: active, greets" eval 'c systemctl start greeter && test "$(show greeter ActiveState)/$(greet)" = "active/hello, me"'
echo hi >"/proc/$LEADER/root/tmp/greeting.txt"
check "reload rereads the greeting, exit 0" eval 'c systemctl reload greeter && test "$(greet)" = "hi, me"'
rm "/proc/$LEADER/root/tmp/greeting.txt"
check "reload without the file fails, the daemon keeps greeting hi" \
    eval '! c systemctl reload greeter 2>/dev/null && test "$(show greeter ActiveState)/$(greet)" = "active/hi, me"'
checkj "... the journal says FileNotFoundError" eval 'journal greeter | contains "reload failed (pid [0-9]*, still running): FileNotFoundError"'
check "stop: inactive, success" eval 'c systemctl stop greeter && test "$(show greeter Result)" = success'

check "no unit of ours failed" eval '! c systemctl --failed --plain --no-legend | grep -E "echo|checkapp|doc-|greeter"'

if [ "$KEEP" -eq 1 ]; then
    echo "container kept: nsenter -t $LEADER -a bash   (stop it: kill $NSPAWN)"
fi
echo "== $FAILED check(s) failed"
[ "$FAILED" -eq 0 ]
