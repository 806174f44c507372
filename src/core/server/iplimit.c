/*
 * iplimit.c - see iplimit.h. A hash table of addresses with a count each,
 * under one mutex; an entry lives while its address has a connection.
 */
#include <config.h>

#include <errno.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "iplimit.h"

struct ip_entry {
	struct ip_entry *next;		/* in its bucket */
	uint64_t key;			/* the IPv4 address, or the IPv6 /64 */
	sa_family_t family;
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

/* The key an address counts under: IPv4 whole, IPv6 by /64. */
static void key_of(const struct sockaddr *sa, sa_family_t *family, uint64_t *key)
{
	if (sa->sa_family == AF_INET6) {
		const struct in6_addr *a = &((const struct sockaddr_in6 *)sa)->sin6_addr;

		if (IN6_IS_ADDR_V4MAPPED(a)) {
			*family = AF_INET;
			*key = (uint64_t)a->s6_addr[12] << 24 | (uint64_t)a->s6_addr[13] << 16 |
			       (uint64_t)a->s6_addr[14] << 8 | a->s6_addr[15];
			return;
		}
		*family = AF_INET6;
		*key = 0;
		for (int i = 0; i < 8; i++)
			*key = *key << 8 | a->s6_addr[i];
		return;
	}
	*family = AF_INET;
	*key = ntohl(((const struct sockaddr_in *)sa)->sin_addr.s_addr);
}

static unsigned bucket_of(const struct iplimit *l, sa_family_t family, uint64_t key)
{
	uint64_t h = (key ^ family) * 0x9e3779b97f4a7c15ull;	/* Fibonacci hashing */

	return (unsigned)(h >> 32) & (l->n_buckets - 1);
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
			unsigned b = bucket_of(l, e->family, e->key);

			old[i] = e->next;
			e->next = l->buckets[b];
			l->buckets[b] = e;
		}
	free(old);
}

int iplimit_admit(struct iplimit *l, const struct sockaddr *sa, struct ip_entry **entry)
{
	sa_family_t family;
	uint64_t key;
	struct ip_entry *e;
	int rc = 0;

	key_of(sa, &family, &key);
	pthread_mutex_lock(&l->lock);
	for (e = l->buckets[bucket_of(l, family, key)]; e != NULL; e = e->next)
		if (e->key == key && e->family == family)
			break;
	if (e == NULL) {
		if (l->n_entries >= l->n_buckets)
			grow(l);
		e = calloc(1, sizeof(*e));
		if (e == NULL) {
			rc = -ENOMEM;
			goto out;
		}
		e->family = family;
		e->key = key;
		e->next = l->buckets[bucket_of(l, family, key)];
		l->buckets[bucket_of(l, family, key)] = e;
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
		struct ip_entry **p = &l->buckets[bucket_of(l, e->family, e->key)];

		while (*p != e)
			p = &(*p)->next;
		*p = e->next;
		l->n_entries--;
		free(e);
	}
	pthread_mutex_unlock(&l->lock);
}
