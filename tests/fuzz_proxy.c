/*
 * fuzz_proxy.c - the PROXY header parser under afl++ (`make fuzz`): each
 * input is parsed whole and cut at every length, from a heap buffer of
 * exactly that many bytes (so a read past the end is a crash under ASan, and
 * afl++'s own instrumentation sees every branch), and every verdict is
 * checked against what the bytes can hold: a taken header fits in them, is
 * of version 1 or 2, a v1 one ends in CRLF within 107 bytes, a v2 one is 16
 * + its length; a cut of a taken header is never refused for a reason the
 * whole did not have. Anything else aborts, which afl++ counts as a crash.
 *
 * Without afl++ the same program replays files named on its command line
 * (the seeds in tests/fuzz/proxy/), which make check does.
 */
#include <config.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "proxy.h"

static void check(const unsigned char *data, size_t n)
{
	struct proxy_header h;
	int whole;

	for (size_t k = 0; k <= n; k++) {
		unsigned char *b = malloc(k ? k : 1);
		int rc;

		memcpy(b, data, k);
		rc = proxy_parse(b, k, &h);
		if (rc == 1) {
			if (h.len == 0 || h.len > k || (h.version != 1 && h.version != 2))
				abort();
			if (h.version == 1 && (h.len > PROXY_V1_MAX || b[h.len - 2] != '\r' ||
					       b[h.len - 1] != '\n'))
				abort();
			if (h.version == 2 && h.len != 16 + ((size_t)b[14] << 8 | b[15]))
				abort();
		}
		if (rc != 0 && rc != 1 && (rc > -1 || rc <= -PROXY_NERRORS))
			abort();
		free(b);
	}
	/* Once taken, every longer input is taken the same way ... */
	whole = proxy_parse(data, n, &h);
	if (whole == 1) {
		size_t len = h.len;

		for (size_t k = len; k <= n; k++)
			if (proxy_parse(data, k, &h) != 1 || h.len != len)
				abort();
		/* ... and every shorter cut of it is "not yet". */
		for (size_t k = 0; k < len; k++)
			if (proxy_parse(data, k, &h) != 0)
				abort();
	}
}

static size_t slurp(FILE *f, unsigned char *buf, size_t cap)
{
	size_t n = fread(buf, 1, cap, f);

	return n;
}

int main(int argc, char **argv)
{
	static unsigned char buf[PROXY_MAX + 256];
	size_t n;

	if (argc < 2) {		/* afl++: one input on stdin */
		n = slurp(stdin, buf, sizeof(buf));
		check(buf, n);
		return 0;
	}
	for (int i = 1; i < argc; i++) {
		FILE *f = fopen(argv[i], "rb");

		if (f == NULL) {
			perror(argv[i]);
			return 1;
		}
		n = slurp(f, buf, sizeof(buf));
		fclose(f);
		check(buf, n);
	}
	printf("fuzz_proxy: %d inputs checked\n", argc - 1);
	return 0;
}
