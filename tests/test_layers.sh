#!/bin/sh
# The core's layers point one way (doc/ARCHITECTURE.md): base <- handoff <-
# executor <- server. A file may include headers of its own layer or of a
# lower one, and call functions defined in its own layer or a lower one,
# never a higher one; and no two files of the core call each other in a
# circle. Includes are read from the sources; calls from the built objects
# (nm: what a file's object needs, and which object defines it).
#
# And doc/ARCHITECTURE.md's "call graph as built" is the one built. Run
# with --graph to print the file-level call graph instead, as the doc
# writes it (grouped by caller, wrapped at 84 columns).
set -u
src=${TOP_SRCDIR:-.}/src/core
obj=${TOP_BUILDDIR:-.}/src/core
layers="base handoff executor server"

rank() {
    i=0
    for l in $layers; do
        [ "$l" = "$1" ] && { echo $i; return; }
        i=$((i + 1))
    done
    echo 99
}

# The layer of a header, by where it lives; mtserver.h is the server's.
header_layer() {
    [ "$1" = mtserver.h ] && { echo server; return; }
    for l in $layers; do
        [ -f "$src/$l/$1" ] && { echo "$l"; return; }
    done
    echo none	# a system or libevent header
}

# The object of a source file: libtool keeps a non-PIC copy beside the
# source and a PIC one in .libs; either has the same symbols.
object_of() {
    d=$obj/$1; b=$2
    for o in "$d/$b.o" "$d/.libs/$b.o"; do
        [ -f "$o" ] && { echo "$o"; return; }
    done
}

n=0; failed=0
say() { n=$((n + 1)); echo "$1 $n - $2"; }

tmp=$(mktemp -d)
trap 'watchdog_off; rm -rf "$tmp"' EXIT
. "${TOP_SRCDIR:-$(dirname "$0")/..}/tests/watchdog.sh"
watchdog 60
: > "$tmp/defs"; : > "$tmp/needs"; missing=0
for l in $layers; do
    for c in "$src/$l"/*.c; do
        [ -f "$c" ] || continue
        f=$(basename "$c" .c)
        o=$(object_of "$l" "$f")
        if [ -z "$o" ]; then missing=$((missing + 1)); continue; fi
        nm --defined-only -g "$o" | awk -v f="$l/$f" '$2 ~ /^[TDBR]$/ { print $3, f }' >> "$tmp/defs"
        nm -u "$o" | awk -v f="$l/$f" '{ print $2, f }' >> "$tmp/needs"
    done
done

# "a -> b" lines, sorted, as "a -> b, c, ...", one caller each, wrapped.
group() {
    awk 'function flush() {
            if (from == "") return
            line = sprintf("%-17s -> ", from)
            for (i = 1; i <= k; i++) {
                item = to[i] (i < k ? "," : "")
                if (i > 1 && length(line) + 1 + length(item) > 84) {
                    print line; line = sprintf("%21s", "") item
                } else line = line (i > 1 ? " " : "") item
            }
            print line
        }
        $1 != from { flush(); from = $1; k = 0 }
        { to[++k] = $3 }
        END { flush() }'
}

# The doc's graph is the default build's: calls to the fault points
# (base/fault), compiled in only with --enable-fault-injection, left out.
if [ "${1:-}" = --graph ]; then
    sort -k1,1 "$tmp/defs" > "$tmp/d"; sort -k1,1 "$tmp/needs" > "$tmp/u"
    join "$tmp/u" "$tmp/d" | awk '$2 != $3 && $3 != "base/fault" { print $2, "->", $3 }' |
        sort -u | group
    exit 0
fi

echo "1..4"

# 1. Includes.
bad=$(for l in $layers; do
    r=$(rank "$l")
    for f in "$src/$l"/*.[ch]; do
        [ -f "$f" ] || continue
        sed -n 's/^#include "\([^"]*\)".*/\1/p' "$f" | while read -r h; do
            hl=$(header_layer "$(basename "$h")")
            [ "$hl" = none ] && continue
            [ "$(rank "$hl")" -gt "$r" ] && echo "$l/$(basename "$f") includes $h ($hl)"
        done
    done
done)
if [ -z "$bad" ]; then say ok "no file includes a header of a higher layer"
else echo "$bad" | sed 's/^/# /'; say "not ok" "a file includes a header of a higher layer"; failed=1; fi

# 2. Calls, from the objects.
if [ "$missing" -gt 0 ] || [ ! -s "$tmp/defs" ]; then
    say "not ok" "the core's objects are built ($missing missing)"; failed=1
    say "not ok" "no circle among the core's files (no objects)"; exit 1
fi
sort -k1,1 "$tmp/defs" > "$tmp/d"; sort -k1,1 "$tmp/needs" > "$tmp/u"
join "$tmp/u" "$tmp/d" | awk '$2 != $3 { print $1, $2, $3 }' | sort -u > "$tmp/calls"
bad=$(while read -r sym from to; do
    [ "$(rank "${to%%/*}")" -gt "$(rank "${from%%/*}")" ] && echo "$from calls $sym of $to"
done < "$tmp/calls")
if [ -z "$bad" ]; then say ok "no file calls a function of a higher layer ($(wc -l < "$tmp/calls") cross-file references checked)"
else echo "$bad" | sed 's/^/# /'; say "not ok" "a file calls a function of a higher layer"; failed=1; fi

# 3. No circle: tsort fails on a loop and names its members.
awk '{ print $2, $3 }' "$tmp/calls" | sort -u > "$tmp/edges"
if tsort "$tmp/edges" > /dev/null 2> "$tmp/loop"; then
    say ok "no circle among the core's files ($(wc -l < "$tmp/edges") file-to-file calls)"
else
    sed 's/^/# /' "$tmp/loop"; say "not ok" "the core's files call each other in a circle"; failed=1
fi

# 4. The doc's call graph is this one.
doc=${TOP_SRCDIR:-.}/doc/ARCHITECTURE.md
awk '$3 != "base/fault" { print $2, "->", $3 }' "$tmp/calls" | sort -u | group > "$tmp/graph"
awk '/^The call graph as built/ { f = 1 } f && /^```$/ { c++; next } f && c == 1' "$doc" \
    > "$tmp/docgraph"
if diff "$tmp/docgraph" "$tmp/graph" > "$tmp/diff"; then
    say ok "doc/ARCHITECTURE.md's call graph is the one built ($(wc -l < "$tmp/graph") callers)"
else
    sed 's/^/# /' "$tmp/diff"
    say "not ok" "doc/ARCHITECTURE.md's call graph differs from the built one (< doc, > built; sh tests/test_layers.sh --graph prints it)"
    failed=1
fi
exit $failed
