#!/bin/sh
# plot-handoff.sh CSV OUTDIR - turns handoff-bench --csv output into
#   OUTDIR/handoff-latency-idle.png   latency percentiles per variant, idle mode
#   OUTDIR/handoff-latency-burst.png  the same under burst load
#   OUTDIR/handoff-latency-rate.png   the same at a fixed offered rate
#   OUTDIR/handoff-throughput.png     burst throughput per variant
#   OUTDIR/handoff-table.md           the medians as a markdown table, with ratios
# Uses the rows whose run column is "median" (handoff-bench --repeat > 1),
# or every row if there are none.
set -eu
csv=${1:?usage: plot-handoff.sh CSV OUTDIR}
out=${2:?usage: plot-handoff.sh CSV OUTDIR}
mkdir -p "$out"
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Keep the median rows (columns by name, so extra columns do not matter).
awk -F, -v OFS=, '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; print; next }
    { line[++n] = $0; run[n] = $col["run"]; if ($col["run"] == "median") m = 1 }
    END { for (i = 1; i <= n; i++) if (!m || run[i] == "median") print line[i] }' "$csv" > "$tmp/med.csv"

# One data file per mode: variant p50 p90 p99 p999 max
for mode in idle burst rate; do
    awk -F, -v mode="$mode" '
        NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
        $col["mode"] == mode { print $col["variant"], $col["p50_ns"], $col["p90_ns"],
                               $col["p99_ns"], $col["p999_ns"], $col["max_ns"] }' \
        "$tmp/med.csv" > "$tmp/$mode.dat"
    [ -s "$tmp/$mode.dat" ] || continue
    gnuplot <<GP
set terminal pngcairo size 800,500 font "sans,10"
set output "$out/handoff-latency-$mode.png"
set title "handoff latency, $mode mode (medians)"
set logscale y
set ylabel "ns (log scale)"
set xtics ("p50" 0, "p90" 1, "p99" 2, "p99.9" 3, "max" 4)
set xrange [-0.2:4.2]
set key top left
set grid ytics
n = system("wc -l < $tmp/$mode.dat") + 0
plot for [i=0:n-1] "< awk 'NR==" . (i+1) . " { for (k = 2; k <= 6; k++) print k - 2, \$k, \$1 }' $tmp/$mode.dat" \
         using 1:2 title system("awk 'NR==" . (i+1) . " { print \$1 }' $tmp/$mode.dat") \
         with linespoints lw 2 pt i+4
GP
done

awk -F, 'NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i; next }
         $col["mode"] == "burst" { print $col["variant"], $col["msgs_per_s"] / 1e6 }' \
    "$tmp/med.csv" > "$tmp/tput.dat"
if [ -s "$tmp/tput.dat" ]; then
    gnuplot <<GP
set terminal pngcairo size 700,450 font "sans,10"
set output "$out/handoff-throughput.png"
set title "burst throughput (medians)"
set ylabel "million messages / s"
set style fill solid 0.6
set boxwidth 0.6
set yrange [0:*]
set grid ytics
plot "$tmp/tput.dat" using 0:2:xtic(1) with boxes notitle, \
     "" using 0:2:(sprintf("%.2f", \$2)) with labels offset 0,0.8 notitle
GP
fi

# The table, with the ratios the targets are stated in.
awk -F, '
    NR == 1 { for (i = 1; i <= NF; i++) col[$i] = i;
              print "| variant | mode | msgs/s | p50 ns | p90 ns | p99 ns | p99.9 ns | max ns | wake-ups/msg |";
              print "| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"; next }
    { printf "| %s | %s | %.0f | %d | %d | %d | %d | %d | %.4f |\n", $col["variant"], $col["mode"],
             $col["msgs_per_s"], $col["p50_ns"], $col["p90_ns"], $col["p99_ns"], $col["p999_ns"],
             $col["max_ns"], $col["wakeups_per_msg"]
      key = $col["variant"] "/" $col["mode"]; tput[key] = $col["msgs_per_s"]; p50[key] = $col["p50_ns"] }
    END {
      print ""
      if (tput["mutex-pipe/burst"] > 0)
          printf "- burst throughput, wfcq / mutex-pipe: %.2fx\n", tput["wfcq/burst"] / tput["mutex-pipe/burst"]
      if (tput["mutex-eventfd/burst"] > 0)
          printf "- burst throughput, wfcq / mutex-eventfd: %.2fx\n", tput["wfcq/burst"] / tput["mutex-eventfd/burst"]
      if (p50["floor-eventfd/idle"] > 0)
          printf "- idle p50, wfcq / floor-eventfd: %.3fx\n", p50["wfcq/idle"] / p50["floor-eventfd/idle"]
    }' "$tmp/med.csv" > "$out/handoff-table.md"
echo "plot-handoff: wrote $out/handoff-*.png and $out/handoff-table.md"
