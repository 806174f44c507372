#!/bin/sh
# Socket activation: systemd-socket-activate (from Debian's systemd
# package) listens, and on the first connection execs echoserver with the
# socket as fd 3 (LISTEN_FDS=1, LISTEN_PID=its pid). echoserver must serve
# on that socket, not open its own, and on both sockets when it is passed
# two (127.0.0.1 and ::1, as echoserver.socket does); stop gracefully on
# SIGTERM; refuse
# -l/-p and --accept reuseport alongside it with exit 2, naming the
# conflict. A Unix socket (systemd's ListenStream=/path) is served too,
# named by its path, and --max-conns-per-ip counts its clients by user id,
# or, with --proxy-protocol, by the address each one's header carries.
# Loopback and Unix sockets only; every wait is bounded.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
server=${ECHOSERVER:-./echoserver}
activate=$(command -v systemd-socket-activate)
if [ -z "$activate" ]; then
    echo "1..0 # SKIP systemd-socket-activate not installed (Debian: apt-get install systemd)"
    exit 0
fi
echo "1..17"
n=0; failed=0
check() { n=$((n + 1)); if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi; waiting "the step after check $n ($2)"; }
tmp=$(mktemp -d)
pid=
trap 'watchdog_off; [ -n "$pid" ] && kill -9 $pid 2>/dev/null; rm -rf "$tmp"' EXIT
. "${TOP_SRCDIR:-$(dirname "$0")/..}/tests/watchdog.sh"
watchdog 120

# Starts systemd-socket-activate on $1 (an address:port, or a Unix
# socket's path) with echoserver and the other arguments; sets pid.
activate() {
    local at=$1
    shift
    "$activate" ${dgram:+-d} -l "$at" ${also:+-l "$also"} "$server" "$@" > "$tmp/out" 2> "$tmp/err" &
    pid=$!
    for i in $(seq 50); do
        grep -q "Listening on" "$tmp/err" 2>/dev/null && return 0
        kill -0 $pid 2>/dev/null || break
        sleep 0.1
    done
    kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null; pid=
    return 1
}

# The same on a free loopback port (on 127.0.0.1, and on [::1] too when
# $also_v6 is set); sets pid and port.
also_v6=
start() {
    for try in 1 2 3 4 5 6 7 8 9 10; do
        port=$((20000 + RANDOM % 30000))
        also=${also_v6:+[::1]:$port} activate "127.0.0.1:$port" "$@" && return 0
    done
    return 1
}

# One line through the server (at $host, 127.0.0.1 unless set); prints
# what came back.
echo_line() {
    local line=""
    exec 3<>"/dev/tcp/${host:-127.0.0.1}/$port" || return 1
    printf '%s\n' "$1" >&3
    IFS= read -r -t 5 line <&3
    exec 3>&-
    printf '%s' "$line"
}

# Waits (at most 10 s) for pid to exit; sets rc to its status.
wait_exit() {
    for i in $(seq 100); do
        kill -0 $pid 2>/dev/null || break
        sleep 0.1
    done
    kill -0 $pid 2>/dev/null && kill -9 $pid
    wait $pid; rc=$?; pid=
}

for accept in handoff shared; do
    start -t 2 --accept "$accept" || { echo "Bail out! cannot start $activate"; exit 1; }
    got=$(echo_line "hello, $accept")
    [ "$got" = "hello, $accept" ] && grep -q "listening on 127.0.0.1:$port" "$tmp/out" &&
        grep -q "sockets from socket activation" "$tmp/err"
    check $? "--accept $accept: echoes on the socket systemd-socket-activate passed (port $port)"
    kill -TERM $pid
    wait_exit
    [ "$rc" = 0 ] && grep -q "info: stopped" "$tmp/err"
    check $? "--accept $accept: SIGTERM stops it gracefully (exit $rc)"
done

# Two sockets, as echoserver.socket passes them: both served, both named.
also_v6=1
start -t 2 || { echo "Bail out! cannot start $activate on 127.0.0.1 and [::1]"; exit 1; }
also_v6=
got4=$(echo_line "hello, IPv4")
got6=$(host=::1 echo_line "hello, IPv6")
[ "$got4" = "hello, IPv4" ] && [ "$got6" = "hello, IPv6" ] &&
    grep -q "listening on 127.0.0.1:$port" "$tmp/out" && grep -q "listening on \[::1\]:$port" "$tmp/out"
check $? "two sockets passed in (127.0.0.1 and [::1], as echoserver.socket): both echo, both named"
kill -TERM $pid
wait_exit

# -p and socket activation together: exit 2 on the first connection, named.
start -t 1 -p 7007 || { echo "Bail out! cannot start $activate"; exit 1; }
echo_line "x" > /dev/null 2>&1
wait_exit
[ "$rc" = 2 ] && grep -q "cannot be used with socket activation" "$tmp/err"
check $? "-p with an inherited socket: exit $rc (2 expected), naming the conflict"
# --accept reuseport opens a socket per worker: it cannot take one passed in.
start -t 2 --accept reuseport || { echo "Bail out! cannot start $activate"; exit 1; }
echo_line "x" > /dev/null 2>&1
wait_exit
[ "$rc" = 2 ] && grep -q "cannot use inherited sockets" "$tmp/err"
check $? "--accept reuseport with an inherited socket: exit $rc (2 expected), with the reason"

# A datagram socket (ListenDatagram=), activated by its first datagram:
# told from a stream socket by its type and answered (RFC 862 over UDP),
# without --udp, as the unit asked for it.
dgram=1
start -t 2 || { echo "Bail out! cannot start $activate --datagram"; exit 1; }
dgram=
# The first datagram starts the server (not answered if it comes before the
# server reads: UDP); once it says it answers, nc's datagram comes back.
printf 'wake' > "/dev/udp/127.0.0.1/$port"
for i in $(seq 100); do grep -q "answering UDP" "$tmp/out" && break; sleep 0.1; done
got=$(printf 'hello, udp' | timeout 5 nc -u -w1 127.0.0.1 "$port")
[ "$got" = "hello, udp" ] && grep -q "answering UDP on 127.0.0.1:$port" "$tmp/out"
check $? "a datagram socket passed in (ListenDatagram=): nc -u gets its datagram back, and the socket is named"
kill -TERM $pid
wait_exit
[ "$rc" = 0 ] && grep -q "info: stopped" "$tmp/err"
check $? "... and SIGTERM stops it gracefully (exit $rc)"

# --udp with only stream sockets passed in: refused (exit 2), naming what
# is missing, rather than serving no UDP without a word.
start -t 1 --udp || { echo "Bail out! cannot start $activate"; exit 1; }
echo_line "x" > /dev/null 2>&1
wait_exit
[ "$rc" = 2 ] && grep -q "no inherited socket is a datagram socket" "$tmp/err"
check $? "--udp with only a stream socket passed in: exit $rc (2 expected), naming ListenDatagram="

# A Unix socket: one line through it (nc -N: shut down after stdin's EOF,
# then read to the server's EOF); prints what came back.
unix_line() {
    printf '%s\n' "$1" | timeout 5 nc -N -U "$sock"
}

# Waits (at most 5 s) for file $1 to contain $2.
wait_for() {
    for i in $(seq 50); do
        grep -q "$2" "$1" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

if ! nc -h 2>&1 | grep -qi "unix domain"; then
    for i in 1 2 3 4 5 6 7; do
        echo "ok $((n += 1)) # SKIP no nc with -U (Debian: apt-get install netcat-openbsd)"
    done
    exit $failed
fi
sock="$tmp/echo.sock"
activate "$sock" -t 2 --max-conns-per-ip 1 || { echo "Bail out! cannot start $activate on $sock"; exit 1; }
got=$(unix_line "hello, unix")
[ "$got" = "hello, unix" ] && grep -q "listening on $sock\$" "$tmp/out"
check $? "a Unix socket: echoes, and its 'listening on' line names its path"

# --max-conns-per-ip 1: while one connection of this user is open, a
# second from the same user is closed at once, and the refusal names the
# uid; another user may connect (where this test can be another user).
mkfifo "$tmp/in"
nc -N -U "$sock" < "$tmp/in" > "$tmp/held" &
held=$!
exec 5> "$tmp/in"
printf 'first\n' >&5
wait_for "$tmp/held" first
got=$(unix_line "second")
[ -z "$got" ] && wait_for "$tmp/err" "refused a connection from uid $(id -u), which has 1 already"
check $? "--max-conns-per-ip 1 on a Unix socket: a second connection of uid $(id -u) is refused, named by its uid"
if [ "$(id -u)" = 0 ] && command -v setpriv > /dev/null; then
    chmod 755 "$tmp"; chmod 777 "$sock"
    got=$(printf 'other\n' | setpriv --reuid=65534 --regid=65534 --clear-groups \
        timeout 5 nc -N -U "$sock")
    [ "$got" = "other" ]
    check $? "... while uid 65534's connection is served (it counts apart)"
else
    echo "ok $((n += 1)) # SKIP another user needs root and setpriv"
fi
exec 5>&-
for i in $(seq 50); do kill -0 $held 2>/dev/null || break; sleep 0.1; done
kill $held 2>/dev/null; wait $held
got=$(unix_line "third")
[ "$got" = "third" ]
check $? "once it is closed, a new connection of uid $(id -u) is served"
kill -TERM $pid
wait_exit
[ "$rc" = 0 ] && grep -q "info: stopped" "$tmp/err"
check $? "a Unix socket: SIGTERM stops it gracefully (exit $rc)"

# Behind a balancer on a Unix socket (HAProxy's "server s /path
# send-proxy-v2"): --proxy-protocol counts the address each header
# carries, not the socket's uid. While 192.0.2.1 holds its one connection,
# a second of 192.0.2.1 is refused, named, and 192.0.2.2 is served.
rm -f "$sock"
activate "$sock" -t 2 --proxy-protocol --max-conns-per-ip 1 ||
    { echo "Bail out! cannot start $activate on $sock with --proxy-protocol"; exit 1; }
proxied_line() {
    printf 'PROXY TCP4 %s 127.0.0.1 4000 7\r\n%s\n' "$1" "$2" | timeout 5 nc -N -U "$sock"
}
mkfifo "$tmp/in2"
nc -N -U "$sock" < "$tmp/in2" > "$tmp/held2" &
held=$!
exec 5> "$tmp/in2"
printf 'PROXY TCP4 192.0.2.1 127.0.0.1 4000 7\r\nfirst\n' >&5
wait_for "$tmp/held2" first
got1=$(proxied_line 192.0.2.1 second)
got2=$(proxied_line 192.0.2.2 other)
[ -z "$got1" ] && [ "$got2" = other ] &&
    wait_for "$tmp/err" "refused a connection from 192.0.2.1, which has 1 already"
check $? "--proxy-protocol on an activated Unix socket: the header's 192.0.2.1 is held to 1, named; 192.0.2.2 is served"
exec 5>&-
for i in $(seq 50); do kill -0 $held 2>/dev/null || break; sleep 0.1; done
kill $held 2>/dev/null; wait $held
got=$(proxied_line 192.0.2.1 again)
[ "$got" = again ] && [ "$(cat "$tmp/held2")" = first ]
check $? "... once it is closed, 192.0.2.1 is served again; the held one got back its line and no header"
kill -TERM $pid
wait_exit

[ $failed = 0 ] || { echo "# server log:"; sed 's/^/#   /' "$tmp/err"; }
exit $failed
