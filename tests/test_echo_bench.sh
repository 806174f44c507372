#!/bin/sh
# echo-bench drives echoserver in every mode without an error, and catches
# a server that corrupts a byte or hangs up early (exit status 1).
set -u
eb=${ECHO_BENCH:-./echo-bench}
srv=${ECHOSERVER:-./echoserver}
bad=${BAD_ECHO:-./tests/bad_echo}
tmp=$(mktemp -d)
pids=""
trap 'watchdog_off; for p in $pids; do kill $p 2>/dev/null; done; rm -rf "$tmp"' EXIT
. "${TOP_SRCDIR:-$(dirname "$0")/..}/tests/watchdog.sh"
watchdog 300
echo "1..18"
n=0
report() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; waiting "the step after check $n ($2)"; }

# start OUTFILE CMD...: sets $port
start() {
    out=$1; shift
    "$@" > "$out" 2>/dev/null &
    pids="$pids $!"
    port=""
    for _ in $(seq 100); do
        port=$(sed -n 's/.*listening on 127\.0\.0\.1:\([0-9]*\).*/\1/p' "$out")
        [ -n "$port" ] && return 0
        sleep 0.05
    done
    echo "Bail out! $* did not start"; exit 1
}

start "$tmp/srv.out" "$srv" -q -l 127.0.0.1 -p 0 -t 2
for load in "pingpong -c 50 -T 2" "pipeline -c 10 -d 8" "stream -c 4 -s 65536" "churn -c 4" \
            "pingpong -c 20 -r 2000" "pingpong -c 30 -s 1 -S 20000" "idle -c 100"; do
    "$eb" -q -p "$port" -t 0.5 -m $load > "$tmp/eb.out" 2>&1
    rc=$?
    grep -q "errors 0, connect errors 0, replies missing 0" "$tmp/eb.out" || rc=1
    report $rc "echo-bench -m $load: every byte verified, exit 0"
done

# Random sizes are reported as such, in the summary and in the CSV.
"$eb" -q -p "$port" -t 0.3 -m pingpong -c 4 -s 1 -S 20000 > "$tmp/eb.out" 2>&1
grep -q "messages of 1 to 20000 bytes (random)" "$tmp/eb.out" && ! grep -q "1-byte" "$tmp/eb.out"
report $? "echo-bench -s 1 -S 20000 says: messages of 1 to 20000 bytes (random)"
"$eb" -q -p "$port" -t 0.3 -m pingpong -c 4 -s 1 -S 20000 --csv > "$tmp/eb.csv" 2>&1
awk -F, 'NR == 1 { nh = NF; for (i = 1; i <= NF; i++) c[$i] = i }
         NR == 2 { ok = c["size"] && c["size_max"] && $c["size"] == 1 &&
                        $c["size_max"] == 20000 && NF == nh }
         END { exit !ok }' "$tmp/eb.csv"
report $? "--csv: size and size_max columns (1 and 20000), a field for every header name"

# The version, from config.h as configure wrote it; nothing else happens.
version=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' "${TOP_BUILDDIR:-.}/config.h")
"$eb" --version > "$tmp/eb.out" 2>&1
rc=$?
[ $rc -eq 0 ] && [ -n "$version" ] && [ "$(cat "$tmp/eb.out")" = "echo-bench (echoserver) $version" ]
report $? "--version prints echo-bench (echoserver) $version and exits 0"

# The man page describes every option --help lists, and no other (the
# options of --help's option lines, and of the man page's tags), and its
# CSV columns are the header --csv prints.
man=${TOP_SRCDIR:-$(dirname "$0")/..}/doc/echo-bench.1
opts() { grep -o -- '--[a-z][a-z-]*' | sort -u | tr '\n' ' '; }
man_opts=$(awk 'tag { print; tag = 0 } /^\.TP/ { tag = 1 }' "$man" | sed 's/\\-/-/g; s/\\f[BIR]//g' | opts)
help_opts=$("$eb" --help | grep -E '^ {2,6}(-[A-Za-z], )?--' | opts)
[ "$man_opts" = "$help_opts" ] || echo "# the man page's: $man_opts"
[ -n "$help_opts" ] && [ "$man_opts" = "$help_opts" ]
report $? "the man page describes the options --help lists: $help_opts"
man_cols=$(sed -n '/^\.SH OUTPUT/,/^\.SH/{/^\.TP/{n;s/^\.B //;s/\\-/-/g;p}}' "$man" | tr -d ' ' | tr '\n' ',')
csv_cols=$(head -1 "$tmp/eb.csv")
[ "$man_cols" = "$csv_cols," ]
report $? "the man page names the CSV's columns in order: $csv_cols"

# UDP: echoserver --udp and the UDP floor, every answer checked; at a
# modest rate (and in a closed loop, 16 in flight) nothing is lost.
start "$tmp/udp.out" "$srv" -q -l 127.0.0.1 -p 0 -t 2 --udp --udp-rate 0
for load in "-c 4 -d 4 -s 64" "-c 4 -r 500 -s 1400"; do
    "$eb" --udp -q -p "$port" -t 0.3 $load > "$tmp/eb.out" 2>&1
    rc=$?
    grep -q "lost 0 (0.000%), errors 0" "$tmp/eb.out" && grep -q "answered" "$tmp/eb.out" || rc=1
    report $rc "echo-bench --udp $load against echoserver --udp: every answer verified, none lost"
done
start "$tmp/floor.out" "${FLOOR_SERVER:-./bench/floor-server}" -u -l 127.0.0.1 -p 0 -t 2
"$eb" --udp -q -p "$port" -t 0.3 -c 4 -d 8 > "$tmp/eb.out" 2>&1
rc=$?
grep -q "errors 0" "$tmp/eb.out" || rc=1
report $rc "echo-bench --udp against the UDP floor (floor-server -u): exit 0"
start "$tmp/udpflip.out" "$bad" udpflip
"$eb" --udp -q -p "$port" -t 0.3 -c 1 -d 1 -s 100 > "$tmp/eb.out" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q "errors [1-9]" "$tmp/eb.out"
report $? "a UDP echo that changes a byte of every tenth datagram: reported, exit 1"

start "$tmp/flip.out" "$bad" flip
"$eb" -q -p "$port" -t 0.5 -s 1000 > "$tmp/eb.out" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q "errors 1" "$tmp/eb.out"
report $? "a server that changes one byte: echo-bench reports the error, exit 1"

start "$tmp/hang.out" "$bad" hangup
"$eb" -q -p "$port" -t 0.5 -s 1000 > "$tmp/eb.out" 2>&1
rc=$?
[ $rc -eq 1 ] && grep -q "errors 1" "$tmp/eb.out"
report $? "a server that hangs up early: echo-bench reports the error, exit 1"
