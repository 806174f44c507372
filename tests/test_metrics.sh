#!/bin/sh
# --metrics-listen: GET /metrics in Prometheus's text format, checked by
# the real tools: promtool accepts it, and a real Prometheus server scrapes
# a running echoserver (up == 1, a counter that grew with the traffic sent).
# The figures are counts of what the test did; the endpoint answers bad
# requests with the right status, closes connections over its limit at
# once and a slowloris at its deadline, and the echo path does not notice.
# Socket activation: a socket named "metrics" serves the metrics.
# Loopback only; every wait is bounded and says what it waited for.
[ -n "${BASH_VERSION:-}" ] || exec bash "$0" "$@"
set -u
server=${ECHOSERVER:-./echoserver}
srcdir=${TOP_SRCDIR:-$(dirname "$0")/..}
tmp=$(mktemp -d)
pids=""
trap 'watchdog_off; for p in $pids; do kill -9 $p 2>/dev/null; done; rm -rf "$tmp"' EXIT
. "$srcdir/tests/watchdog.sh"
watchdog 240
for tool in curl promtool; do
    if ! command -v $tool >/dev/null; then
        echo "1..0 # SKIP $tool not installed (./bootstrap installs it: Debian's curl, prometheus)"
        exit 0
    fi
done
echo "1..35"
n=0
check() { n=$((n + 1)); if eval "$1"; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; waiting "the step after check $n ($2)"; }
skip() { n=$((n + 1)); echo "ok $n # SKIP $1"; }

# Starts echoserver with "$@" in the background: sets pid, port (echo) and
# murl (the metrics URL) from what it prints; false if it does not start.
start() {
    "$server" -p 0 "$@" > "$tmp/out" 2> "$tmp/err" &
    pid=$!; pids="$pids $pid"
    for i in $(seq 100); do
        grep -q "^echoserver: metrics on" "$tmp/out" 2>/dev/null && break
        kill -0 $pid 2>/dev/null || return 1
        sleep 0.1
    done
    port=$(sed -n 's/^echoserver: listening on 127\.0\.0\.1:\([0-9]*\)$/\1/p' "$tmp/out" | head -1)
    murl=$(sed -n 's/^echoserver: metrics on \(http:.*\)$/\1/p' "$tmp/out" | head -1)
    [ -n "$port" ] && [ -n "$murl" ]
}

# One line through the echo server; prints what came back.
echo_line() {
    local line="" fd
    exec {fd}<>"/dev/tcp/127.0.0.1/$port" || return 1
    printf '%s\n' "$1" >&$fd
    IFS= read -r -t 10 line <&$fd
    exec {fd}>&-
    printf '%s' "$line"
}

# Holds a connection open (its fd in $held): connects, echoes a line.
hold() { exec {held}<>"/dev/tcp/127.0.0.1/$port"; printf 'x\n' >&$held; read -r -t 10 _ <&$held; }
# Reads fd $1 until EOF (at most 30 s): true unless that time ran out.
eof() { local x rc; while :; do read -r -t 30 -u $1 x; rc=$?; [ $rc = 0 ] || break; done; [ $rc -lt 128 ]; }
# The sum of a metric's samples (every label set) in file $2.
total() { awk -v m="$1" '$1 == m || index($1, m "{") == 1 { s += $2 } END { print s + 0 }' "$2"; }
scrape() { curl -s --max-time 10 "$murl" > "$1"; }

# ---- the figures: what the test sent, counted ---------------------------

t0=$(date +%s)
start -l 127.0.0.1 -t 2 --metrics-listen 127.0.0.1:0
check '[ $? -eq 0 ]' "echoserver --metrics-listen 127.0.0.1:0 starts and prints its metrics URL ($murl)"
# promtool's verdict on file $1: its status, and what it said in $tmp/promtool.
lint() { promtool check metrics < "$1" > "$tmp/promtool" 2>&1; }
said() { sed 's/^/; /' "$tmp/promtool" | tr '\n' ' '; }
scrape "$tmp/m0"
lint "$tmp/m0"; rc=$?
check '[ $rc = 0 ]' "promtool check metrics accepts the output before any traffic$(said)"
sent=0
for i in $(seq 20); do
    line="line $i of twenty"
    [ "$(echo_line "$line")" = "$line" ] && sent=$((sent + ${#line} + 1))
done
scrape "$tmp/m1"
lint "$tmp/m1"; rc=$?
check '[ $rc = 0 ]' "promtool accepts it after traffic$(said)"
check '[ "$(total mtserver_connections_accepted_total "$tmp/m1")" = 20 ]' \
      "20 connections: accepted_total over the workers is 20 ($(total mtserver_connections_accepted_total "$tmp/m1"))"
check '[ "$(total mtserver_received_bytes_total "$tmp/m1")" = $sent ] &&
       [ "$(total mtserver_sent_bytes_total "$tmp/m1")" = $sent ]' \
      "bytes in and out are the $sent bytes echoed"
check '[ $(grep -c "^mtserver_connections_accepted_total{worker=\"[01]\"}" "$tmp/m1") = 2 ] &&
       [ $(grep -c "^mtserver_inbox_wakeups_total{worker=\"[01]\"}" "$tmp/m1") = 2 ]' \
      "per-worker families carry a worker label, one sample per worker"
# The handoff histogram: one observation per connection; cumulative
# buckets that never decrease, +Inf equal to _count.
check '[ "$(total mtserver_handoff_latency_seconds_count "$tmp/m1")" = 20 ]' \
      "the handoff histogram counts one handoff per connection (20)"
odd=$(awk -F'[{}]' '/^mtserver_handoff_latency_seconds_bucket/ {
          split($2, l, ","); w = l[1]; v = $3 + 0
          if (w in last && v < last[w]) print "decreasing at " $0
          last[w] = v; if ($2 ~ /le="\+Inf"/) inf[w] = v }
      /^mtserver_handoff_latency_seconds_count/ { if ($3 + 0 != inf[$2]) print "count != +Inf: " $0 }' "$tmp/m1")
check '[ -z "$odd" ] && grep -q "le=\"+Inf\"" "$tmp/m1" && grep -q "^mtserver_handoff_latency_seconds_sum" "$tmp/m1"' \
      "its buckets are cumulative, +Inf equals _count, and it has _sum${odd:+: $odd}"
# The process's start time is a date: between the clock before the start
# (less two seconds: the boot time it is counted from is whole seconds)
# and now.
started=$(awk '$1 == "process_start_time_seconds" { printf "%d", $2 }' "$tmp/m1")
check 'grep -q "^mtserver_build_info{version=\"[0-9.]*\",dispatch=\"wfcq\",accept=\"handoff\"" "$tmp/m1" &&
       [ -n "$started" ] && [ "$started" -ge $((t0 - 2)) ] && [ "$started" -le "$(date +%s)" ] &&
       grep -q "^mtserver_workers 2$" "$tmp/m1" && grep -q "^process_resident_memory_bytes [1-9]" "$tmp/m1"' \
      "build info (version, dispatch, accept), the process's start time ($started; started at $t0), its memory, the workers"

# ---- bad requests ---------------------------------------------------------

code() { curl -s -o /dev/null -w '%{http_code}' --max-time 10 "$@"; }
check '[ "$(code -X POST "$murl")" = 405 ] && [ "$(code -X DELETE "$murl")" = 405 ] &&
       curl -s -D - -o /dev/null -X PUT "$murl" | grep -qi "^Allow: GET, HEAD"' \
      "other methods get 405 Method Not Allowed, with Allow: GET, HEAD"
check '[ "$(code "${murl%/metrics}/nope")" = 404 ] && [ "$(code "${murl%/metrics}/")" = 200 ]' \
      "another path gets 404; / says where the metrics are (200)"
check '[ "$(code -I "$murl")" = 200 ] && [ -z "$(curl -s -I "$murl" | tr -d "\r" | sed "1,/^$/d")" ] &&
       curl -s -I "$murl" | grep -qi "^Content-Type: text/plain; version=0.0.4"' \
      "HEAD: 200, the exposition format's content type, no body"
check '[ "$(code -X GET -d "x=1" "$murl")" = 413 ]' "a request with a body gets 413"

# ---- the limit and the deadline ------------------------------------------

# Ten slowloris connections: a header that never ends. Eight are held
# (the limit); the ninth and tenth are closed at once, the eight at their
# deadline (10 s). Meanwhile the echo path works.
mport=${murl#http://127.0.0.1:}; mport=${mport%%/*}
slow=()
trap '' PIPE	# a write to a connection the server has closed already fails, that is all
for i in $(seq 10); do
    exec {fd}<>"/dev/tcp/127.0.0.1/$mport"
    printf 'GET /metrics HTTP/1.1\r\nHost: test\r\nX-Slow: ' >&$fd 2>/dev/null
    slow+=($fd)
done
check 'eof ${slow[8]} && eof ${slow[9]}' "connections over the limit of 8 are closed (within 30 s)"
check '[ "$(echo_line "while the metrics are held")" = "while the metrics are held" ]' \
      "the echo path answers while 8 scrape connections are held"
all=0
for i in 0 1 2 3 4 5 6 7; do eof ${slow[$i]} && all=$((all + 1)); done
check '[ $all = 8 ]' "the 8 held ones are closed at their deadline (within 30 s: $all of 8)"
for fd in "${slow[@]}"; do exec {fd}>&-; done
scrape "$tmp/m2"
check 'grep -q "^mtserver_metrics_connections_closed_total{reason=\"limit\"} 2$" "$tmp/m2" &&
       grep -q "^mtserver_metrics_connections_closed_total{reason=\"deadline\"} 8$" "$tmp/m2"' \
      "and counted: 2 over the limit, 8 at the deadline; a scrape works again"

# A keep-alive connection whose answers go out slowly (3000 pipelined
# requests, not read for a while: evhttp waits to write) and which then
# trickles a header: its deadline counts from its last answer, whatever
# evhttp did meanwhile, and cuts it.
exec {fd}<>"/dev/tcp/127.0.0.1/$mport"
for i in $(seq 3000); do printf 'GET /metrics HTTP/1.1\r\nHost: test\r\n\r\n'; done >&$fd
sleep 3			# the sweep runs while the answers wait (it is not a bound)
timeout 3 cat <&$fd > /dev/null	# every answer, then silence
cut=""
for i in $(seq 20); do	# a header byte every 2 s, for at most 40 s
    printf 'G' >&$fd 2>/dev/null || { cut=1; break; }
    read -r -t 2 -u $fd _; [ $? -lt 128 ] && { cut=1; break; }
done
exec {fd}>&-
scrape "$tmp/m2b"
check '[ -n "$cut" ] && grep -q "^mtserver_metrics_connections_closed_total{reason=\"deadline\"} 9$" "$tmp/m2b"' \
      "a connection that was slow to take its answers, then trickles a header, is cut at its deadline (and counted: 9)"

# Under churn (a connection per message), no counter of any scrape is below
# the one before: a Prometheus counter that goes back reads as a reset.
# Scrapes come in batches of 200 on one connection, while the churn lasts.
"${ECHO_BENCH:-./echo-bench}" -p "$port" -m churn -c 8 -t 4 -q > "$tmp/bench" 2>&1 &
bench=$!
back="" scrapes=0
for batch in $(seq 15); do
    args=""
    for i in $(seq 200); do args="$args $murl -o $tmp/s.$i"; done
    curl -s --max-time 30 $args
    scrapes=$((scrapes + 200))
    back=$(awk '/^# TYPE .* counter$/ { c[$3] = 1 } /^#/ { next }
                { n = $1; sub(/\{.*/, "", n); sub(/_(bucket|sum|count)$/, "", n)
                  if (!(n in c) && $1 !~ /_bucket\{/) next
                  if (($1 in v) && $2 + 0 < v[$1] + 0) print $1 " " v[$1] " -> " $2
                  v[$1] = $2 }' $(for i in $(seq 200); do echo "$tmp/s.$i"; done) | head -3)
    [ -n "$back" ] && break
    kill -0 $bench 2>/dev/null || break
done
wait $bench
check '[ -z "$back" ] && [ "$(total mtserver_connections_accepted_total "$tmp/s.200")" -gt 100 ]' \
      "under churn no counter goes back between scrapes ($scrapes scrapes, $(total mtserver_connections_accepted_total "$tmp/s.200") connections)${back:+: $back}"
kill -TERM $pid; wait $pid 2>/dev/null

# ---- a graceful stop -------------------------------------------------------

# Stopping, the server no longer runs the loop the endpoint lives on: a
# scrape is refused at once, not left hanging for the grace period.
start -l 127.0.0.1 -t 1 --grace 20 --metrics-listen 127.0.0.1:0
hold; a=$held
kill -TERM $pid
for i in $(seq 100); do grep -q "stopping" "$tmp/err" && break; sleep 0.1; done
curl -s -o /dev/null --max-time 15 "$murl"; rc=$?
check '[ $rc = 7 ]' "during a graceful stop a scrape is refused at once (curl exit $rc; 7: refused, 28: it hung)"
exec {a}>&-
wait $pid 2>/dev/null

# ---- refusals and pauses --------------------------------------------------

start -l 127.0.0.1 -t 1 --max-conns-per-ip 1 --metrics-listen 127.0.0.1:0
hold; a=$held
exec {b}<>"/dev/tcp/127.0.0.1/$port"
check 'eof $b' "--max-conns-per-ip 1: a second connection from the address is closed"
scrape "$tmp/m4"
check 'grep -q "^mtserver_connections_refused_total{reason=\"per_ip\"} 1$" "$tmp/m4" &&
       grep -q "^mtserver_connections_open{worker=\"0\"} 1$" "$tmp/m4"' \
      "and counted: refused per_ip 1; one connection open"
exec {a}>&- {b}>&-
kill -TERM $pid; wait $pid 2>/dev/null
start -l 127.0.0.1 -t 1 -c 1 --metrics-listen 127.0.0.1:0
hold; a=$held
exec {b}<>"/dev/tcp/127.0.0.1/$port"; printf 'waits\n' >&$b
scrape "$tmp/m5"
check 'grep -q "^mtserver_accept_pauses_total{reason=\"max_conns\"} 1$" "$tmp/m5" &&
       grep -q "^mtserver_accept_paused 1$" "$tmp/m5" &&
       grep -q "^mtserver_connections_accepted_total{worker=\"0\"} 1$" "$tmp/m5"' \
      "-c 1: accepting paused once, and is paused now (the second waits in the backlog); the metrics still answer"
exec {a}>&-
line=""; read -r -t 10 line <&$b
check '[ "$line" = waits ]' "and the waiting one is served once the first closes"
exec {b}>&-
kill -TERM $pid; wait $pid 2>/dev/null

# ---- UDP: datagrams read, answered, dropped by reason ------------------------

start -l 127.0.0.1 -t 1 --udp --udp-max 100 --metrics-listen 127.0.0.1:0
# One to answer, one too large (101 bytes), each one datagram (bash's
# /dev/udp: one write, one datagram; its answer is test_udp's business).
printf hello > "/dev/udp/127.0.0.1/$port"
head -c 101 /dev/zero > "/dev/udp/127.0.0.1/$port"
for i in $(seq 50); do
    scrape "$tmp/m6"
    [ "$(total mtserver_udp_received_total "$tmp/m6")" -ge 2 ] && break
    sleep 0.1
done
check 'grep -q "^mtserver_udp_received_total{worker=\"0\"} 2$" "$tmp/m6" &&
       grep -q "^mtserver_udp_answered_total{worker=\"0\"} 1$" "$tmp/m6" &&
       grep -q "^mtserver_udp_dropped_total{worker=\"0\",reason=\"truncated\"} 1$" "$tmp/m6" &&
       [ "$(total mtserver_udp_dropped_total "$tmp/m6")" = 1 ] && lint "$tmp/m6"' \
      "--udp: received 2, answered 1, dropped truncated 1 (and nothing else); promtool accepts it"
kill -TERM $pid; wait $pid 2>/dev/null

# ---- --proxy-protocol: headers and drops, by version and reason -------------

start -l 127.0.0.1 -t 1 --proxy-protocol --metrics-listen 127.0.0.1:0
# Each header goes in one write, as a balancer sends it (bash's printf
# writes a line at a time: cat writes the file in one).
printf 'PROXY TCP4 192.0.2.1 127.0.0.1 1 7\r\nv1\n' > "$tmp/h1"
printf '\r\n\r\n\0\r\nQUIT\n\x20\x00\x00\x00local\n' > "$tmp/h2"
exec {a}<>"/dev/tcp/127.0.0.1/$port"
cat "$tmp/h1" >&$a; read -r -t 10 _ <&$a
exec {b}<>"/dev/tcp/127.0.0.1/$port"
cat "$tmp/h2" >&$b; read -r -t 10 _ <&$b
exec {c}<>"/dev/tcp/127.0.0.1/$port"; printf 'GET / HTTP/1.0\r\n\r\n' >&$c
check 'eof $c' "--proxy-protocol: a connection without a header is closed"
scrape "$tmp/m6"
check 'grep -q "^mtserver_proxy_headers_total{worker=\"0\",version=\"1\"} 1$" "$tmp/m6" &&
       grep -q "^mtserver_proxy_headers_total{worker=\"0\",version=\"2\"} 1$" "$tmp/m6" &&
       grep -q "^mtserver_proxy_local_total{worker=\"0\"} 1$" "$tmp/m6" &&
       grep -q "^mtserver_proxy_dropped_total{worker=\"0\",reason=\"invalid\"} 1$" "$tmp/m6" &&
       [ "$(total mtserver_proxy_dropped_total "$tmp/m6")" = 1 ] && lint "$tmp/m6"' \
      "and counted: headers v1 1, v2 1 (LOCAL 1), dropped invalid 1 and nothing else; promtool accepts it"
exec {a}>&- {b}>&- {c}>&-
kill -TERM $pid; wait $pid 2>/dev/null

# ---- the address ----------------------------------------------------------

"$server" -p 0 --metrics-listen 9100 > /dev/null 2> "$tmp/err"; rc=$?
check '[ $rc = 2 ] && grep -q "9100.*HOST:PORT" "$tmp/err"' "--metrics-listen without HOST: exit 2, naming it"
"$server" -p 0 --metrics-listen ::1:9100 > /dev/null 2> "$tmp/err"; rc=$?
check '[ $rc = 2 ] && grep -q "::1:9100" "$tmp/err"' "an IPv6 literal without brackets: exit 2, naming it"
"$server" -p 0 --metrics-listen 192.0.2.1:9100 > /dev/null 2> "$tmp/err"; rc=$?
check '[ $rc = 1 ] && grep -q "192.0.2.1:9100.*annot assign" "$tmp/err"' \
      "an address not on this host: exit 1, naming it and why ($(head -c 160 "$tmp/err"))"

# ---- socket activation: a socket named "metrics" ---------------------------

activate=$(command -v systemd-socket-activate)
if [ -z "$activate" ]; then
    skip "systemd-socket-activate not installed"
    skip "systemd-socket-activate not installed"
else
    for try in 1 2 3 4 5 6 7 8 9 10; do
        port=$((20000 + RANDOM % 30000)); mport=$((port + 1))
        "$activate" -l "127.0.0.1:$port" -l "127.0.0.1:$mport" --fdname=echo:metrics \
            "$server" > "$tmp/out" 2> "$tmp/err" &
        pid=$!; pids="$pids $pid"
        for i in $(seq 50); do
            [ "$(grep -c "Listening on" "$tmp/err" 2>/dev/null)" = 2 ] && break 2
            kill -0 $pid 2>/dev/null || break
            sleep 0.1
        done
        kill -9 $pid 2>/dev/null; wait $pid 2>/dev/null
    done
    murl="http://127.0.0.1:$mport/metrics"
    scrape "$tmp/m3"
    check 'promtool check metrics < "$tmp/m3" > /dev/null 2>&1 && grep -q "^mtserver_workers" "$tmp/m3"' \
          "socket activation: the socket named metrics serves the metrics"
    check '[ "$(echo_line activated)" = activated ] &&
           [ "$(grep -c "^echoserver: listening on" "$tmp/out")" = 1 ]' \
          "and the other one the echo (one echo listener)"
    kill -TERM $pid; wait $pid 2>/dev/null
fi

# ---- a real Prometheus ------------------------------------------------------

if ! command -v prometheus >/dev/null; then
    skip "prometheus not installed (./bootstrap installs Debian's prometheus)"
    skip "prometheus not installed"
    skip "prometheus not installed"
    exit 0
fi
# Prometheus is the same whatever the build; the plain build runs this part.
if [ -n "${SANITIZED_BUILD:-}" ]; then
    why="a sanitizer build: the plain build has the real Prometheus scrape"
    skip "$why"; skip "$why"; skip "$why"
    exit 0
fi
start -l 127.0.0.1 -t 2 --metrics-listen 127.0.0.1:0
check '[ $? -eq 0 ]' "echoserver for Prometheus starts"
mtarget=${murl#http://}; mtarget=${mtarget%/metrics}
cat > "$tmp/prometheus.yml" <<EOF
global:
  scrape_interval: 1s
  scrape_timeout: 1s
scrape_configs:
  - job_name: echoserver
    static_configs:
      - targets: ['$mtarget']
EOF
for try in 1 2 3 4 5 6 7 8 9 10; do
    pport=$((20000 + RANDOM % 30000))
    prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/tsdb" \
        --web.listen-address="127.0.0.1:$pport" > "$tmp/prom.log" 2>&1 &
    ppid=$!; pids="$pids $ppid"
    for i in $(seq 300); do
        curl -s --max-time 2 "http://127.0.0.1:$pport/-/ready" 2>/dev/null | grep -qi ready && break 2
        kill -0 $ppid 2>/dev/null || break
        sleep 0.1
    done
    kill -9 $ppid 2>/dev/null; wait $ppid 2>/dev/null
done
# Prints the value of an instant query's first sample ("" if none yet).
query() {
    curl -s --max-time 5 "http://127.0.0.1:$pport/api/v1/query" --data-urlencode "query=$1" |
        sed -n 's/.*"value":\[[0-9.]*,"\([^"]*\)"\].*/\1/p'
}
up=""
for i in $(seq 120); do
    up=$(query 'up{job="echoserver"}'); [ "$up" = 1 ] && break; sleep 0.5
done
check '[ "$up" = 1 ]' "Prometheus scrapes echoserver: up == 1 (within 60 s; Prometheus log: $(tail -c 200 "$tmp/prom.log" | tr '\n' ' '))"
before=$(query 'sum(mtserver_received_bytes_total)'); before=${before:-0}
sent=0
for i in $(seq 10); do
    line="to be counted by Prometheus, $i"
    [ "$(echo_line "$line")" = "$line" ] && sent=$((sent + ${#line} + 1))
done
grew=""
for i in $(seq 120); do
    grew=$(query 'sum(mtserver_received_bytes_total)')
    [ -n "$grew" ] && [ "${grew%.*}" -ge $((${before%.*} + sent)) ] && break; sleep 0.5
done
check '[ -n "$grew" ] && [ "${grew%.*}" -ge $((${before%.*} + sent)) ]' \
      "its query API sees mtserver_received_bytes_total grow by the $sent bytes sent ($before -> $grew)"
kill -TERM $ppid $pid; wait $ppid $pid 2>/dev/null
