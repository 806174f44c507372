#!/bin/sh
# Sizes a reader can hold (doc/ARCHITECTURE.md, "Sizes"): no source file of
# the library or its programs (src/, examples/) over 500 lines, and no
# function over 80. A function is counted from its opening brace at the
# start of a line to the closing one (the style every file here follows:
# STYLE.md); a brace that opens a function at the end of its signature
# line would not be seen, so that is refused too.
set -u
top=${TOP_SRCDIR:-$(dirname "$0")/..}
max_file=500 max_func=80
n=0; failed=0
say() { n=$((n + 1)); echo "$1 $n - $2"; }

files=$(cd "$top" && find src examples -name '*.[ch]' -type f | sort)
echo "1..3"

long=$(cd "$top" && for f in $files; do
    l=$(wc -l < "$f"); [ "$l" -gt $max_file ] && echo "$f: $l lines"
done)
if [ -z "$long" ]; then say ok "no file in src/ or examples/ over $max_file lines ($(echo "$files" | wc -w) files)"
else echo "$long" | sed 's/^/# /'; say "not ok" "a file in src/ or examples/ is over $max_file lines"; failed=1; fi

funcs=$(cd "$top" && awk '
    FNR == 1 { start = 0 }
    /^\{/ { start = FNR; name = prev }
    /^\}/ && start { print FNR - start + 1, FILENAME ":" start, name; start = 0 }
    !/^[{}]/ { prev = $0 }' $files)
long=$(echo "$funcs" | awk -v m=$max_func '$1 > m')
if [ -z "$long" ]; then say ok "no function over $max_func lines ($(echo "$funcs" | wc -l) functions; the longest $(echo "$funcs" | sort -rn | awk 'NR == 1 { print $1 }'))"
else echo "$long" | sed 's/^/# /'; say "not ok" "a function is over $max_func lines"; failed=1; fi

# A function whose brace ends its signature line would escape the count.
kr=$(cd "$top" && grep -nE '^[A-Za-z_].*\)[[:space:]]*\{[[:space:]]*$' $files)
if [ -z "$kr" ]; then say ok "every function's body opens at the start of a line (so each was counted)"
else echo "$kr" | sed 's/^/# /'; say "not ok" "a function opens its body on its signature line"; failed=1; fi
exit $failed
