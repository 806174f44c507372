/*
 * test_lfq_grace.c - the two halves of lfq's safe reclamation (inbox_lfq.c):
 * every enqueue and dequeue runs inside an RCU read-side section, and a
 * dequeued node is freed only after a grace period.
 *
 * 1. The sections. liburcu-cds is a shared library, so this program can
 *    stand in front of its cds_lfq_enqueue_rcu() and cds_lfq_dequeue_rcu():
 *    the variant's calls reach the versions below, which note whether the
 *    calling thread is inside a read-side section (urcu_bp_read_ongoing())
 *    and then call liburcu's own. A post from a fresh thread, the rounds
 *    that take the messages and the teardown: every call must be inside.
 *    Deterministic, and the same in every build.
 *
 * 2. The grace period. A producer thread enters its read-side section and
 *    reads the queue's tail, node X, as cds_lfq_enqueue_rcu() does before
 *    its CAS on X->next; there it stops. The consumer takes X through the
 *    variant's own round (its collect and next ops), which gives X to
 *    call_rcu(). The producer goes on and reads X->next, as its CAS would:
 *    with the grace period X is still there; freed at once, the read is a
 *    heap use after free. liburcu is not instrumented, which is why the
 *    producer's read is made here, where a checker sees it: AddressSanitizer
 *    (an ASan build) or, in a plain build, valgrind. It runs in a child
 *    process (this program, re-executed with "child"), so that a report
 *    ends the child, not the test.
 *
 * 3. The checker is on. A child that reads a block it has just freed, in
 *    this program's own code, must be reported: otherwise check 2 could not
 *    fail, and says nothing. (tests/mutants/lfq-free-at-once is the real
 *    code's bug, which check 2 must catch.)
 *
 * Checks 2 and 3 need ASan or valgrind; elsewhere (TSan orders the free
 * before the read through this test's own synchronisation, and valgrind
 * does not run sanitized binaries) they are skipped with the reason.
 */
#include <config.h>

#include <dlfcn.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "inbox_lfq.h"
#include "tap.h"

/* ---- 1. every call inside a read-side section ---------------------------- */

static atomic_uint enqueues, enqueues_outside, dequeues, dequeues_outside;

void cds_lfq_enqueue_rcu(struct cds_lfq_queue_rcu *q, struct cds_lfq_node_rcu *node)
{
	static void (*real)(struct cds_lfq_queue_rcu *, struct cds_lfq_node_rcu *);

	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "cds_lfq_enqueue_rcu");
	atomic_fetch_add(&enqueues, 1);
	if (!urcu_bp_read_ongoing())
		atomic_fetch_add(&enqueues_outside, 1);
	real(q, node);
}

struct cds_lfq_node_rcu *cds_lfq_dequeue_rcu(struct cds_lfq_queue_rcu *q)
{
	static struct cds_lfq_node_rcu *(*real)(struct cds_lfq_queue_rcu *);

	if (real == NULL)
		*(void **)&real = dlsym(RTLD_NEXT, "cds_lfq_dequeue_rcu");
	atomic_fetch_add(&dequeues, 1);
	if (!urcu_bp_read_ongoing())
		atomic_fetch_add(&dequeues_outside, 1);
	return real(q);
}

static atomic_uint handled;

static void count_handled(struct inbox_msg *msg, void *arg)
{
	atomic_fetch_add(&handled, 1);
}

static struct inbox *section_ib;
static struct inbox_msg section_msgs[100];

static void *fresh_poster(void *arg)
{
	for (int i = 0; i < 100; i++)
		inbox_post(section_ib, &section_msgs[i]);
	return NULL;
}

/* An lfq inbox, at its defaults. */
static int lfq_inbox(struct inbox **out, struct event_base *base, inbox_handler_fn handler,
		     unsigned budget)
{
	struct inbox_spec spec;

	inbox_spec_default(&spec, &inbox_lfq_ops);
	return inbox_new(out, &spec, base, handler, NULL, budget);
}

static void test_sections(void)
{
	struct event_base *base = event_base_new();
	pthread_t t;

	if (base == NULL || lfq_inbox(&section_ib, base, count_handled, 16) < 0)
		bail("cannot create the lfq inbox");
	/* A thread that never used RCU: its first post registers it. */
	pthread_create(&t, NULL, fresh_poster, NULL);
	pthread_join(t, NULL);
	/* Rounds on this thread until everything is handled (the budget of
	 * 16 makes several), then one more post left for the teardown. */
	for (int pass = 0; pass < 10000 && atomic_load(&handled) < 100; pass++)
		event_base_loop(base, EVLOOP_ONCE | EVLOOP_NONBLOCK);
	inbox_post(section_ib, &section_msgs[0]);
	inbox_free(section_ib, NULL, NULL);
	event_base_free(base);
	ok(atomic_load(&handled) == 100 &&
	   atomic_load(&enqueues) == 101 && atomic_load(&enqueues_outside) == 0 &&
	   atomic_load(&dequeues) >= 101 && atomic_load(&dequeues_outside) == 0,
	   "lfq: every enqueue (%u, %u outside a read-side section) and every dequeue "
	   "(%u, %u outside) runs inside one", atomic_load(&enqueues),
	   atomic_load(&enqueues_outside), atomic_load(&dequeues),
	   atomic_load(&dequeues_outside));
}

/* ---- 2 and 3: the children ------------------------------------------------ */

static pthread_barrier_t holding, taken;
static struct inbox_lfq *lq;
static volatile uintptr_t sink;

/* The producer, stopped between reading the tail and its CAS on it. */
static void *stalled_producer(void *arg)
{
	struct cds_lfq_node_rcu *x;

	rcu_read_lock();
	x = rcu_dereference(lq->q.tail);
	pthread_barrier_wait(&holding);
	pthread_barrier_wait(&taken);
	/* What the CAS on x->next would read, here where the checker sees it. */
	sink = (uintptr_t)*(struct cds_lfq_node_rcu *volatile *)&x->next;
	rcu_read_unlock();
	return NULL;
}

static void nothing(struct inbox_msg *msg, void *arg)
{
}

static int child_grace(void)
{
	struct event_base *base = event_base_new();
	struct inbox *ib;
	struct inbox_msg m = { .kind = 1 };
	pthread_t t;

	if (base == NULL || lfq_inbox(&ib, base, nothing, 64) < 0)
		return 3;
	lq = (struct inbox_lfq *)ib;
	inbox_post(ib, &m);			/* its node X is the tail now */
	pthread_barrier_init(&holding, NULL, 2);
	pthread_barrier_init(&taken, NULL, 2);
	pthread_create(&t, NULL, stalled_producer, NULL);
	pthread_barrier_wait(&holding);
	inbox_lfq_ops.collect(ib);		/* the consumer takes X: the variant */
	if (inbox_lfq_ops.next(ib) != &m)
		return 4;
	inbox_lfq_ops.end_round(ib);
	usleep(50000);	/* time for a grace period, if one could end */
	pthread_barrier_wait(&taken);
	pthread_join(t, NULL);
	inbox_free(ib, NULL, NULL);
	event_base_free(base);
	fprintf(stderr, "child grace: done\n");
	return 0;
}

/* A use after free in this program's own code: the checker must see it.
 * (The pointer goes through a volatile, or the compiler sees it too.) */
static void *volatile launder;

static int child_checker(void)
{
	uintptr_t *p = malloc(64);

	if (p == NULL)
		return 3;
	p[1] = 1;
	launder = p;
	free(p);
	sink = ((volatile uintptr_t *)launder)[1];
	fprintf(stderr, "child checker: done\n");
	return 0;
}

/* Runs this program as a child in `mode`, under valgrind if asked; its
 * stderr into `out`. */
static int run_child(const char *self, const char *mode, bool valgrind, char *out, size_t len)
{
	int pipefd[2], status;
	size_t n = 0;
	ssize_t r;
	pid_t pid;

	if (pipe(pipefd) != 0)
		bail("pipe");
	pid = fork();
	if (pid == 0) {
		dup2(pipefd[1], 2);
		close(pipefd[0]);
		if (valgrind)
			execlp("valgrind", "valgrind", "-q", "--error-exitcode=99", self, "child",
			       mode, (char *)NULL);
		else
			execl(self, self, "child", mode, (char *)NULL);
		_exit(127);
	}
	close(pipefd[1]);
	tap_waiting(mode);
	while (n + 1 < len && (r = read(pipefd[0], out + n, len - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(pipefd[0]);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

static bool reported(const char *out, bool asan)
{
	return asan ? strstr(out, "heap-use-after-free") != NULL :
		      strstr(out, "Invalid read") != NULL;
}

static bool have_valgrind(void)
{
	return system("valgrind --version > /dev/null 2>&1") == 0;
}

int main(int argc, char **argv)
{
	static char out[65536];
	bool asan = false, sanitized = false, vg;
	const char *why = NULL;
	int rc;

	if (argc == 3 && strcmp(argv[1], "child") == 0)
		return strcmp(argv[2], "grace") == 0 ? child_grace() : child_checker();
	tap_watchdog(120);
#if defined(__SANITIZE_ADDRESS__)
	asan = true;
#elif defined(__has_feature)
#if __has_feature(address_sanitizer)
	asan = true;
#endif
#endif
#ifdef SANITIZED
	sanitized = true;
#endif
	tap_plan(3);
	test_sections();

	vg = !sanitized && have_valgrind();
	if (sanitized && !asan)
		why = "a sanitizer build without ASan: TSan orders this free before the read, "
		      "and valgrind does not run sanitized binaries";
	else if (!asan && !vg)
		why = "needs an ASan build or valgrind";
	if (why != NULL) {
		skip("lfq with its grace period: a stalled producer reads the node safely (%s)", why);
		skip("the checker reports a use after free (%s)", why);
		return tap_done();
	}
	diag("checker: %s", asan ? "AddressSanitizer" : "valgrind");
	rc = run_child(argv[0], "grace", vg, out, sizeof(out));
	ok(rc == 0 && strstr(out, "child grace: done") != NULL && !reported(out, asan),
	   "lfq with its grace period: a producer stalled inside its read-side section "
	   "reads the node the consumer took, safely (exit %d)", rc);
	if (rc != 0 || reported(out, asan))
		diag("%.2000s", out);
	rc = run_child(argv[0], "checker", vg, out, sizeof(out));
	ok(rc != 0 && reported(out, asan),
	   "the checker is on: %s reports a read of a freed block (exit %d), so the check "
	   "above can fail", asan ? "ASan" : "valgrind", rc);
	return tap_done();
}
