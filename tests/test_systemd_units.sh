#!/bin/sh
# The systemd units as built (systemd/*.in with this install's paths):
# echoserver.service is confined to an exposure of 1.5 or less by
# `systemd-analyze security --offline=true` (0 is fully confined, 10 not at
# all); both units pass `systemd-analyze verify` (offline: it reads the
# files, needs no running systemd, and checks that ExecStart= is an
# executable and that each man: page in Documentation= exists); both name
# man:echoserver(1); the service is Type=notify (tests/test_notify checks
# what echoserver tells the manager); the socket unit listens where
# echoserver does by default; the metrics socket unit names its socket
# "metrics" (what echoserver serves the metrics on) and the service takes
# it. SKIP, saying why, without systemd-analyze.
set -u
top_build=${TOP_BUILDDIR:-.}
top_src=${TOP_SRCDIR:-$(dirname "$0")/..}
service=$top_build/systemd/echoserver.service
socket=$top_build/systemd/echoserver.socket
msocket=$top_build/systemd/echoserver-metrics.socket
server=${ECHOSERVER:-$top_build/echoserver}
max_exposure=1.5

echo "1..8"
n=0; failed=0
say() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi; }
skip() { n=$((n + 1)); echo "ok $n # SKIP $1"; }
tmp=$(mktemp -d)
trap 'watchdog_off; rm -rf "$tmp"' EXIT
. "$top_src/tests/watchdog.sh"
watchdog 120

if [ ! -f "$service" ] || [ ! -f "$socket" ] || [ ! -f "$msocket" ]; then
    echo "Bail out! $service, $socket or $msocket not built (make builds them)"
    exit 1
fi

# Documentation=man:echoserver(1) in each; Type=notify in the service.
grep -qx 'Documentation=man:echoserver(1)' "$service" &&
    grep -qx 'Documentation=man:echoserver(1)' "$socket" &&
    grep -qx 'Documentation=man:echoserver(1)' "$msocket"
say $? "the three units name man:echoserver(1) in Documentation="
grep -qx 'Type=notify' "$service"
say $? "echoserver.service is Type=notify"

# Where echoserver listens by default: localhost (127.0.0.1 and ::1) on the
# port its --help names.
port=$("$server" --help | sed -n 's/.*TCP port (default \([0-9]*\).*/\1/p')
listens=$(sed -n 's/^ListenStream=//p' "$socket" | tr '\n' ' ')
[ -n "$port" ] && [ "$listens" = "127.0.0.1:$port [::1]:$port " ]
say $? "echoserver.socket listens where echoserver does by default: $listens(port ${port:-?})"

# The metrics socket: named "metrics" (echoserver serves the metrics on a
# socket of that name), for this service, which takes it with the echo
# sockets; on loopback.
grep -qx 'FileDescriptorName=metrics' "$msocket" && grep -qx 'Service=echoserver.service' "$msocket" &&
    grep -qx 'Sockets=echoserver.socket echoserver-metrics.socket' "$service" &&
    [ "$(sed -n 's/^ListenStream=//p' "$msocket")" = "127.0.0.1:9555" ] &&
    ! grep -q '^FileDescriptorName=' "$socket"
say $? "echoserver-metrics.socket passes 127.0.0.1:9555 named metrics to the service, which takes it"

analyze=$(command -v systemd-analyze)
if [ -z "$analyze" ]; then
    why="systemd-analyze not installed (Debian: apt-get install systemd)"
    skip "exposure of echoserver.service: $why"
    skip "systemd-analyze verify echoserver.service: $why"
    skip "systemd-analyze verify echoserver.socket: $why"
    skip "systemd-analyze verify echoserver-metrics.socket: $why"
    exit $failed
fi

# The exposure, from the line "→ Overall exposure level for
# echoserver.service: 0.2 SAFE".
waiting "systemd-analyze security"
"$analyze" security --offline=true "$service" > "$tmp/security" 2>&1
level=$(sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p' "$tmp/security")
if [ -z "$level" ] && grep -q -- "--offline" "$tmp/security"; then
    skip "exposure of echoserver.service: this systemd-analyze has no --offline ($(head -1 "$tmp/security"))"
else
    [ -n "$level" ] && awk -v x="$level" -v max="$max_exposure" 'BEGIN { exit !(x <= max) }'
    say $? "systemd-analyze security --offline=true: echoserver.service's exposure is ${level:-unknown} (at most $max_exposure)"
    [ -n "$level" ] || sed 's/^/#   /' "$tmp/security"
fi

# verify, on copies whose ExecStart= is the echoserver just built (verify
# wants an executable there, and the install's path is not one yet), with
# the man page it should find.
mkdir -p "$tmp/units" "$tmp/man/man1"
sed "s|^ExecStart=[^ ]*|ExecStart=$(cd "$(dirname "$server")" && pwd)/$(basename "$server")|" \
    "$service" > "$tmp/units/echoserver.service"
cp "$socket" "$tmp/units/echoserver.socket"
cp "$msocket" "$tmp/units/echoserver-metrics.socket"
cp "$top_src/doc/echoserver.1" "$tmp/man/man1/"
man_check=--man=yes
command -v man > /dev/null || man_check=--man=no	# nothing to look the page up with
# First a unit that cannot be wrong: if even that fails, verify does not
# work here, whatever our units say.
printf '[Service]\nExecStart=/bin/true\n' > "$tmp/units/probe.service"
waiting "systemd-analyze verify"
if ! "$analyze" verify --man=no "$tmp/units/probe.service" > "$tmp/probe" 2>&1; then
    why="systemd-analyze verify fails even on a minimal unit here: $(head -1 "$tmp/probe")"
    skip "systemd-analyze verify echoserver.service: $why"
    skip "systemd-analyze verify echoserver.socket: $why"
    skip "systemd-analyze verify echoserver-metrics.socket: $why"
    exit $failed
fi
for unit in echoserver.service echoserver.socket echoserver-metrics.socket; do
    MANPATH=$tmp/man "$analyze" verify "$man_check" "$tmp/units/$unit" > "$tmp/verify" 2>&1 &&
        ! [ -s "$tmp/verify" ]
    say $? "systemd-analyze verify $man_check accepts $unit, without a warning"
    sed 's/^/#   /' "$tmp/verify"
done
exit $failed
