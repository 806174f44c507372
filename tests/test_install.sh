#!/bin/sh
# The library from outside: install into a temporary root, then build
# tests/install_example.c and examples/chatserver.c with only
# `pkg-config --cflags --libs mtserver` and run them (the chat server under
# tests/test_chat). Also: the shared library exports only the mts_ API.
set -u
top=${TOP_BUILDDIR:?TOP_BUILDDIR is not set (make check sets it)}
src=${TOP_SRCDIR:?}
root=$(mktemp -d)
trap 'watchdog_off; rm -rf "$root"' EXIT
. "${TOP_SRCDIR:-$(dirname "$0")/..}/tests/watchdog.sh"
watchdog 300
echo "1..9"
n=0
report() { n=$((n + 1)); if [ "$1" -eq 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; waiting "the step after check $n ($2)"; }

MAKEFLAGS= make -s -C "$top" install DESTDIR="$root" > "$root/install.log" 2>&1
report $? "make install DESTDIR=... succeeds"
pc=$(find "$root" -name mtserver.pc | head -1)
hdr=$(find "$root" -name mtserver.h | head -1)
so=$(find "$root" -name 'libmtserver.so.*.*' | head -1)
[ -n "$pc" ] && [ -n "$hdr" ] && [ -n "$so" ] && [ -n "$(find "$root" -name libmtserver.a)" ]
report $? "it installs mtserver.pc, mtserver.h, and the shared and static library"

bad=$(nm -D --defined-only "$so" 2>/dev/null | awk '{ print $3 }' | grep -v '^mts_' | grep -v '^_' || true)
[ -n "$so" ] && [ -z "$bad" ]
report $? "the shared library exports only mts_ symbols${bad:+ (also: $bad)}"

export PKG_CONFIG_PATH="$(dirname "$pc")" PKG_CONFIG_SYSROOT_DIR="$root"
# Same compiler and sanitizer flags as the build: a sanitized library needs
# a sanitized program to load it.
${EXAMPLE_CC:-cc} ${EXAMPLE_CFLAGS:-} -o "$root/example" "$src/tests/install_example.c" \
    $(pkg-config --cflags mtserver) $(pkg-config --libs mtserver) -lpthread > "$root/cc.log" 2>&1
rc=$?
[ $rc -eq 0 ] || sed 's/^/# /' "$root/cc.log"
report $rc "a program builds against the installed library with pkg-config alone"

LD_LIBRARY_PATH="$(dirname "$so")" "$root/example" > "$root/run.log" 2>&1
rc=$?
[ $rc -eq 0 ] || sed 's/^/# /' "$root/run.log"
report $rc "and runs: its own protocol, mts_post_all, mts_stop"

${EXAMPLE_CC:-cc} ${EXAMPLE_CFLAGS:-} -o "$root/chatserver" "$src/examples/chatserver.c" "$src/examples/chat_client.c" "$src/examples/chat_room.c" "$src/examples/chat_log.c" \
    $(pkg-config --cflags mtserver) $(pkg-config --libs mtserver) > "$root/cc2.log" 2>&1
rc=$?
[ $rc -eq 0 ] || sed 's/^/# /' "$root/cc2.log"
report $rc "examples/chatserver builds against the installed library with pkg-config alone"

# The basic checks of tests/test_chat (broadcast, a stalled reader, the
# stop): what a build from outside must get right; the rest is test_chat's.
LD_LIBRARY_PATH="$(dirname "$so")" CHATSERVER="$root/chatserver" CHAT_BASIC=1 \
    "$top/tests/test_chat" > "$root/chat.log" 2>&1
rc=$?
[ $rc -eq 0 ] || grep -v '^ok' "$root/chat.log" | sed 's/^/# /'
report $rc "and passes the basic checks of tests/test_chat as built from outside"

# The reference a user of the installed library reads: mtserver(3) and
# API.md, each naming every function mtserver.h declares.
man3=$(find "$root" -path '*/man3/mtserver.3' | head -1)
api=$(find "$root" -path '*/doc/echoserver/API.md' | head -1)
[ -n "$man3" ] && [ -n "$api" ] && [ -n "$(find "$root" -path '*/doc/echoserver/HANDOFF.md')" ]
report $? "it installs mtserver(3), and API.md and HANDOFF.md in the documentation directory"
missing=""
for f in $(sed -n 's/^[a-z].*[ *]\(mts_[a-z_]*\)(.*/\1/p' "$src/src/mtserver.h" | sort -u); do
    grep -qw "$f" "$src/doc/mtserver.3" || missing="$missing $f(3)"
    grep -qw "$f" "$src/doc/API.md" || missing="$missing $f(API.md)"
done
[ -z "$missing" ]
report $? "mtserver(3) and API.md name every function of mtserver.h${missing:+ (not:$missing)}"
