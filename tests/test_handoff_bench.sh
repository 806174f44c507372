#!/bin/sh
# handoff-bench runs every variant in every mode and reports consistent
# figures. Not a timing test: it checks what each variant must do (wake-ups
# per message, nothing lost), never how fast.
set -u
bench=${HANDOFF_BENCH:-./handoff-bench}
out=$(mktemp)
trap 'rm -f "$out"' EXIT
echo "1..8"
n=0
check() { n=$((n + 1)); if eval "$1"; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; }

"$bench" --seconds 0.05 --repeat 1 --csv > "$out" 2>/dev/null
rc=$?
check '[ $rc -eq 0 ]' "handoff-bench --csv exits 0"
check 'head -1 "$out" | grep -q "^variant,mode,workers,messages,seconds,msgs_per_s,p50_ns,p90_ns,p99_ns,p999_ns,max_ns,wakeups_per_msg"' \
      "the CSV header has the documented columns"
check '[ "$(tail -n +2 "$out" | wc -l)" -eq 10 ]' "one row per variant and mode (floor-eventfd: idle only)"
col() { awk -F, -v v="$1" -v m="$2" -v c="$3" 'NR == 1 { for (i = 1; i <= NF; i++) k[$i] = i; next }
        $k["variant"] == v && $k["mode"] == m { print $k[c] }' "$out"; }
check '[ "$(awk -F, "NR > 1 && \$4 > 0" "$out" | wc -l)" -eq 10 ]' "every run handled messages"
check 'awk "BEGIN { exit !($(col mutex-pipe burst wakeups_per_msg) == 1) }"' \
      "mutex-pipe: exactly one wake-up per message"
check 'awk "BEGIN { exit !($(col mutex-eventfd rate wakeups_per_msg) == 1) }"' \
      "mutex-eventfd: exactly one wake-up per message"
check 'awk "BEGIN { exit !($(col wfcq burst wakeups_per_msg) < 0.5) }"' \
      "wfcq under burst: notify elision saves most wake-ups"
"$bench" --variant floor-eventfd --mode burst > /dev/null 2>&1
rc=$?
check '[ $rc -eq 2 ]' "a mode floor-eventfd cannot run is rejected (exit 2)"
