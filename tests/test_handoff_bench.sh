#!/bin/sh
# handoff-bench runs every variant in every mode and reports consistent
# figures. Not a timing test: it checks what each variant must do (wake-ups
# per message, system calls counted, nothing lost), never how fast.
set -u
bench=${HANDOFF_BENCH:-./handoff-bench}
out=$(mktemp)
err=$(mktemp)
rep=$(mktemp -d)
trap 'rm -rf "$out" "$err" "$rep"' EXIT
echo "1..25"
n=0
check() { n=$((n + 1)); if eval "$1"; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

"$bench" --seconds 0.05 --warmup 0.01 --repeat 2 --seed 7 --mode idle,burst,rate,many \
    --workers 2 --producers 3 --csv > "$out" 2> "$err"
rc=$?
check '[ $rc -eq 0 ]' "handoff-bench --csv exits 0"
[ $rc -eq 0 ] || sed 's/^/# /' "$err" | grep -v "^# # repetition" | head -30
check 'head -1 "$out" | grep -q "^variant,mode,workers,producers,rep,order,seed,pinned,offered_per_s,messages,seconds,msgs_per_s,sustained,p50_ns,p90_ns,p99_ns,p999_ns,max_ns,lag_p99_ns,lag_max_ns,prod_cpu_ns,cons_cpu_ns,writes_per_msg,reads_per_msg,prod_vcsw_per_msg,prod_ivcsw_per_msg,cons_vcsw_per_msg,cons_ivcsw_per_msg,wouldblock,wouldblock_per_msg,same_cpu,prod_misses_per_msg,cons_misses_per_msg,refused,spin_us$"' \
      "the CSV header has the documented columns"
# Every queue variant (each has its tests/dispatch file) x 4 modes + 2 floors
# x idle, per repetition.
nq=$(ls "${TOP_SRCDIR:-$(dirname "$0")/..}"/tests/dispatch/*.dispatch | wc -l)
rows=$(( (nq * 4 + 2) * 2 ))
check '[ "$(tail -n +2 "$out" | wc -l)" -eq $rows ]' "one row per run: $nq queues x 4 modes + 2 floors in idle, x 2 repetitions ($rows)"
col() { awk -F, -v v="$1" -v m="$2" -v c="$3" 'NR == 1 { for (i = 1; i <= NF; i++) k[$i] = i; next }
        $k["variant"] == v && $k["mode"] == m && $k["rep"] == 1 { print $k[c] }' "$out"; }
check '[ "$(awk -F, "NR > 1 && \$10 > 0" "$out" | wc -l)" -eq $rows ]' "every run handled messages"
# Only the bounded variant refuses (its producers then wait for room).
check '[ "$(awk -F, "NR > 1 && \$1 != \"ring\" && \$34 != 0" "$out" | wc -l)" -eq 0 ] &&
       [ "$(awk -F, "NR > 1 && \$1 == \"ring\" && \$34 ~ /^[0-9]+\$/" "$out" | wc -l)" -eq 8 ]' \
      "the refused column: a count for every ring row, 0 for every other variant"
for v in mutex-pipe mutex-eventfd wfcq-always; do
    check 'awk "BEGIN { exit !($(col $v burst writes_per_msg) == 1) }"' \
          "$v: exactly one wake-up write per message under burst"
done
for v in wfcq mutex-elide vyukov llist ring; do
    check 'awk "BEGIN { exit !($(col $v burst writes_per_msg) < 0.5) }"' \
          "$v under burst: notify elision saves most wake-up writes"
done
check 'awk "BEGIN { exit !($(col floor-eventfd idle writes_per_msg) == 1) }"' \
      "floor-eventfd: one write per message (counted by the producer)"
check 'awk "BEGIN { exit !($(col mutex-pipe idle reads_per_msg) >= 2) }"' \
      "mutex-pipe: a drain reads until the pipe is empty (at least two reads per wake-up)"
check 'awk -F, "NR > 1 && \$3 == 2 && (\$2 != \"many\" || \$4 == 3)" "$out" | wc -l | grep -qx $rows' \
      "every row records its workers, and many mode its producers"
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
check '[ $rc -eq 0 ] && [ "$(awk -F, "NR > 1 && \$1 == \"spin-then-block\" && \$2 == \"spin\" { print \$NF }" "$out" | sort -n | tr "\n" " ")" = "0 1 10 100 " ]' \
      "spin mode: one spin-then-block row per polling time (0, 1, 10, 100 us)"
"$bench" --seconds 0.05 --warmup 0.01 --repeat 1 --mode idle --variant wfcq,spin-then-block --spin-us 0 --csv > "$out" 2> "$err"
check '[ "$(awk -F, "NR > 1 { print \$1 \"=\" \$NF }" "$out" | sort | tr "\n" " ")" = "spin-then-block=0 wfcq=- " ]' \
      "--spin-us sets spin-then-block's polling time; other rows say '-'"
# With a 100 us poll and a 20 us gap the worker never sleeps: no wake-up
# write at all (a count, not a time).
"$bench" --seconds 0.1 --warmup 0.01 --repeat 1 --mode idle --variant spin-then-block --spin-us 100000 --csv > "$out" 2> "$err"
check 'awk -F, "NR == 2 { exit !(\$23 < 0.01) }" "$out"' \
      "spin-then-block polling longer than the gap: (almost) no wake-up writes"

"$bench" --variant floor-eventfd --mode burst > /dev/null 2> "$err"
rc=$?
check '[ $rc -eq 2 ] && grep -q "idle mode only" "$err"' "a mode the floors cannot run is rejected (exit 2), naming why"
"$bench" --variant wfcq,nosuch > /dev/null 2> "$err"
rc=$?
check '[ $rc -eq 2 ] && grep -q "nosuch" "$err"' "an unknown variant is rejected (exit 2), naming it"

# make handoff-report's script, in its quick form: it runs the standard set
# and writes the CSV, the report with the two-by-two, and the plots.
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
if command -v gnuplot >/dev/null 2>&1; then
    check '[ -s "$rep/handoff-sweep-p50.png" ] && [ -s "$rep/handoff-factorial.png" ] && [ -s "$rep/handoff-spin.png" ]' \
          "the report draws the latency-against-load curve, the factorial bars and spin-then-block's trade-off"
else
    n=$((n + 1)); echo "ok $n # SKIP gnuplot is not installed"
fi
