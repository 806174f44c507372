#!/bin/sh
# UDP echo as people try it first: `printf hi | nc -u -w1 127.0.0.1 PORT`
# prints hi with --udp. (IPv6, and UDP being off without --udp: test_udp,
# which needs no second of nc's idle wait for them.) Loopback only; every
# wait is bounded (nc -w1, timeout 5).
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
server=${ECHOSERVER:-./echoserver}
. "${TOP_SRCDIR:-$(dirname "$0")/..}/tests/watchdog.sh"
if ! command -v nc > /dev/null; then
    echo "1..0 # SKIP no nc (Debian: apt-get install netcat-openbsd)"
    exit 0
fi
echo "1..1"
n=0; failed=0
check() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi; waiting "the step after check $n ($2)"; }
tmp=$(mktemp -d)
pid=
trap 'watchdog_off; [ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$tmp"' EXIT
watchdog 60

# Starts echoserver with the arguments on 127.0.0.1 and ::1, port 0; sets
# pid and port (from its first "listening on" line, within 5 s).
start() {
    "$server" -l 127.0.0.1 -l ::1 -p 0 -t 2 "$@" > "$tmp/out" 2> "$tmp/err" &
    pid=$!
    port=
    for i in $(seq 50); do
        port=$(sed -n 's/^echoserver: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/out")
        [ -n "$port" ] && return 0
        sleep 0.1
    done
    return 1
}
stop() { kill -TERM $pid; wait $pid; pid=; }

start --udp || { echo "Bail out! cannot start $server --udp"; exit 1; }
got=$(printf hi | timeout 5 nc -u -w1 127.0.0.1 "$port")
[ "$got" = hi ] && grep -q "answering UDP on 127.0.0.1:$port" "$tmp/out"
check $? "--udp: printf hi | nc -u -w1 127.0.0.1 $port prints hi"
stop
exit $failed
