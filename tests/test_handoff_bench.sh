#!/bin/sh
# handoff-bench runs every variant in every mode and reports consistent
# figures. Not a timing test: it checks what each variant must do (wake-ups
# per message, system calls counted, nothing lost), never how fast.
set -u
bench=${HANDOFF_BENCH:-./handoff-bench}
out=$(mktemp)
err=$(mktemp)
rep=$(mktemp -d)
trap 'watchdog_off; rm -rf "$out" "$err" "$rep"' EXIT
. "${TOP_SRCDIR:-$(dirname "$0")/..}/tests/watchdog.sh"
watchdog 300
echo "1..43"
n=0
check() { n=$((n + 1)); if eval "$1"; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; waiting "the step after check $n ($2)"; }

"$bench" --seconds 0.05 --warmup 0.01 --repeat 2 --seed 7 --mode idle,burst,rate,many \
    --workers 2 --producers 3 --csv > "$out" 2> "$err"
rc=$?
check '[ $rc -eq 0 ]' "handoff-bench --csv exits 0"
[ $rc -eq 0 ] || sed 's/^/# /' "$err" | grep -v "^# # repetition" | head -30
check 'head -1 "$out" | grep -q "^variant,mode,workers,producers,rep,order,seed,pinned,offered_per_s,messages,seconds,msgs_per_s,sustained,p50_ns,p90_ns,p99_ns,p999_ns,max_ns,lag_p99_ns,lag_max_ns,prod_cpu_ns,cons_cpu_ns,writes_per_msg,reads_per_msg,prod_vcsw_per_msg,prod_ivcsw_per_msg,cons_vcsw_per_msg,cons_ivcsw_per_msg,wouldblock,wouldblock_per_msg,same_cpu,prod_misses_per_msg,cons_misses_per_msg,refused,spin_us,budget,call_ns,round_trips,calls_ahead_max,round_fill,bare_p50_ns$"' \
      "the CSV header has the documented columns"
# Every queue variant (each has its tests/dispatch file) x 4 modes + 2 floors
# x idle, per repetition.
nq=$(ls "${TOP_SRCDIR:-$(dirname "$0")/..}"/tests/dispatch/*.dispatch | wc -l)
rows=$(( (nq * 4 + 2) * 2 ))
check '[ "$(tail -n +2 "$out" | wc -l)" -eq $rows ]' "one row per run: $nq queues x 4 modes + 2 floors in idle, x 2 repetitions ($rows)"
col() { awk -F, -v v="$1" -v m="$2" -v c="$3" 'NR == 1 { for (i = 1; i <= NF; i++) k[$i] = i; next }
        $k["variant"] == v && $k["mode"] == m && $k["rep"] == 1 { print $k[c] }' "$out"; }
# "VARIANT=VALUE" of column NAME for every row of FILE, sorted: by the header's names.
named() { awk -F, -v c="$1" 'NR == 1 { for (i = 1; i <= NF; i++) k[$i] = i; next }
          { print $1 "=" $k[c] }' "$2" | sort | tr "\n" " "; }
check '[ "$(awk -F, "NR > 1 && \$10 > 0" "$out" | wc -l)" -eq $rows ]' "every run handled messages"
# Only the bounded variant refuses (its producers then wait for room).
check '[ "$(awk -F, "NR > 1 && \$1 != \"ring\" && \$34 != 0" "$out" | wc -l)" -eq 0 ] &&
       [ "$(awk -F, "NR > 1 && \$1 == \"ring\" && \$34 ~ /^[0-9]+\$/" "$out" | wc -l)" -eq 8 ]' \
      "the refused column: a count for every ring row, 0 for every other variant"
for v in mutex-pipe mutex-eventfd wfcq-always; do
    check 'awk "BEGIN { exit !($(col $v burst writes_per_msg) == 1) }"' \
          "$v: exactly one wake-up write per message under burst"
done
# How many writes elision saves depends on the scheduler (a consumer that
# keeps up finds the queue empty at every post), so it is a figure of the
# benchmark, not a check; that a post into a non-empty queue writes nothing
# is checked where it is deterministic (test_inbox: 1000 posts into a
# sleeping inbox, one wake-up). Here: never more than one write a message.
for v in wfcq mutex-elide vyukov llist ring; do
    check 'awk "BEGIN { exit !($(col $v burst writes_per_msg) <= 1) }"' \
          "$v under burst: at most one wake-up write per message"
done
check 'awk "BEGIN { exit !($(col floor-eventfd idle writes_per_msg) == 1) }"' \
      "floor-eventfd: one write per message (counted by the producer)"
check 'awk "BEGIN { exit !($(col mutex-pipe idle reads_per_msg) >= 2) }"' \
      "mutex-pipe: a drain reads until the pipe is empty (at least two reads per wake-up)"
check 'awk -F, "NR > 1 && \$3 == 2 && (\$2 != \"many\" || \$4 == 3)" "$out" | wc -l | grep -qx $rows' \
      "every row records its workers, and many mode its producers"
# Outside flood mode a queue's row records its budget, a floor's says '-', and
# the flood columns say '-'.
odd=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) k[$i] = i; next }
    { b = ($1 ~ /^floor-/) ? "-" : "64"
      if ($k["budget"] != b || $k["call_ns"] $k["round_trips"] $k["calls_ahead_max"] \
          $k["round_fill"] $k["bare_p50_ns"] != "-----") print }' "$out")
check '[ -z "$odd" ]' "outside flood mode: the budget (64; '-' for a floor), and '-' in the flood columns"
# The order of each repetition is printed and is a shuffle: the same seed
# gives the same order, another seed another.
o1=$(grep "^# repetition 1, order" "$err")
o2=$("$bench" --seconds 0.01 --warmup 0 --repeat 1 --seed 7 --mode idle --csv 2>&1 >/dev/null | grep "^# repetition 1, order")
o3=$("$bench" --seconds 0.01 --warmup 0 --repeat 1 --seed 8 --mode idle --csv 2>&1 >/dev/null | grep "^# repetition 1, order")
check '[ -n "$o1" ] && [ "$o1" = "$o2" ] && [ "$o1" != "$o3" ]' \
      "the variants' order is a seeded shuffle, printed, reproducible (seed 7: ${o1#*: })"
# spin mode: spin-then-block at each polling time, in idle mode; spin_us is
# set on its rows only.
"$bench" --seconds 0.05 --warmup 0.01 --repeat 1 --mode spin --csv > "$out" 2> "$err"
rc=$?
check '[ $rc -eq 0 ] && [ "$(named spin_us "$out")" = "spin-then-block=0 spin-then-block=1 spin-then-block=10 spin-then-block=100 " ]' \
      "spin mode: one spin-then-block row per polling time (0, 1, 10, 100 us)"
"$bench" --seconds 0.05 --warmup 0.01 --repeat 1 --mode idle --variant wfcq,spin-then-block --spin-us 0 --csv > "$out" 2> "$err"
check '[ "$(named spin_us "$out")" = "spin-then-block=0 wfcq=- " ]' \
      "--spin-us sets spin-then-block's polling time; other rows say '-'"
# With a 100 ms poll and a 20 us gap the worker sleeps only if it lost its
# CPU for 100 ms: (almost) no wake-up write (a count, not a time).
"$bench" --seconds 0.1 --warmup 0.01 --repeat 1 --mode idle --variant spin-then-block --spin-us 100000 --csv > "$out" 2> "$err"
check 'awk -F, "NR == 2 { exit !(\$23 < 0.01) }" "$out"' \
      "spin-then-block polling longer than the gap: (almost) no wake-up writes"

# flood mode: one worker flooded with calls while a byte ping-pongs on the
# same loop. Checked: the rows are whole and their figures consistent, and
# the calls that ran while a byte waited stay within two budgets (inbox.c;
# a few calls of slack for the pinger's relaxed view of the counter): a
# count, which no scheduler can move. How long the round trip took is not
# checked.
"$bench" --mode flood --seconds 0.2 --warmup 0.05 --repeat 1 --seed 7 --csv > "$out" 2> "$err"
rc=$?
[ $rc -eq 0 ] || sed 's/^/# /' "$err" | head -30
check '[ $rc -eq 0 ] && [ "$(awk -F, "NR > 1 && \$2 == \"flood\" && \$1 !~ /^floor-/" "$out" | wc -l)" -eq "$nq" ] &&
       [ "$(tail -n +2 "$out" | wc -l)" -eq "$nq" ]' \
      "flood mode runs every queue variant once ($nq rows), the floors not at all"
bad=$(awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) k[$i] = i; n = NF; next }
    NF != n || $k["messages"] <= 0 || $k["round_trips"] <= 0 || $k["budget"] != 64 ||
    $k["call_ns"] != 2000 || $k["bare_p50_ns"] <= 0 || $k["round_fill"] <= 0 ||
    !($k["p50_ns"] > 0 && $k["p50_ns"] <= $k["p99_ns"] && $k["p99_ns"] <= $k["p999_ns"] &&
      $k["p999_ns"] <= $k["max_ns"]) { print $1 }' "$out")
check '[ -z "$bad" ]' \
      "flood rows are well formed: every column, calls and round trips counted, ordered quantiles, budget 64, 2000 ns calls${bad:+ (not: $bad)}"
# Every row of FILE counts its calls ahead, at most LIMIT.
ahead_within() { awk -F, -v lim="$1" 'NR == 1 { for (i = 1; i <= NF; i++) k[$i] = i; next }
    $k["calls_ahead_max"] !~ /^[0-9]+$/ || $k["calls_ahead_max"] > lim + 0 { bad = 1 }
    END { exit bad }' "$2"; }
ahead=$(named calls_ahead_max "$out")
check 'ahead_within $((2 * 64 + 4)) "$out"' \
      "flood: at most two budgets of calls (128, + 4) ran while a byte waited, every variant: $ahead"
# Another budget: the bound follows it, and the table says so.
"$bench" --mode flood --variant wfcq,ring --budget 16 --call-ns 1000 --seconds 0.2 --warmup 0.05 \
    --repeat 1 --csv-file "$out" > "$rep/flood.txt" 2> "$err"
rc=$?
ahead=$(named calls_ahead_max "$out")
check '[ $rc -eq 0 ] && [ "$(named budget "$out")" = "ring=16 wfcq=16 " ] &&
       [ "$(named call_ns "$out")" = "ring=1000 wfcq=1000 " ] &&
       ahead_within $((2 * 16 + 4)) "$out"' \
      "flood --budget 16: at most two budgets (32, + 4) ran ahead of a byte: $ahead"
check '[ "$(grep -c "^\(wfcq\|ring\) .* 32 " "$rep/flood.txt")" -eq 2 ] && grep -q "^flood mode: .*budget 16" "$rep/flood.txt"' \
      "flood's table: a row per variant, with the bound (2 x budget) beside the calls ahead"
rm -f "$rep/flood.txt"

# The version, from config.h as configure wrote it.
version=$(sed -n 's/^#define PACKAGE_VERSION "\(.*\)"$/\1/p' "${TOP_BUILDDIR:-.}/config.h")
"$bench" --version > "$out" 2> "$err"
rc=$?
check '[ $rc -eq 0 ] && [ -n "$version" ] && grep -q "^handoff-bench (echoserver) $version " "$out" && [ ! -s "$err" ]' \
      "--version prints handoff-bench (echoserver) $version and exits 0"
# The man page describes every option --help lists, and no other: the
# options of --help's option lines, and of the man page's tags (.TP).
opts() { grep -o -- '--[a-z][a-z-]*' | sort -u | tr '\n' ' '; }
man_opts=$(awk 'tag { print; tag = 0 } /^\.TP/ { tag = 1 }' \
    "${TOP_SRCDIR:-$(dirname "$0")/..}/doc/handoff-bench.1" | sed 's/\\-/-/g; s/\\f[BIR]//g' | opts)
help_opts=$("$bench" --help | grep -E '^ {2,6}(-[A-Za-z], )?--' | opts)
[ "$man_opts" = "$help_opts" ] || echo "# the man page's: $man_opts"
check '[ -n "$help_opts" ] && [ "$man_opts" = "$help_opts" ]' \
      "the man page describes the options --help lists: $help_opts"

# The tables a person reads: unpinned, two repetitions, idle, burst and
# sweep (which plans every rate and takes off those a variant does not
# reach). Checked: counts and text, never a time.
"$bench" --mode idle,burst,sweep --variant wfcq,mutex-eventfd,floor-eventfd --repeat 2 \
    --seconds 0.05 --warmup 0.01 --csv-file "$rep/t.csv" > "$rep/t.txt" 2> "$rep/t.err"
rc=$?
[ $rc -eq 0 ] || sed 's/^/# /' "$rep/t.err" | head -30
runs=$(tail -n +2 "$rep/t.csv" | wc -l)
# Each "  run K of N" line: K counts up from 1, N never below K and never
# growing, and the last is N of N, one line per row of the CSV.
progress=$(awk '/^  run [0-9]+ of [0-9]+, rep [0-9]+ of 2: / {
        k = $2 + 0; n = $4 + 0
        if (k != ++c || n < k || (c > 1 && n > last)) bad = 1
        last = n }
    END { print (bad ? "bad" : c " of " last) }' "$rep/t.err")
check '[ $rc -eq 0 ] && [ "$progress" = "$runs of $runs" ]' \
      "each run says \"run K of N\" on stderr, counting up to N of N, a line per CSV row ($progress; $runs rows)"
wide_lines=$(awk 'length > 100' "$rep/t.txt" | wc -l)
check '[ $rc -eq 0 ] && [ -s "$rep/t.txt" ] && [ "$wide_lines" -eq 0 ]' "by default no line of the tables is wider than 100 columns"
# Each table (a block after a blank line that has a header row) ends with
# its warnings: this run was not pinned.
tables=$(grep -c "^idle mode: \|^burst mode: \|^sweep: " "$rep/t.txt")
warned=$(awk '/^$/ { if (t && w) n++; t = w = 0; next }
    /^(idle mode|burst mode|sweep): / { t = 1 }
    /^warning: not pinned/ { w = 1 }
    END { if (t && w) n++; print n + 0 }' "$rep/t.txt")
check '[ "$tables" -eq 3 ] && [ "$warned" -eq 3 ]' "under each of the 3 tables, a warning line: not pinned ($warned)"
# The legends explain every abbreviation the default tables use.
legend=$(sed -n '/^legend:/,/^$/p' "$rep/t.txt")
missing=""
for a in msgs/s p50 p99 prod cons wr/msg "x wfcq" "x not sustained" "top x wfcq"; do
    case $legend in *"$a"*) ;; *) missing="$missing '$a'" ;; esac
done
check '[ "$(grep -c "^legend:" "$rep/t.txt")" -eq 2 ] && [ -z "$missing" ]' \
      "a legend under the mode tables and one under the sweep, naming every abbreviation${missing:+ (not:$missing)}"

# --wide: every column; --pin: no warning of it; --max-spread 1 marks every
# ratio whose repetitions differ at all: wfcq's over itself (1 in each)
# never, mutex-eventfd's msgs/s over wfcq's (two different runs) always.
"$bench" --mode burst --variant wfcq,mutex-eventfd --repeat 2 --seconds 0.05 --warmup 0.01 \
    --pin --wide --max-spread 1 > "$rep/w.txt" 2> "$err"
rc=$?
check '[ $rc -eq 0 ] && grep -q "^variant .*lag99 ns .*rd/msg .*cs/msg .*wb .*same .*p50 x wfcq .*msgs/s x wfcq$" "$rep/w.txt" &&
       [ "$(awk "length > 100" "$rep/w.txt" | wc -l)" -ge 3 ] && grep -q "^lag99 how late" "$rep/w.txt"' \
      "--wide prints every column (lag99, rd/msg, cs/msg, wb, same, both ratios) and their legend"
marks=$(awk '/^burst mode:/ { on = 1; next } on && /^warning|^legend|^$/ { on = 0 }
    on { n += gsub(/\]!/, "") } END { print n + 0 }' "$rep/w.txt")
check '! grep -q "^warning: not pinned" "$rep/w.txt" &&
       grep -q "^mutex-eventfd .*\]!$" "$rep/w.txt" && grep -q "^wfcq .*1\.00 \[1\.00, 1\.00\]  *1\.00 \[1\.00, 1\.00\]$" "$rep/w.txt" &&
       grep -q "^warning: $marks ratios\{0,1\} marked ! spread over more than 1x" "$rep/w.txt"' \
      "--max-spread 1: a spread ratio marked !, an equal one not, a warning that counts them ($marks); pinned: no warning of it"
"$bench" --mode burst --variant wfcq,mutex-eventfd --repeat 2 --seconds 0.05 --warmup 0.01 \
    --max-spread 1000000000 > "$rep/w.txt" 2> "$err"
check '! grep -q "!" "$rep/w.txt" && ! grep -q "marked" "$rep/w.txt" && grep -q "^warning: not pinned" "$rep/w.txt"' \
      "--max-spread 1e9: no ratio marked, no warning of it; unpinned: the warning"
rm -f "$rep/t.txt" "$rep/t.err" "$rep/t.csv" "$rep/w.txt"

"$bench" --variant floor-eventfd --mode burst > /dev/null 2> "$err"
rc=$?
check '[ $rc -eq 2 ] && grep -q "idle mode only" "$err"' "a mode the floors cannot run is rejected (exit 2), naming why"
"$bench" --variant wfcq,nosuch > /dev/null 2> "$err"
rc=$?
check '[ $rc -eq 2 ] && grep -q "nosuch" "$err"' "an unknown variant is rejected (exit 2), naming it"

# make handoff-report's script, in its quick form: it runs the standard set
# and writes the CSV, the report with the two-by-two, and the plots. Its
# standard error is not a terminal: a progress line per repetition.
HANDOFF_BENCH=$bench sh "${TOP_SRCDIR:-$(dirname "$0")/..}/bench/handoff-report" --quick --out "$rep" \
    > /dev/null 2> "$err"
rc=$?
[ $rc -eq 0 ] || sed 's/^/# /' "$err" | head -30
check '[ $rc -eq 0 ] && [ "$(tail -n +2 "$rep/handoff.csv" 2>/dev/null | wc -l)" -gt 40 ]' \
      "bench/handoff-report --quick runs the standard set into one CSV"
check '[ "$(grep -c "^| elision\|^| lock-free\|^| together\|^| interaction" "$rep/handoff-report.md")" -eq 6 ] &&
       grep -q "^Machine: .*CPUs online" "$rep/handoff-report.md" &&
       [ "$(grep -c "^| [0-9]* us |" "$rep/handoff-report.md")" -eq 4 ]' \
      "the report has the two-by-two table (6 rows), spin-then-block's four polling times, and the machine"
check '[ "$(sed -n "/^### A socket on a flooded loop/,/^Each row/p" "$rep/handoff-report.md" | grep -c "^| [a-z-]* | [0-9]")" -eq "$nq" ] &&
       [ "$(awk -F, "\$2 == \"flood\"" "$rep/handoff.csv" | wc -l)" -eq $((nq * 2)) ]' \
      "the report's flood run: every queue variant, both repetitions, in the CSV and in its table"
if command -v gnuplot >/dev/null 2>&1; then
    check '[ -s "$rep/handoff-sweep-p50.png" ] && [ -s "$rep/handoff-factorial.png" ] && [ -s "$rep/handoff-spin.png" ]' \
          "the report draws the latency-against-load curve, the factorial bars and spin-then-block's trade-off"
else
    n=$((n + 1)); echo "ok $n # SKIP gnuplot is not installed"
fi
steps=$(sed -n 's/^handoff-report: run \([1-4]\) of 4, repetition \([12]\) of 2\($\|, about .* left$\)/\1.\2/p' "$err" | tr '\n' ' ')
check '[ "$steps" = "1.1 1.2 2.1 2.2 3.1 3.2 4.1 4.2 " ]' \
      "handoff-report's progress off a terminal: \"run R of 4, repetition K of 2\", every one in order ($steps)"

# make plot redraws the plots from the CSV alone: in a directory that holds
# only a copy of the report's CSV, it writes the plots and runs nothing (a
# benchmark would write handoff-1.csv, and take minutes: 60 s bound it).
if [ -f "${TOP_BUILDDIR:-.}/Makefile" ]; then
    mkdir "$rep/plot" && cp "$rep/handoff.csv" "$rep/plot/"
    env -u MAKEFLAGS -u MFLAGS -u MAKELEVEL timeout 60 make -s -C "${TOP_BUILDDIR:-.}" plot \
        BENCH_RESULTS="$rep/plot" > "$out" 2> "$err"
    rc=$?
    [ $rc -eq 0 ] || sed 's/^/# /' "$err" | head -20
    drawn=yes
    command -v gnuplot >/dev/null 2>&1 && { [ -s "$rep/plot/handoff-sweep-p50.png" ] &&
        [ -s "$rep/plot/handoff-factorial.png" ] && [ -s "$rep/plot/handoff-spin.png" ] || drawn=no; }
    check '[ $rc -eq 0 ] && [ $drawn = yes ] && [ ! -e "$rep/plot/handoff-1.csv" ] &&
           cmp -s "$rep/handoff.csv" "$rep/plot/handoff.csv"' \
          "make plot draws the plots from the last CSV and runs no benchmark"
else
    n=$((n + 1)); echo "ok $n # SKIP no Makefile in ${TOP_BUILDDIR:-.}"
fi
