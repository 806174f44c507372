/*
 * test_lfq_grace.c - why the lfq variant frees a node only after an RCU
 * grace period, shown on the queue itself (inbox_lfq.c).
 *
 * A producer thread enters its read-side section and reads the queue's
 * tail, node X, as cds_lfq_enqueue_rcu() does before its CAS on X->next;
 * there it stops. The consumer then takes X. The producer goes on and
 * reads X->next, as its CAS would. Two takes:
 *   grace    the variant's own round (its collect and next ops), which gives
 *            X to call_rcu(): X is freed only after the producer's section
 *            ends, so the read is sound
 *   broken   the same code (lfq_take() in inbox_lfq.h) told to free X at
 *            once: the read is a heap use after free
 * Each runs in a child process (this program, re-executed with "child
 * MODE"), so that the broken one can be reported without ending the test.
 * The assertions need a checker that sees the read: AddressSanitizer (an
 * ASan build reports it and exits non-zero) or, in a plain build, valgrind
 * ("Invalid read"). liburcu itself is not instrumented, which is why the
 * producer's read is made here, in instrumented code, rather than left to
 * the real enqueue; so the test shows the grace period's necessity, not
 * that the variant's enqueue takes its read-side section (that is read in
 * inbox_lfq.c). Without either checker, or in another sanitizer's build
 * (TSan orders the free before the read through this test's own
 * synchronisation, and valgrind does not run sanitized binaries), the
 * assertions are skipped with the reason.
 */
#include <config.h>

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <event2/event.h>

#include "inbox_lfq.h"
#include "tap.h"

/* ---- the child --------------------------------------------------------- */

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
	/* What the CAS on x->next would read, here where ASan sees it. */
	sink = (uintptr_t)*(struct cds_lfq_node_rcu *volatile *)&x->next;
	rcu_read_unlock();
	return NULL;
}

static void nothing(struct inbox_msg *msg, void *arg)
{
}

static int child(bool defer)
{
	struct event_base *base = event_base_new();
	struct inbox *ib;
	struct inbox_msg m = { .kind = 1 };
	pthread_t t;

	if (base == NULL || inbox_new_with_ops(&ib, &inbox_lfq_ops, base, nothing, NULL, 64) < 0)
		return 3;
	lq = (struct inbox_lfq *)ib;
	inbox_post(ib, &m);			/* its node X is the tail now */
	pthread_barrier_init(&holding, NULL, 2);
	pthread_barrier_init(&taken, NULL, 2);
	pthread_create(&t, NULL, stalled_producer, NULL);
	pthread_barrier_wait(&holding);
	if (defer) {				/* the consumer takes X: the variant */
		inbox_lfq_ops.collect(ib);
		if (inbox_lfq_ops.next(ib) != &m)
			return 4;
		inbox_lfq_ops.end_round(ib);
	} else if (lfq_take(lq, false) != &m) {	/* ... or the broken twin */
		return 4;
	}
	usleep(50000);	/* time for a grace period, if one could end */
	pthread_barrier_wait(&taken);
	pthread_join(t, NULL);
	inbox_free(ib, NULL, NULL);
	event_base_free(base);
	fprintf(stderr, "child %s: done\n", defer ? "grace" : "broken");
	return 0;
}

/* ---- the test ---------------------------------------------------------- */

/* Runs the child under `wrap` (NULL: directly); its stderr into `out`. */
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
	while (n + 1 < len && (r = read(pipefd[0], out + n, len - 1 - n)) > 0)
		n += (size_t)r;
	out[n] = '\0';
	close(pipefd[0]);
	waitpid(pid, &status, 0);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
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
		return child(strcmp(argv[2], "grace") == 0);
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
	vg = !sanitized && have_valgrind();
	if (sanitized && !asan)
		why = "a sanitizer build without ASan: TSan orders this free before the read, "
		      "and valgrind does not run sanitized binaries";
	else if (!asan && !vg)
		why = "needs an ASan build or valgrind";
	tap_plan(2);
	if (why != NULL) {
		skip("lfq with its grace period: a stalled producer reads the node safely (%s)", why);
		skip("lfq freed without a grace period: the use after free is reported (%s)", why);
		return tap_done();
	}
	diag("checker: %s", asan ? "AddressSanitizer" : "valgrind");
	rc = run_child(argv[0], "grace", vg, out, sizeof(out));
	ok(rc == 0 && strstr(out, "child grace: done") != NULL &&
	   strstr(out, "use-after-free") == NULL && strstr(out, "Invalid read") == NULL,
	   "lfq with its grace period: a producer stalled inside its read-side section "
	   "reads the taken node safely (exit %d)", rc);
	if (rc != 0)
		diag("%.2000s", out);
	rc = run_child(argv[0], "broken", vg, out, sizeof(out));
	ok(rc != 0 && (asan ? strstr(out, "heap-use-after-free") != NULL :
			      strstr(out, "Invalid read") != NULL),
	   "lfq freed without a grace period: the stalled producer's read is a use after "
	   "free, and %s reports it (exit %d)", asan ? "ASan" : "valgrind", rc);
	return tap_done();
}
