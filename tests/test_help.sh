#!/bin/sh
# --help, the man page and the README agree on echoserver's options: every
# long option --help names is in doc/echoserver.1 and in README.md's
# options, and every one the man page documents is in --help. And --help
# says what a user needs before reading further: socket activation, the
# exit statuses, the -l limit.
set -u
server=${ECHOSERVER:-./echoserver}
src=${TOP_SRCDIR:-$(dirname "$0")/..}
. "$src/tests/watchdog.sh"
trap 'watchdog_off' EXIT
watchdog 60
echo "1..5"
n=0
check() { n=$((n + 1)); if eval "$1"; then echo "ok $n - $2"; else echo "not ok $n - $2"; fi; waiting "the step after check $n ($2)"; }

help=$("$server" --help)
longs() { grep -o -- '--[a-z][a-z-]*' | sort -u; }
in_help=$(printf '%s\n' "$help" | longs)
in_man=$(sed -n '/^\.SH OPTIONS/,/^\.SH [^O]/p' "$src/doc/echoserver.1" |
         sed 's/\\-/-/g; s/\\f[BIRP]//g' | longs)
in_readme=$(sed -n '/^## Options/,/^## /p' "$src/README.md" | longs)
missing() { for o in $1; do printf '%s\n' "$2" | grep -qx -- "$o" || printf ' %s' "$o"; done; }
m1=$(missing "$in_help" "$in_man")
check '[ -n "$in_help" ] && [ -z "$m1" ]' "every option --help names is in the man page${m1:+ (not:$m1)}"
m2=$(missing "$in_man" "$in_help")
check '[ -z "$m2" ]' "every option the man page names is in --help${m2:+ (not:$m2)}"
m3=$(missing "$in_help" "$in_readme")
check '[ -z "$m3" ]' "every option --help names is in README.md's options${m3:+ (not:$m3)}"
check 'printf "%s" "$help" | grep -q "^Socket activation: .*LISTEN_FDS" &&
       printf "%s" "$help" | grep -q "^Exit status: 0 " && printf "%s" "$help" | grep -q "2 for invalid arguments"' \
      "--help tells of socket activation and the exit statuses"
check 'printf "%s" "$help" | grep -q "up$" && printf "%s" "$help" | grep -q "to 16" &&
       printf "%s" "$help" | grep -q "SIGTERM/SIGINT/SIGHUP"' \
      "--help gives the -l limit (16) and every signal --grace applies to"
