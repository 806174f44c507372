#!/bin/sh
# The Promela model of the inbox (model/handoff.pml), checked with spin: the
# protocol as built must verify, for safety (assertions when the system
# rests, and the socket's bound) and for liveness (acceptance cycles under
# weak fairness, with assertions off), for every variant the model has; and
# each broken twin must be refuted, for the property it breaks.
# Skipped when spin is not installed (./bootstrap installs it), and in
# sanitizer builds (the model does not depend on how the code is built; the
# plain build runs it).
#
# Two sets: the first argument, or else MODEL_SET, names one (quick or
# full); quick by default. Each check prints "# checking N/PLAN: ..." (what,
# and the spin, cc and pan commands) before it starts.
#
#   quick, what make check runs (15 checks, about 20 s): for every variant
#     the model has, the refutation of its classic broken twin: wfcq's drain
#     after the splice (and the replay of its counterexample), mutex-elide's
#     drain after the take, wfcq-always's no-re-arm rule with eliding posts,
#     vyukov's and llist's missing re-arms, spin-then-block without its
#     fences, mutex-pipe's consumer that pops one message per signal
#     (memcached's), ring without its end-of-round re-arm, and for
#     mutex-eventfd's build the old retry of the wake-up debt; and the
#     safety search as built, with the default parameters, of the five
#     variants whose search is small: wfcq, mutex-eventfd, mutex-elide,
#     wfcq-always and ring.
#   full, what make check-model and CI run (all 55, about 6.5 minutes): also
#     the safety of vyukov, llist, mutex-pipe (its check has two retriers
#     and two failed writes) and spin-then-block; the larger parameters (3
#     producers, two retriers, budget 2, a ring of 1); every liveness check
#     (the floods included); and the other twins.
#
# Why: the model does not depend on the C code, so make check, run after
# every change to the code, needs only a witness that the model still
# verifies and still catches each variant's bug; a change to
# model/handoff.pml (or to spin) needs make check-model. A refuted twin
# costs about a second, mostly compiling pan.c, so every variant gets one.
# A safety search costs its states, and 30 s hold five of them: vyukov's,
# llist's and mutex-pipe's would make quick 35 s, spin-then-block's (10
# million states with its store buffers) one minute. A liveness search
# costs 2.5 to 5 times the safety search of its build.
#
# What each check costs, and what the sets took on the project's machine:
# doc/HANDOFF.md, "Checked by a model".
set -u
chosen=${1:-${MODEL_SET:-quick}}
case $chosen in
quick | full) ;;
*)
    echo "Bail out! unknown set '$chosen' (quick or full)"
    exit 1
    ;;
esac
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
# The full set takes minutes (doc/HANDOFF.md): its watchdog is longer.
[ "$chosen" = full ] && watchdog 3600 || watchdog 300
cp "$model" "$work/handoff.pml" || { echo "Bail out! no model at $model"; exit 1; }
cd "$work" || exit 1
cc=${CC:-cc}
n=0 planned=0 failed=0 counting=yes what=
# want SET WHAT: whether the check that follows is in the chosen set (quick
# checks are in both). The first pass only counts them, for the plan.
want() {
    [ "$1" = quick ] || [ "$chosen" = full ] || return 1
    if [ "$counting" = yes ]; then
        planned=$((planned + 1))
        return 1
    fi
    what=$2
}
# A line before each check starts, so that a long run shows where it is.
starting() {
    echo "# checking $((n + 1))/$planned: $what [$1]"
    waiting "check $((n + 1)): $what"
}
report() {
    n=$((n + 1))
    if [ "$1" = yes ]; then
        echo "ok $n - $what"
    else
        failed=1
        echo "not ok $n - $what"
        grep -E 'error|violated|cycle|depth|states, stored' pan.out | sed 's/^/# /' | head -10
    fi
}

# check SPIN-DEFINES PAN-COMPILE-FLAGS PAN-RUN-FLAGS: output in pan.out
check() {
    starting "spin ${1:+$1 }-a; cc $2; pan -m1000000${hash:+ $hash}${3:+ $3}"
    rm -f pan pan.* handoff.pml.trail
    spin $1 -a handoff.pml > pan.out 2>&1 &&
        $cc -w $2 -o pan pan.c >> pan.out 2>&1 &&
        ./pan -m1000000 $hash $3 >> pan.out 2>&1
    return 0
}
# Compiling pan.c takes about 2 s of CPU at -O1, 0.7 s at -O0. Most safety
# searches are short (a refutation stops a few hundred states in, and most
# that hold store under 2 million states), so -O0's slower pan costs less
# than its compile saves; the four of 7 to 10 million states lose 2 to 5 s
# each. The liveness searches (nested, with fairness) run 1.5 to 2 times
# longer at -O0: -O1 for them.
safety() { check "$1" "-O0 -DNOCLAIM" ""; }
liveness() { check "$1" "-O1 -DNFAIR=3" "-a -f -A -N $2"; }
# A counterexample is a real schedule: replay the trail the check before
# left (spin -t), to the violated assertion.
replay() {
    starting "spin $1 -t -p"
    spin $1 -t -p handoff.pml > trail.out 2>&1
    grep -q "assertion violated" trail.out && replayed=yes || replayed=no
    return 0
}
# A complete search with no error of any kind.
holds() {
    grep -q "errors: 0" pan.out && ! grep -Eq "violated|acceptance cycle|too small|error:" pan.out &&
        echo yes || echo no
}
# Refuted by this assertion (a fixed string of spin's own output).
refuted_by() { grep -Eq "errors: [1-9]" pan.out && grep -qF "assertion violated ($1)" pan.out && echo yes || echo no; }
refuted_cycle() { grep -Eq "errors: [1-9]" pan.out && grep -q "acceptance cycle" pan.out && echo yes || echo no; }

# Every check, in order; run twice: once to count the chosen set's (the
# plan), then to run them.
checks() {
# The protocol as built. Defaults: 2 producers x 2 items, budget 1, one
# write that may fail and one retrier, a socket that asks twice. pan's own
# hash table (-w24: 2^24 slots, 128 MB) suits searches of up to 10 million
# states.
hash=
want quick "wfcq: at rest all handled, signals sent == owed; a socket waits <= 2 rounds" &&
    safety "" && report "$(holds)"
want full "wfcq: the same, 3 producers x 2 items" &&
    safety "-DNPROD=3 -DNITEMS=2 -DFAILS=0 -DNRETRY=0 -DNREQ=0" && report "$(holds)"
want full "wfcq: two retriers, two failed writes: each owed signal sent exactly once" &&
    safety "-DNRETRY=2 -DFAILS=2" && report "$(holds)"
want full "wfcq, budget 2 (rounds that stop at NULL or WOULDBLOCK part-way), 2 x 3" &&
    safety "-DBUDGET=2 -DNITEMS=3 -DFAILS=0 -DNRETRY=0" && report "$(holds)"
want quick "mutex-eventfd: safety" &&
    safety "-DMUTEX" && report "$(holds)"
want full "mutex-pipe holding one signal (a full pipe drops it), two retriers: safety" &&
    safety "-DMUTEX -DCAP=1 -DNRETRY=2 -DFAILS=2" && report "$(holds)"
want quick "mutex-elide (signal on empty, take the whole list): safety" &&
    safety "-DMUTEX -DELIDE" && report "$(holds)"
want full "mutex-elide, budget 2, 2 x 3: safety" &&
    safety "-DMUTEX -DELIDE -DBUDGET=2 -DNITEMS=3 -DFAILS=0 -DNRETRY=0" && report "$(holds)"
want quick "wfcq-always (every post signals, no re-arm after its WOULDBLOCK): safety" &&
    safety "-DALWAYS" && report "$(holds)"
want full "wfcq-always, budget 2, 2 x 3: safety" &&
    safety "-DALWAYS -DBUDGET=2 -DNITEMS=3 -DFAILS=0 -DNRETRY=0" && report "$(holds)"
want full "vyukov (signal on finding the stub; no re-arm stuck on the stub, re-arm stuck on a message): safety" &&
    safety "-DVYUKOV" && report "$(holds)"
want full "vyukov, budget 2, 2 x 3: safety" &&
    safety "-DVYUKOV -DBUDGET=2 -DNITEMS=3 -DFAILS=0 -DNRETRY=0" && report "$(holds)"
want full "llist (signal on empty, take the stack, reverse, re-arm on an unwritten link): safety" &&
    safety "-DLLIST" && report "$(holds)"
want full "llist, budget 2, 2 x 3: safety" &&
    safety "-DLLIST -DBUDGET=2 -DNITEMS=3 -DFAILS=0 -DNRETRY=0" && report "$(holds)"
want full "spin-then-block (the sleeping handshake, x86 store buffers, both fences): safety" &&
    safety "-DSPIN" && report "$(holds)"
want full "spin-then-block, budget 2: safety" &&
    safety "-DSPIN -DBUDGET=2 -DFAILS=0 -DNRETRY=0" && report "$(holds)"
want quick "ring of 2 (refused producers try again; the round takes at most the count, re-arms while it stays above 0): safety" &&
    safety "-DRING" && report "$(holds)"
want full "ring, budget 2 (no budget re-arm to hide a missing count re-arm): safety" &&
    safety "-DRING -DBUDGET=2" && report "$(holds)"
want full "ring of 1, 3 producers, two retriers, two failed writes: safety" &&
    safety "-DRING -DRCAP=1 -DNPROD=3 -DNITEMS=1 -DNRETRY=2 -DFAILS=2" && report "$(holds)"
want full "ring with the drain between C2 and C4: still holds (C4 re-arms for what was counted meanwhile)" &&
    safety "-DRING -DBUDGET=2 -DBROKEN_DRAIN_AFTER" && report "$(holds)"
want full "wfcq: every item is eventually handled (weak fairness, acceptance cycles)" &&
    liveness "" all_handled && report "$(holds)"
want full "mutex-elide: every item is eventually handled" &&
    liveness "-DMUTEX -DELIDE" all_handled && report "$(holds)"
want full "wfcq-always: every item is eventually handled" &&
    liveness "-DALWAYS" all_handled && report "$(holds)"
want full "vyukov: every item is eventually handled" &&
    liveness "-DVYUKOV" all_handled && report "$(holds)"
want full "llist: every item is eventually handled" &&
    liveness "-DLLIST" all_handled && report "$(holds)"
want full "spin-then-block: every item is eventually handled" &&
    liveness "-DSPIN" all_handled && report "$(holds)"
want full "mutex-eventfd: every item is eventually handled" &&
    liveness "-DMUTEX" all_handled && report "$(holds)"
want full "mutex-pipe: every item is eventually handled" &&
    liveness "-DMUTEX -DCAP=1" all_handled && report "$(holds)"
want full "ring: every item is eventually handled" &&
    liveness "-DRING -DBUDGET=2" all_handled && report "$(holds)"
want full "wfcq under an endless flood: the socket is always served again" &&
    liveness "-DFLOOD -DNPROD=1 -DFAILS=0 -DNRETRY=0" sock_served && report "$(holds)"
want full "mutex under an endless flood: the socket is always served again" &&
    liveness "-DFLOOD -DMUTEX -DNPROD=1 -DFAILS=0 -DNRETRY=0" sock_served && report "$(holds)"
want full "ring under an endless flood: the socket is always served again" &&
    liveness "-DRING -DFLOOD -DNPROD=1 -DFAILS=0 -DNRETRY=0" sock_served && report "$(holds)"

# The broken twins. A refutation stops at its first counterexample, a few
# hundred states in for most, 400,000 at most: zeroing pan's 128 MB table
# would cost more than the search; 2^20 slots (8 MB) are plenty.
hash=-w20
want quick "drain after the splice: refuted (a wake-up is lost)" &&
    safety "-DBROKEN_DRAIN_AFTER" && report "$(refuted_by 'handled==(2*2)')"
# Needs the trail of the check just before it: keep the two together, in
# the same set.
want quick "the drain-after-splice counterexample trail replays to the violated assertion" &&
    replay "-DBROKEN_DRAIN_AFTER" && report "$replayed"
want full "drain after the splice: the liveness check fails too" &&
    liveness "-DBROKEN_DRAIN_AFTER" all_handled && report "$(refuted_cycle)"
want quick "mutex-elide with the drain after the take: refuted too (elision, not the queue, needs the order)" &&
    safety "-DBROKEN_DRAIN_AFTER -DMUTEX -DELIDE" && report "$(refuted_by 'handled==(2*2)')"
want quick "wfcq-always's no-re-arm rule with eliding posts: refuted (the rule needs every post to signal)" &&
    safety "-DALWAYS -DBROKEN_ALWAYS_ELIDE" && report "$(refuted_by 'handled==(2*2)')"
want full "no re-arm after a WOULDBLOCK inside the batch: refuted" &&
    safety "-DBROKEN_NO_BATCH_REARM" && report "$(refuted_by 'handled==(2*2)')"
want full "no re-arm after a WOULDBLOCK inside the batch: the liveness check fails too" &&
    liveness "-DBROKEN_NO_BATCH_REARM" all_handled && report "$(refuted_cycle)"
want quick "vyukov with no re-arm when stuck on a message node: refuted" &&
    safety "-DVYUKOV -DBROKEN_VYUKOV_NO_REARM" && report "$(refuted_by 'handled==(2*2)')"
want full "vyukov without the stub push (the last node waits for a successor): refuted" &&
    safety "-DVYUKOV -DBROKEN_VYUKOV_KEEP_LAST" && report "$(refuted_by 'handled==(2*2)')"
want quick "llist with no re-arm at an unwritten link: refuted" &&
    safety "-DLLIST -DBROKEN_LLIST_NO_REARM" && report "$(refuted_by 'handled==(2*2)')"
want quick "spin-then-block without its fences: refuted (the store-buffering reordering loses a wake-up)" &&
    safety "-DSPIN -DBROKEN_SPIN_NO_FENCE_P -DBROKEN_SPIN_NO_FENCE_C" && report "$(refuted_by 'handled==(2*2)')"
want full "spin-then-block without the producer's fence: refuted" &&
    safety "-DSPIN -DBROKEN_SPIN_NO_FENCE_P" && report "$(refuted_by 'handled==(2*2)')"
want full "spin-then-block without the consumer's fence: refuted" &&
    safety "-DSPIN -DBROKEN_SPIN_NO_FENCE_C" && report "$(refuted_by 'handled==(2*2)')"
want full "spin-then-block without the last look after the flag is set: refuted" &&
    safety "-DSPIN -DBROKEN_SPIN_NO_RECHECK" && report "$(refuted_by 'handled==(2*2)')"
want full "a round that re-arms with event_active (no poll between rounds): refuted" &&
    safety "-DBROKEN_NO_YIELD" && report "$(refuted_by 'bypass<=2')"
want full "the same under an endless flood: the socket is never served again" &&
    liveness "-DBROKEN_NO_YIELD -DFLOOD -DNPROD=1 -DFAILS=0 -DNRETRY=0" sock_served && report "$(refuted_cycle)"
want full "a round that leaves an expired timer active: two rounds in a pass, refuted" &&
    safety "-DBROKEN_NO_DEL" && report "$(refuted_by 'bypass<=2')"
want quick "mutex consumer popping one per drained signal, pipe that can be full: refuted" &&
    safety "-DBROKEN_COUNTED -DMUTEX -DCAP=1" && report "$(refuted_by 'handled==(2*2)')"
want full "... the same consumer holds when no signal is dropped: the drop is what pop-until-empty allows" &&
    safety "-DBROKEN_COUNTED -DMUTEX" && report "$(holds)"
want quick "the old retry (send, then pay with a weak CAS): refuted (a signal sent twice)" &&
    safety "-DBROKEN_RETRY -DMUTEX -DNRETRY=2 -DFAILS=2" && report "$(refuted_by 'sent==must')"
want quick "ring without the re-arm for what is still counted: refuted" &&
    safety "-DRING -DBUDGET=2 -DBROKEN_NO_END_REARM" && report "$(refuted_by 'handled==(2*2)')"
want full "ring without that re-arm: the liveness check fails too" &&
    liveness "-DRING -DBUDGET=2 -DBROKEN_NO_END_REARM" all_handled && report "$(refuted_cycle)"
want full "ring with the drain after the round's last look at the count: refuted" &&
    safety "-DRING -DBROKEN_DRAIN_LAST" && report "$(refuted_by 'handled==(2*2)')"
}

checks
echo "1..$planned"
counting=no
checks
# Not 0 when a check failed (make check-model's status; the TAP driver of
# make check reports the failed checks themselves).
exit $failed
