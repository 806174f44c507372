#!/bin/sh
# The PROXY parser's fuzz target (tests/fuzz_proxy.c, run by make fuzz)
# replays its seeds: each parsed whole and at every cut, every verdict
# checked against the bytes (it aborts on one that is not). So the target
# builds and holds in every make check, not only when someone fuzzes.
set -u
top=${TOP_SRCDIR:-$(dirname "$0")/..}
bin=${TOP_BUILDDIR:-.}/tests/fuzz_proxy
echo "1..1"
if out=$("$bin" "$top"/tests/fuzz/proxy/* 2>&1); then
    echo "ok 1 - the fuzz target replays its $(ls "$top"/tests/fuzz/proxy | wc -l) seeds: $out"
else
    echo "$out" | sed 's/^/# /'
    echo "not ok 1 - the fuzz target fails on its own seeds"
    exit 1
fi
