/* SPDX-License-Identifier: ISC */
/* racerd: limits per client address, over all workers. */
/*
 * max-connections-per-ip and max-request-rate need counts that every
 * worker sees: a client's connections land on any worker.  The master
 * maps one anonymous shared table before it forks the workers, who
 * inherit it.  Addresses are hashed (SipHash, crypto_shorthash, with a
 * key drawn at start, so a client cannot aim at another's bucket) into
 * IPLIMIT_BUCKETS buckets; IPv6 addresses by their /64, the block one
 * client usually holds.  Addresses that share a bucket share its limits.
 *
 * Each worker has its own row of counters and is the only writer of it,
 * so nothing is locked: a count is the sum of the rows, read with atomic
 * loads.  A connection is counted first and looked at after, so racing
 * workers can refuse too many, never admit too many.  When a worker
 * exits, the master clears its row before a new worker takes the slot.
 *
 * The request rate is a fixed one-second window per bucket and worker:
 * each cell holds the second (its low 16 bits) and the requests counted
 * in it.
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/socket.h>

#include <netinet/in.h>

#include <errno.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "racerd.h"

#define IPLIMIT_BUCKETS		65536

struct iplimit_row {
	uint32_t	conns[IPLIMIT_BUCKETS];
	uint32_t	rate[IPLIMIT_BUCKETS];	/* second << 16 | count */
};

static struct {
	uint8_t			 key[crypto_shorthash_KEYBYTES];
	int			 nrows;
	struct iplimit_row	*rows;
} ipl;

/*
 * Map the table for nworkers workers (master, before the first fork).
 * Returns 0, or -1 with a message in *cause.
 */
int
iplimit_init(int nworkers, char **cause)
{
	size_t	 size = (size_t)nworkers * sizeof *ipl.rows;
	void	*p;

	p = mmap(NULL, size, PROT_READ|PROT_WRITE, MAP_SHARED|MAP_ANONYMOUS,
	    -1, 0);
	if (p == MAP_FAILED) {
		xasprintf(cause, "per-address table: %s", strerror(errno));
		return (-1);
	}
	ipl.rows = p;
	ipl.nrows = nworkers;
	randombytes_buf(ipl.key, sizeof ipl.key);
	return (0);
}

/* A worker slot is free again: forget what it counted (master). */
void
iplimit_worker_gone(int idx)
{
	if (ipl.rows == NULL || idx < 0 || idx >= ipl.nrows)
		return;
	memset(&ipl.rows[idx], 0, sizeof ipl.rows[idx]);
}

/* Returns the bucket of a peer address (IPv6: its /64). */
uint32_t
iplimit_bucket(const struct sockaddr *sa)
{
	const struct sockaddr_in	*sin = (const struct sockaddr_in *)sa;
	const struct sockaddr_in6	*sin6 = (const struct sockaddr_in6 *)sa;
	uint8_t				 h[crypto_shorthash_BYTES];
	uint8_t				 a[9];

	memset(a, 0, sizeof a);
	if (sa->sa_family == AF_INET6 &&
	    !IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr)) {
		a[0] = 6;
		memcpy(a + 1, sin6->sin6_addr.s6_addr, 8);
	} else if (sa->sa_family == AF_INET6) {
		a[0] = 4;
		memcpy(a + 1, sin6->sin6_addr.s6_addr + 12, 4);
	} else if (sa->sa_family == AF_INET) {
		a[0] = 4;
		memcpy(a + 1, &sin->sin_addr, 4);
	}
	crypto_shorthash(h, a, sizeof a, ipl.key);
	return ((uint32_t)(h[0] | h[1] << 8) % IPLIMIT_BUCKETS);
}

static uint64_t
iplimit_conns(uint32_t b)
{
	uint64_t	 n = 0;
	int		 i;

	for (i = 0; i < ipl.nrows; i++)
		n += __atomic_load_n(&ipl.rows[i].conns[b], __ATOMIC_SEQ_CST);
	return (n);
}

/*
 * Count a connection from bucket b on worker idx.  Returns 0, or -1 (and
 * nothing counted) if that makes more than max; max 0 is no limit.
 */
int
iplimit_conn_add(int idx, uint32_t b, int max)
{
	uint32_t	*mine;

	if (ipl.rows == NULL || idx >= ipl.nrows)
		return (0);
	mine = &ipl.rows[idx].conns[b];
	__atomic_add_fetch(mine, 1, __ATOMIC_SEQ_CST);
	if (max > 0 && iplimit_conns(b) > (uint64_t)max) {
		__atomic_sub_fetch(mine, 1, __ATOMIC_SEQ_CST);
		return (-1);
	}
	return (0);
}

/* A connection counted by iplimit_conn_add is gone. */
void
iplimit_conn_del(int idx, uint32_t b)
{
	uint32_t	*mine;

	if (ipl.rows == NULL || idx >= ipl.nrows)
		return;
	mine = &ipl.rows[idx].conns[b];
	if (__atomic_load_n(mine, __ATOMIC_RELAXED) > 0)
		__atomic_sub_fetch(mine, 1, __ATOMIC_SEQ_CST);
}

/*
 * Count one HTTP request from bucket b on worker idx.  Returns 0, or -1
 * if the bucket has had more than rate requests in this second (all
 * workers together); rate 0 is no limit.
 */
int
iplimit_request(int idx, uint32_t b, int rate)
{
	struct timespec	 ts;
	uint32_t	 sec, v, *cell;
	uint64_t	 n = 0;
	int		 i;

	if (ipl.rows == NULL || idx >= ipl.nrows || rate <= 0)
		return (0);
	clock_gettime(CLOCK_MONOTONIC, &ts);
	sec = (uint32_t)ts.tv_sec & 0xffff;
	cell = &ipl.rows[idx].rate[b];
	v = __atomic_load_n(cell, __ATOMIC_RELAXED);
	if (v >> 16 != sec)
		v = sec << 16;
	if ((v & 0xffff) < 0xffff)
		v++;
	__atomic_store_n(cell, v, __ATOMIC_SEQ_CST);
	for (i = 0; i < ipl.nrows; i++) {
		v = __atomic_load_n(&ipl.rows[i].rate[b], __ATOMIC_SEQ_CST);
		if (v >> 16 == sec)
			n += v & 0xffff;
	}
	return (n > (uint64_t)rate ? -1 : 0);
}
