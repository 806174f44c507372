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
        # The sleep must not hold the test's output open (the TAP driver
        # reads it to its end), and it goes with its watchdog.
        sleep "$_wd_secs" > /dev/null 2>&1 &
        _wd_sleep=$!
        trap 'kill $_wd_sleep 2>/dev/null; exit 0' TERM
        wait $_wd_sleep
        echo "not ok - watchdog: no result for $_wd_secs s; waiting in: $(cat "$_wd_state" 2>/dev/null)"
        echo "Bail out! the watchdog ended the test"
        # The test's children (servers, benchmarks), but not this one,
        # found before the test ends and they go to init; then the test.
        self=$(exec sh -c 'echo $PPID')
        kids=$(pgrep -P "$_wd_main")
        kill -TERM "$_wd_main" 2>/dev/null
        for c in $kids; do
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
