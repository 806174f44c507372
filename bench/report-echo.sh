#!/bin/sh
# report-echo.sh CSV OUTDIR - medians of bench/run's echo.csv:
#   OUTDIR/echo-table.md            every load and server, ratio to the floor server
#   OUTDIR/echo-throughput.png      64-byte ping-pong msgs/s against connections
#   OUTDIR/echo-latency.png         64-byte ping-pong, 1 connection: latency percentiles
set -eu
csv=${1:?usage: report-echo.sh CSV OUTDIR}
out=${2:?usage: report-echo.sh CSV OUTDIR}
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# Medians per server, threads, mode, connections, size.
awk -F, 'NR > 1 { k = $1 "," $2 "," $3 "," $4 "," $5; keys[k] = 1; n[k]++
                  for (c = 7; c <= 13; c++) v[k, c, n[k]] = $c }
    function med(k, c,    m, i, j, a, t) {
        m = n[k]; for (i = 1; i <= m; i++) a[i] = v[k, c, i]
        for (i = 2; i <= m; i++) for (j = i; j > 1 && a[j-1] + 0 > a[j] + 0; j--) { t = a[j]; a[j] = a[j-1]; a[j-1] = t }
        return m % 2 ? a[(m + 1) / 2] : (a[m / 2] + a[m / 2 + 1]) / 2 }
    END { for (k in keys) { printf "%s", k; for (c = 7; c <= 13; c++) printf ",%s", med(k, c); printf "\n" } }' \
    "$csv" | sort -t, -k3,3 -k5,5n -k4,4n -k2,2n -k1,1 > "$tmp/med.csv"

# The table, with ratios to the floor server at the same threads and load.
awk -F, '{ k = $2 "," $3 "," $4 "," $5; if ($1 == "floor") { fm[k] = $6; fb[k] = $7; fp[k] = $8 } row[NR] = $0 }
    END {
        print "| server | threads | load | msgs/s | MiB/s | p50 us | p99 us | p99.9 us | errors | x floor msgs/s | x floor MiB/s | x floor p50 |"
        print "| --- | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |"
        for (i = 1; i <= NR; i++) {
            split(row[i], f, ","); k = f[2] "," f[3] "," f[4] "," f[5]
            printf "| %s | %s | %s %s x %s B | %.0f | %.1f | %.1f | %.1f | %.1f | %d | %.2f | %.2f | %.2f |\n",
                f[1], f[2], f[3], f[4], f[5], f[6], f[7], f[8], f[9], f[10], f[12],
                fm[k] ? f[6] / fm[k] : 0, fb[k] ? f[7] / fb[k] : 0, fp[k] ? f[8] / fp[k] : 0
        }
    }' "$tmp/med.csv" > "$out/echo-table.md"

command -v gnuplot >/dev/null 2>&1 || { echo "report-echo: no gnuplot; table only"; exit 0; }
maxt=$(awk -F, '{ if ($2 > m) m = $2 } END { print m }' "$tmp/med.csv")
servers="floor $(cut -d, -f1 "$tmp/med.csv" | sort -u | grep -vx floor | tr '\n' ' ')"
tput="" lat=""
for s in $servers; do
    awk -F, -v s="$s" -v t="$maxt" '$1 == s && $2 == t && $3 == "pingpong" && $5 == 64 { print $4, $6 }' \
        "$tmp/med.csv" > "$tmp/tput-$s.dat"
    awk -F, -v s="$s" '$1 == s && $2 == 1 && $3 == "pingpong" && $4 == 1 && $5 == 64 {
        print 0, $8; print 1, $9; print 2, $10; print 3, $11 }' "$tmp/med.csv" > "$tmp/lat-$s.dat"
    title=$s; [ "$s" = floor ] || title="echoserver $s"
    [ -s "$tmp/tput-$s.dat" ] && tput="$tput \"$tmp/tput-$s.dat\" using 1:2 with linespoints lw 2 title \"$title\","
    [ -s "$tmp/lat-$s.dat" ] && lat="$lat \"$tmp/lat-$s.dat\" using 1:2 with linespoints lw 2 title \"$title\","
done
gnuplot <<GP
set terminal pngcairo size 800,500 font "sans,10" noenhanced
set output "$out/echo-throughput.png"
set title "64-byte ping-pong, $maxt threads: throughput against connections (medians)"
set logscale x
set xlabel "connections"
set ylabel "messages / s"
set yrange [0:*]
set grid
set key top left
plot ${tput%,}
set output "$out/echo-latency.png"
set title "64-byte ping-pong, 1 connection, 1 thread: latency (medians)"
unset logscale x
set logscale y
set xlabel ""
set ylabel "microseconds (log scale)"
set yrange [*:*]
set xtics ("p50" 0, "p99" 1, "p99.9" 2, "max" 3)
set xrange [-0.2:3.2]
plot ${lat%,}
GP
echo "report-echo: wrote $out/echo-table.md and $out/echo-*.png"
