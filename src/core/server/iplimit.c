/*
 * iplimit.c - see iplimit.h. A hash table of addresses with a count each,
 * under one mutex; an entry lives while its address has a connection.
 */
#include <config.h>

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "iplimit.h"

struct ip_entry {
	struct ip_entry *next;		/* in its bucket */
	struct iplimit_key key;
	unsigned count;			/* connections now */
};

struct iplimit {
	pthread_mutex_t lock;
	unsigned max;
	/* Under `lock`: */
	struct ip_entry **buckets;
	unsigned n_buckets;		/* a power of two */
	unsigned n_entries;
};

int iplimit_new(struct iplimit **out, unsigned max)
{
	struct iplimit *l = calloc(1, sizeof(*l));

	if (l == NULL)
		return -ENOMEM;
	l->max = max;
	l->n_buckets = 64;
	l->buckets = calloc(l->n_buckets, sizeof(*l->buckets));
	if (l->buckets == NULL) {
		free(l);
		return -ENOMEM;
	}
	pthread_mutex_init(&l->lock, NULL);
	*out = l;
	return 0;
}

void iplimit_free(struct iplimit *l)
{
	if (l == NULL)
		return;
	for (unsigned i = 0; i < l->n_buckets; i++)
		while (l->buckets[i] != NULL) {
			struct ip_entry *e = l->buckets[i];
			l->buckets[i] = e->next;
			free(e);
		}
	free(l->buckets);
	pthread_mutex_destroy(&l->lock);
	free(l);
}

/*
 * IPv4 whole, IPv6 by /64, a Unix socket's client by its uid. Only the
 * bytes the family defines are read: a Unix client's address is usually
 * unnamed (two bytes), and the rest of `peer` was never written.
 */
int iplimit_key_of(int fd, const struct sockaddr *peer, struct iplimit_key *k)
{
	switch (peer->sa_family) {
	case AF_INET6: {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)peer)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a)) {
			k->family = AF_INET;
			k->key = (uint64_t)a->s6_addr[12] << 24 | (uint64_t)a->s6_addr[13] << 16 |
				 (uint64_t)a->s6_addr[14] << 8 | a->s6_addr[15];
			return 0;
		}
		k->family = AF_INET6;
		k->key = 0;
		for (int i = 0; i < 8; i++)
			k->key = k->key << 8 | a->s6_addr[i];
		return 0;
	}
	case AF_INET:
		k->family = AF_INET;
		k->key = ntohl(((const struct sockaddr_in *)peer)->sin_addr.s_addr);
		return 0;
	case AF_UNIX: {
		struct ucred cred;
		socklen_t len = sizeof(cred);

		if (getsockopt(fd, SOL_SOCKET, SO_PEERCRED, &cred, &len) == -1)
			return -errno;
		k->family = AF_UNIX;
		k->key = cred.uid;
		return 0;
	}
	default:
		return -EAFNOSUPPORT;
	}
}

void iplimit_key_format(const struct iplimit_key *k, char *buf, size_t len)
{
	char host[INET6_ADDRSTRLEN] = "?";

	if (k->family == AF_UNIX) {
		snprintf(buf, len, "uid %llu", (unsigned long long)k->key);
	} else if (k->family == AF_INET6) {
		struct in6_addr a = { .s6_addr = { 0 } };

		for (int i = 0; i < 8; i++)
			a.s6_addr[i] = (uint8_t)(k->key >> (56 - 8 * i));
		inet_ntop(AF_INET6, &a, host, sizeof(host));
		snprintf(buf, len, "[%s]/64", host);
	} else {
		struct in_addr a = { .s_addr = htonl((uint32_t)k->key) };

		inet_ntop(AF_INET, &a, host, sizeof(host));
		snprintf(buf, len, "%s", host);
	}
}

static unsigned bucket_of(const struct iplimit *l, const struct iplimit_key *k)
{
	uint64_t h = (k->key ^ k->family) * 0x9e3779b97f4a7c15ull;	/* Fibonacci hashing */

	return (unsigned)(h >> 32) & (l->n_buckets - 1);
}

static bool same_key(const struct iplimit_key *a, const struct iplimit_key *b)
{
	return a->key == b->key && a->family == b->family;
}

/* Doubles the table once entries outnumber buckets; stays as is on ENOMEM. */
static void grow(struct iplimit *l)
{
	unsigned old_n = l->n_buckets;
	struct ip_entry **old = l->buckets;

	l->buckets = calloc(2 * old_n, sizeof(*l->buckets));
	if (l->buckets == NULL) {
		l->buckets = old;
		return;
	}
	l->n_buckets = 2 * old_n;
	for (unsigned i = 0; i < old_n; i++)
		while (old[i] != NULL) {
			struct ip_entry *e = old[i];
			unsigned b = bucket_of(l, &e->key);

			old[i] = e->next;
			e->next = l->buckets[b];
			l->buckets[b] = e;
		}
	free(old);
}

int iplimit_admit(struct iplimit *l, const struct iplimit_key *k, struct ip_entry **entry)
{
	struct ip_entry *e;
	int rc = 0;

	pthread_mutex_lock(&l->lock);
	for (e = l->buckets[bucket_of(l, k)]; e != NULL; e = e->next)
		if (same_key(&e->key, k))
			break;
	if (e == NULL) {
		if (l->n_entries >= l->n_buckets)
			grow(l);
		e = calloc(1, sizeof(*e));
		if (e == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		e->key = *k;
		e->next = l->buckets[bucket_of(l, k)];
		l->buckets[bucket_of(l, k)] = e;
		l->n_entries++;
	}
	if (e->count >= l->max) {
		rc = -EBUSY;
		goto out;
	}
	e->count++;
	*entry = e;
out:
	pthread_mutex_unlock(&l->lock);
	return rc;
}

void iplimit_release(struct iplimit *l, struct ip_entry *e)
{
	pthread_mutex_lock(&l->lock);
	if (--e->count == 0) {
		struct ip_entry **p = &l->buckets[bucket_of(l, &e->key)];

		while (*p != e)
			p = &(*p)->next;
		*p = e->next;
		l->n_entries--;
		free(e);
	}
	pthread_mutex_unlock(&l->lock);
}
