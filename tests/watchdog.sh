# tests/watchdog.sh - the shell tests' watchdog, as tests/tap.h's for the C
# tests: sourced by each tests/test_*.sh.
#
#   watchdog SECONDS   arm it (five times longer in sanitizer builds): past
#                      that, it prints "not ok" naming what the test was
#                      waiting in, ends the test and its children, and the
#                      test fails well before make check's own time-out
#   waiting TEXT       name the wait that follows, for that message
#   watchdog_off       disarm it (call it from the script's EXIT trap)
_wd_state= _wd_pid=

watchdog() {
    _wd_secs=$1
    [ -n "${SANITIZED_BUILD:-}" ] && _wd_secs=$((_wd_secs * 5))
    _wd_state=$(mktemp)
    echo "the first check" > "$_wd_state"
    _wd_main=$$
    (
        trap 'exit 0' TERM
        sleep "$_wd_secs" &
        wait $!
        echo "not ok - watchdog: no result for $_wd_secs s; waiting in: $(cat "$_wd_state" 2>/dev/null)"
        echo "Bail out! the watchdog ended the test"
        kill -TERM "$_wd_main" 2>/dev/null
        # The test's children (servers, benchmarks), but not this one.
        self=$(exec sh -c 'echo $PPID')
        for c in $(pgrep -P "$_wd_main"); do
            [ "$c" = "$self" ] || kill -KILL "$c" 2>/dev/null
        done
    ) &
    _wd_pid=$!
}

waiting() {
    [ -n "$_wd_state" ] && echo "$*" > "$_wd_state"
}

watchdog_off() {
    [ -n "$_wd_pid" ] && kill -TERM "$_wd_pid" 2>/dev/null
    [ -n "$_wd_state" ] && rm -f "$_wd_state"
    _wd_pid= _wd_state=
}
