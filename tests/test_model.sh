#!/bin/sh
# The Promela model of the inbox (model/handoff.pml), checked with spin: the
# protocol as built must verify, for safety (assertions when the system
# rests, and the socket's bound) and for liveness (acceptance cycles under
# weak fairness, with assertions off), for every variant the model has; and
# each broken twin must be refuted, for the property it breaks.
# Skipped when spin is not installed (./bootstrap installs it), and in
# sanitizer builds (the model does not depend on how the code is built; the
# plain build runs it).
set -u
model=${MODEL:-$(dirname "$0")/../model/handoff.pml}
if ! command -v spin >/dev/null 2>&1; then
    echo "1..0 # SKIP spin is not installed"
    exit 0
fi
if [ -n "${SANITIZED_BUILD:-}" ]; then
    echo "1..0 # SKIP the model is checked in the plain build"
    exit 0
fi
work=$(mktemp -d)
trap 'watchdog_off; rm -rf "$work"' EXIT
. "${TOP_SRCDIR:-$(dirname "$0")/..}/tests/watchdog.sh"
watchdog 600
cp "$model" "$work/handoff.pml" || { echo "Bail out! no model at $model"; exit 1; }
cd "$work" || exit 1
cc=${CC:-cc}
echo "1..55"
n=0
report() {
    n=$((n + 1))
    if [ "$1" = yes ]; then
        echo "ok $n - $2"
    else
        echo "not ok $n - $2"
        grep -E 'error|violated|cycle|depth|states, stored' pan.out | sed 's/^/# /' | head -10
    fi
}

# check SPIN-DEFINES PAN-COMPILE-FLAGS PAN-RUN-FLAGS: output in pan.out
check() {
    rm -f pan pan.* handoff.pml.trail
    spin $1 -a handoff.pml > pan.out 2>&1 &&
        $cc -O1 -w $2 -o pan pan.c >> pan.out 2>&1 &&
        ./pan -m1000000 $3 >> pan.out 2>&1
    return 0
}
safety() { check "$1" "-DNOCLAIM" ""; }
liveness() { check "$1" "-DNFAIR=3" "-a -f -A -N $2"; }
# A complete search with no error of any kind.
holds() {
    grep -q "errors: 0" pan.out && ! grep -Eq "violated|acceptance cycle|too small|error:" pan.out &&
        echo yes || echo no
}
# Refuted by this assertion (a fixed string of spin's own output).
refuted_by() { grep -Eq "errors: [1-9]" pan.out && grep -qF "assertion violated ($1)" pan.out && echo yes || echo no; }
refuted_cycle() { grep -Eq "errors: [1-9]" pan.out && grep -q "acceptance cycle" pan.out && echo yes || echo no; }

# The protocol as built. Defaults: 2 producers x 2 items, budget 1, one
# write that may fail and one retrier, a socket that asks twice.
safety ""
report "$(holds)" "wfcq: at rest all handled, signals sent == owed; a socket waits <= 2 rounds"
safety "-DNPROD=3 -DNITEMS=2 -DFAILS=0 -DNRETRY=0 -DNREQ=0"
report "$(holds)" "wfcq: the same, 3 producers x 2 items"
safety "-DNRETRY=2 -DFAILS=2"
report "$(holds)" "wfcq: two retriers, two failed writes: each owed signal sent exactly once"
safety "-DBUDGET=2 -DNITEMS=3 -DFAILS=0 -DNRETRY=0"
report "$(holds)" "wfcq, budget 2 (rounds that stop at NULL or WOULDBLOCK part-way), 2 x 3"
safety "-DMUTEX"
report "$(holds)" "mutex-eventfd: safety"
safety "-DMUTEX -DCAP=1 -DNRETRY=2 -DFAILS=2"
report "$(holds)" "mutex-pipe holding one signal (a full pipe drops it), two retriers: safety"
safety "-DMUTEX -DELIDE"
report "$(holds)" "mutex-elide (signal on empty, take the whole list): safety"
safety "-DMUTEX -DELIDE -DBUDGET=2 -DNITEMS=3 -DFAILS=0 -DNRETRY=0"
report "$(holds)" "mutex-elide, budget 2, 2 x 3: safety"
safety "-DALWAYS"
report "$(holds)" "wfcq-always (every post signals, no re-arm after its WOULDBLOCK): safety"
safety "-DALWAYS -DBUDGET=2 -DNITEMS=3 -DFAILS=0 -DNRETRY=0"
report "$(holds)" "wfcq-always, budget 2, 2 x 3: safety"
safety "-DVYUKOV"
report "$(holds)" "vyukov (signal on finding the stub; no re-arm stuck on the stub, re-arm stuck on a message): safety"
safety "-DVYUKOV -DBUDGET=2 -DNITEMS=3 -DFAILS=0 -DNRETRY=0"
report "$(holds)" "vyukov, budget 2, 2 x 3: safety"
safety "-DLLIST"
report "$(holds)" "llist (signal on empty, take the stack, reverse, re-arm on an unwritten link): safety"
safety "-DLLIST -DBUDGET=2 -DNITEMS=3 -DFAILS=0 -DNRETRY=0"
report "$(holds)" "llist, budget 2, 2 x 3: safety"
safety "-DSPIN"
report "$(holds)" "spin-then-block (the sleeping handshake, x86 store buffers, both fences): safety"
safety "-DSPIN -DBUDGET=2 -DFAILS=0 -DNRETRY=0"
report "$(holds)" "spin-then-block, budget 2: safety"
safety "-DRING"
report "$(holds)" "ring of 2 (refused producers try again; the round takes at most the count, re-arms while it stays above 0): safety"
safety "-DRING -DBUDGET=2"
report "$(holds)" "ring, budget 2 (no budget re-arm to hide a missing count re-arm): safety"
safety "-DRING -DRCAP=1 -DNPROD=3 -DNITEMS=1 -DNRETRY=2 -DFAILS=2"
report "$(holds)" "ring of 1, 3 producers, two retriers, two failed writes: safety"
safety "-DRING -DBUDGET=2 -DBROKEN_DRAIN_AFTER"
report "$(holds)" "ring with the drain between C2 and C4: still holds (C4 re-arms for what was counted meanwhile)"
liveness "" all_handled
report "$(holds)" "wfcq: every item is eventually handled (weak fairness, acceptance cycles)"
liveness "-DMUTEX -DELIDE" all_handled
report "$(holds)" "mutex-elide: every item is eventually handled"
liveness "-DALWAYS" all_handled
report "$(holds)" "wfcq-always: every item is eventually handled"
liveness "-DVYUKOV" all_handled
report "$(holds)" "vyukov: every item is eventually handled"
liveness "-DLLIST" all_handled
report "$(holds)" "llist: every item is eventually handled"
liveness "-DSPIN" all_handled
report "$(holds)" "spin-then-block: every item is eventually handled"
liveness "-DMUTEX" all_handled
report "$(holds)" "mutex-eventfd: every item is eventually handled"
liveness "-DMUTEX -DCAP=1" all_handled
report "$(holds)" "mutex-pipe: every item is eventually handled"
liveness "-DRING -DBUDGET=2" all_handled
report "$(holds)" "ring: every item is eventually handled"
liveness "-DFLOOD -DNPROD=1 -DFAILS=0 -DNRETRY=0" sock_served
report "$(holds)" "wfcq under an endless flood: the socket is always served again"
liveness "-DFLOOD -DMUTEX -DNPROD=1 -DFAILS=0 -DNRETRY=0" sock_served
report "$(holds)" "mutex under an endless flood: the socket is always served again"
liveness "-DRING -DFLOOD -DNPROD=1 -DFAILS=0 -DNRETRY=0" sock_served
report "$(holds)" "ring under an endless flood: the socket is always served again"

# The broken twins.
safety "-DBROKEN_DRAIN_AFTER"
report "$(refuted_by 'handled==(2*2)')" "drain after the splice: refuted (a wake-up is lost)"
# A counterexample is a real schedule: replay this one (reported last).
spin -DBROKEN_DRAIN_AFTER -t -p handoff.pml > trail.out 2>&1
grep -q "assertion violated" trail.out && replayed=yes || replayed=no
liveness "-DBROKEN_DRAIN_AFTER" all_handled
report "$(refuted_cycle)" "drain after the splice: the liveness check fails too"
safety "-DBROKEN_DRAIN_AFTER -DMUTEX -DELIDE"
report "$(refuted_by 'handled==(2*2)')" "mutex-elide with the drain after the take: refuted too (elision, not the queue, needs the order)"
safety "-DALWAYS -DBROKEN_ALWAYS_ELIDE"
report "$(refuted_by 'handled==(2*2)')" "wfcq-always's no-re-arm rule with eliding posts: refuted (the rule needs every post to signal)"
safety "-DBROKEN_NO_BATCH_REARM"
report "$(refuted_by 'handled==(2*2)')" "no re-arm after a WOULDBLOCK inside the batch: refuted"
liveness "-DBROKEN_NO_BATCH_REARM" all_handled
report "$(refuted_cycle)" "no re-arm after a WOULDBLOCK inside the batch: the liveness check fails too"
safety "-DVYUKOV -DBROKEN_VYUKOV_NO_REARM"
report "$(refuted_by 'handled==(2*2)')" "vyukov with no re-arm when stuck on a message node: refuted"
safety "-DVYUKOV -DBROKEN_VYUKOV_KEEP_LAST"
report "$(refuted_by 'handled==(2*2)')" "vyukov without the stub push (the last node waits for a successor): refuted"
safety "-DLLIST -DBROKEN_LLIST_NO_REARM"
report "$(refuted_by 'handled==(2*2)')" "llist with no re-arm at an unwritten link: refuted"
safety "-DSPIN -DBROKEN_SPIN_NO_FENCE_P -DBROKEN_SPIN_NO_FENCE_C"
report "$(refuted_by 'handled==(2*2)')" "spin-then-block without its fences: refuted (the store-buffering reordering loses a wake-up)"
safety "-DSPIN -DBROKEN_SPIN_NO_FENCE_P"
report "$(refuted_by 'handled==(2*2)')" "spin-then-block without the producer's fence: refuted"
safety "-DSPIN -DBROKEN_SPIN_NO_FENCE_C"
report "$(refuted_by 'handled==(2*2)')" "spin-then-block without the consumer's fence: refuted"
safety "-DSPIN -DBROKEN_SPIN_NO_RECHECK"
report "$(refuted_by 'handled==(2*2)')" "spin-then-block without the last look after the flag is set: refuted"
safety "-DBROKEN_NO_YIELD"
report "$(refuted_by 'bypass<=2')" "a round that re-arms with event_active (no poll between rounds): refuted"
liveness "-DBROKEN_NO_YIELD -DFLOOD -DNPROD=1 -DFAILS=0 -DNRETRY=0" sock_served
report "$(refuted_cycle)" "the same under an endless flood: the socket is never served again"
safety "-DBROKEN_NO_DEL"
report "$(refuted_by 'bypass<=2')" "a round that leaves an expired timer active: two rounds in a pass, refuted"
safety "-DBROKEN_COUNTED -DMUTEX -DCAP=1"
report "$(refuted_by 'handled==(2*2)')" "mutex consumer popping one per drained signal, pipe that can be full: refuted"
safety "-DBROKEN_COUNTED -DMUTEX"
report "$(holds)" "... the same consumer holds when no signal is dropped: the drop is what pop-until-empty allows"
safety "-DBROKEN_RETRY -DMUTEX -DNRETRY=2 -DFAILS=2"
report "$(refuted_by 'sent==must')" "the old retry (send, then pay with a weak CAS): refuted (a signal sent twice)"
safety "-DRING -DBUDGET=2 -DBROKEN_NO_END_REARM"
report "$(refuted_by 'handled==(2*2)')" "ring without the re-arm for what is still counted: refuted"
liveness "-DRING -DBUDGET=2 -DBROKEN_NO_END_REARM" all_handled
report "$(refuted_cycle)" "ring without that re-arm: the liveness check fails too"
safety "-DRING -DBROKEN_DRAIN_LAST"
report "$(refuted_by 'handled==(2*2)')" "ring with the drain after the round's last look at the count: refuted"

report "$replayed" "the drain-after-splice counterexample trail replays to the violated assertion"
