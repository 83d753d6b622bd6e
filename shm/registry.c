/* SPDX-License-Identifier: ISC */
/* racerd: shared-memory room registry. */
/*
 * This module owns the registry segment: its creation (master), attachment
 * (status tools, tests), the robust process-shared mutex that guards it and
 * the room table in it.  The master creates it before forking; workers use
 * the inherited mapping to join and leave rooms and to publish their
 * connection count, heartbeat and counters.  It depends on libc and
 * pthreads only, and never logs: failures come back as -1 with errno, or as
 * a *cause string for the functions that set one up.
 *
 * Layout, as offsets from the start of the segment (64-byte aligned):
 *	struct reg_hdr				header, mutex
 *	struct reg_slot	[workers]		worker slots
 *	struct reg_room	[capacity]		room entries
 *	uint32_t	counts[capacity][workers]	members of room r on worker w
 *	uint32_t	buckets[nbuckets]	hash chain heads (room indices)
 * There are no pointers in it: chains and the free list link room indices,
 * REG_NONE ends them.
 *
 * Invariants, whenever the mutex is free and consistent:
 *   - counts[r][w] is the truth.  Room r is in use iff rooms[r].in_use is 1,
 *     and then its name is complete and its total (the sum of its counts)
 *     is above 0.  A free room has total 0 and all its counts 0.
 *   - Every room in use is on exactly one hash chain, the one of its
 *     bucket; every free room is on the free list exactly once.
 *   - hdr->rooms, hdr->members and slot->members are the sums they name.
 * Everything but in_use, the name and counts is derived: after a holder of
 * the lock dies (EOWNERDEAD), reg_repair() recomputes it from them.  Writes
 * are ordered so that a death at any instruction leaves in_use and counts
 * meaning something: a name is written before in_use is set, so a room in
 * use is never half-named; a join or leave changes counts[r][w] first and
 * the totals after, so the count that repair trusts is the one that moved.
 *
 * Critical sections do no syscalls, allocation or logging: hashing is done
 * before the lock is taken, and the few writes inside are to the segment.
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "registry.h"

#define REG_ROOMS_MAX	(1u << 22)	/* largest room capacity */
#define REG_ALIGN(x)	(((x) + 63) & ~(uint64_t)63)
#define REG_ROTL(x, b)	(((x) << (b)) | ((x) >> (64 - (b))))

/*
 * The header.  reg_create() writes the first block once, magic last;
 * afterwards it is read-only.  The second block is written under the mutex
 * and is derived: reg_repair() recomputes it.
 */
struct reg_hdr {
	uint32_t	magic;		/* REG_MAGIC; at offset 0 */
	uint32_t	version;	/* REG_VERSION */
	uint64_t	size;		/* bytes in the segment */
	uint32_t	capacity;	/* room entries */
	uint32_t	workers;	/* worker slots */
	uint32_t	nbuckets;	/* power of two >= capacity */
	uint32_t	generation;	/* bumped when a segment is replaced */
	pid_t		master;		/* creator */
	uint32_t	spare;
	uint64_t	slots_off;
	uint64_t	rooms_off;
	uint64_t	counts_off;
	uint64_t	buckets_off;
	uint64_t	key[2];		/* SipHash key of room names */

	uint64_t	repairs;	/* under lock: EOWNERDEAD recoveries */
	uint64_t	members;	/* under lock: sum of room totals */
	uint32_t	rooms;		/* under lock: rooms in use */
	uint32_t	free_head;	/* under lock: first free room */
	pthread_mutex_t	mutex;
};

/* One worker slot; aligned so that workers do not share cache lines. */
struct reg_slot {
	pid_t		pid;		/* master, under lock; 0 if free */
	uint32_t	generation;	/* master, under lock */
	uint32_t	connections;	/* owner, atomic */
	uint32_t	spare;
	uint64_t	members;	/* under lock: sum of counts[][w] */
	uint64_t	heartbeat;	/* owner, atomic */
	struct reg_counters counters;	/* owner only, no lock; see below */
} __attribute__((__aligned__(64)));

/* A room entry, written under the lock. */
struct reg_room {
	uint32_t	in_use;		/* 1 when the entry is a room */
	uint32_t	next;		/* hash chain or free list */
	uint32_t	hash;		/* of name; set before in_use */
	uint32_t	total;		/* sum of this room's counts */
	uint32_t	len;		/* of name; set before in_use */
	char		name[REG_NAME_MAX];
};

/* Where things are, computed from the capacity and the worker count. */
struct reg_geom {
	uint32_t	capacity;
	uint32_t	workers;
	uint32_t	nbuckets;
	uint64_t	slots_off;
	uint64_t	rooms_off;
	uint64_t	counts_off;
	uint64_t	buckets_off;
	uint64_t	size;
};

/* A process's handle: private memory, pointers into its own mapping. */
struct reg {
	char		*name;
	int		 replaced;	/* reg_create took over a stale one */
	void		*base;
	size_t		 size;
	uint32_t	 capacity;
	uint32_t	 workers;
	uint32_t	 nbuckets;
	uint64_t	 key[2];
	struct reg_hdr	*hdr;
	struct reg_slot	*slots;
	struct reg_room	*rooms;
	uint32_t	*counts;
	uint32_t	*buckets;
};

/* Test hook: see reg_test_crash_point(). */
static int	reg_crash_at = REG_CRASH_NONE;

#define REG_CRASH(n) do {						\
	if (reg_crash_at == (n))					\
		reg_crash();						\
} while (0)

static void
reg_crash(void)
{
	/* Die like a crashed worker would: no unlock, no cleanup. */
	raise(SIGKILL);
	_exit(127);
}

static void	reg_cause(char **, const char *, ...)
		    __attribute__((__format__(__printf__, 2, 3)));

static void
reg_cause(char **cause, const char *fmt, ...)
{
	va_list	ap;
	int	saved = errno;

	if (cause != NULL) {
		va_start(ap, fmt);
		if (vasprintf(cause, fmt, ap) == -1)
			*cause = NULL;
		va_end(ap);
	}
	errno = saved;
}

static void
reg_sipround(uint64_t v[4])
{
	v[0] += v[1];
	v[1] = REG_ROTL(v[1], 13);
	v[1] ^= v[0];
	v[0] = REG_ROTL(v[0], 32);
	v[2] += v[3];
	v[3] = REG_ROTL(v[3], 16);
	v[3] ^= v[2];
	v[0] += v[3];
	v[3] = REG_ROTL(v[3], 21);
	v[3] ^= v[0];
	v[2] += v[1];
	v[1] = REG_ROTL(v[1], 17);
	v[1] ^= v[2];
	v[2] = REG_ROTL(v[2], 32);
}

static void
reg_sipblock(uint64_t v[4], uint64_t m)
{
	v[3] ^= m;
	reg_sipround(v);
	reg_sipround(v);
	v[0] ^= m;
}

/*
 * SipHash-2-4 of a room name with the segment's random key.  Chat ids come
 * from clients, and the table sits behind one lock: a keyed hash keeps a
 * client from building long chains.
 */
static uint32_t
reg_hash(const struct reg *reg, const char *chat, size_t len)
{
	const unsigned char	*p = (const unsigned char *)chat;
	uint64_t		 v[4], m;
	size_t			 i, j, n;

	v[0] = reg->key[0] ^ 0x736f6d6570736575ULL;
	v[1] = reg->key[1] ^ 0x646f72616e646f6dULL;
	v[2] = reg->key[0] ^ 0x6c7967656e657261ULL;
	v[3] = reg->key[1] ^ 0x7465646279746573ULL;
	n = len - len % 8;
	for (i = 0; i < n; i += 8) {
		m = 0;
		for (j = 0; j < 8; j++)
			m |= (uint64_t)p[i + j] << (8 * j);
		reg_sipblock(v, m);
	}
	m = (uint64_t)len << 56;
	for (j = 0; j < len % 8; j++)
		m |= (uint64_t)p[n + j] << (8 * j);
	reg_sipblock(v, m);
	v[2] ^= 0xff;
	for (j = 0; j < 4; j++)
		reg_sipround(v);
	return ((uint32_t)(v[0] ^ v[1] ^ v[2] ^ v[3]));
}

static int
reg_geometry(uint32_t capacity, uint32_t workers, struct reg_geom *g)
{
	uint64_t	off;

	if (capacity == 0 || capacity > REG_ROOMS_MAX ||
	    workers == 0 || workers > REG_WORKERS_MAX) {
		errno = EINVAL;
		return (-1);
	}
	g->capacity = capacity;
	g->workers = workers;
	for (g->nbuckets = 1; g->nbuckets < capacity; g->nbuckets <<= 1)
		/* nothing */;
	off = REG_ALIGN(sizeof (struct reg_hdr));
	g->slots_off = off;
	off = REG_ALIGN(off + (uint64_t)workers * sizeof (struct reg_slot));
	g->rooms_off = off;
	off = REG_ALIGN(off + (uint64_t)capacity * sizeof (struct reg_room));
	g->counts_off = off;
	off = REG_ALIGN(off + (uint64_t)capacity * workers * sizeof (uint32_t));
	g->buckets_off = off;
	off = REG_ALIGN(off + (uint64_t)g->nbuckets * sizeof (uint32_t));
	if (off > SIZE_MAX || off > INT64_MAX) {
		errno = EINVAL;
		return (-1);
	}
	g->size = off;
	return (0);
}

static struct reg *
reg_handle(const char *name, void *base, const struct reg_geom *g)
{
	struct reg	*reg;
	char		*p = base;

	if ((reg = calloc(1, sizeof *reg)) == NULL)
		return (NULL);
	if ((reg->name = strdup(name)) == NULL) {
		free(reg);
		return (NULL);
	}
	reg->base = base;
	reg->size = g->size;
	reg->capacity = g->capacity;
	reg->workers = g->workers;
	reg->nbuckets = g->nbuckets;
	reg->hdr = base;
	reg->slots = (struct reg_slot *)(p + g->slots_off);
	reg->rooms = (struct reg_room *)(p + g->rooms_off);
	reg->counts = (uint32_t *)(p + g->counts_off);
	reg->buckets = (uint32_t *)(p + g->buckets_off);
	return (reg);
}

static uint32_t *
reg_count(struct reg *reg, uint32_t room, uint32_t w)
{
	return (&reg->counts[(size_t)room * reg->workers + w]);
}

static int
reg_pid_is_alive(pid_t pid)
{
	return (pid > 0 && (kill(pid, 0) == 0 || errno == EPERM));
}

static int
reg_now_ms(uint64_t *ms)
{
	struct timespec	ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		return (-1);
	*ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
	return (0);
}

/*
 * Fill a fresh, zeroed segment: header, empty index, every room on the
 * free list, the mutex.  The magic is stored last, so that a segment seen
 * with a valid magic is complete.
 */
static int
reg_format(struct reg *reg, const struct reg_geom *g, uint32_t generation,
    char **cause)
{
	struct reg_hdr		*hdr = reg->hdr;
	pthread_mutexattr_t	 attr;
	ssize_t			 n;
	uint32_t		 i;
	int			 error;

	if ((n = getrandom(reg->key, sizeof reg->key, 0)) !=
	    (ssize_t)sizeof reg->key) {
		if (n != -1)
			errno = EIO;
		reg_cause(cause, "getrandom: %s", strerror(errno));
		return (-1);
	}
	memcpy(hdr->key, reg->key, sizeof hdr->key);
	hdr->version = REG_VERSION;
	hdr->size = g->size;
	hdr->capacity = g->capacity;
	hdr->workers = g->workers;
	hdr->nbuckets = g->nbuckets;
	hdr->generation = generation;
	hdr->master = getpid();
	hdr->slots_off = g->slots_off;
	hdr->rooms_off = g->rooms_off;
	hdr->counts_off = g->counts_off;
	hdr->buckets_off = g->buckets_off;
	memset(reg->buckets, 0xff, (size_t)g->nbuckets * sizeof (uint32_t));
	for (i = 0; i < g->capacity; i++)
		reg->rooms[i].next = i + 1 < g->capacity ? i + 1 : REG_NONE;
	hdr->free_head = 0;

	if ((error = pthread_mutexattr_init(&attr)) != 0)
		goto fail;
	if ((error = pthread_mutexattr_setpshared(&attr,
	    PTHREAD_PROCESS_SHARED)) != 0 ||
	    (error = pthread_mutexattr_setrobust(&attr,
	    PTHREAD_MUTEX_ROBUST)) != 0 ||
	    (error = pthread_mutex_init(&hdr->mutex, &attr)) != 0) {
		pthread_mutexattr_destroy(&attr);
		goto fail;
	}
	if ((error = pthread_mutexattr_destroy(&attr)) != 0)
		goto fail;
	__atomic_store_n(&hdr->magic, REG_MAGIC, __ATOMIC_RELEASE);
	return (0);

fail:
	errno = error;
	reg_cause(cause, "registry mutex: %s", strerror(error));
	return (-1);
}

/*
 * Read what matters of the header of an existing segment.  *readable is
 * set when its magic and version are ours, *valid when its size matches
 * too.  Returns 0, or -1 with errno (ENOENT if it is gone).
 */
static int
reg_peek(const char *name, struct reg_hdr *old, int *readable, int *valid)
{
	struct stat	 st;
	struct reg_hdr	*hdr;
	int		 fd, saved;

	*readable = *valid = 0;
	if ((fd = shm_open(name, O_RDONLY, 0)) == -1)
		return (-1);
	if (fstat(fd, &st) == -1)
		goto fail;
	if ((uint64_t)st.st_size < sizeof *hdr) {
		close(fd);
		return (0);
	}
	hdr = mmap(NULL, sizeof *hdr, PROT_READ, MAP_SHARED, fd, 0);
	if (hdr == MAP_FAILED)
		goto fail;
	old->magic = __atomic_load_n(&hdr->magic, __ATOMIC_ACQUIRE);
	old->version = hdr->version;
	old->size = hdr->size;
	old->generation = hdr->generation;
	old->master = hdr->master;
	munmap(hdr, sizeof *hdr);
	close(fd);
	*readable = old->magic == REG_MAGIC && old->version == REG_VERSION;
	*valid = *readable && old->size == (uint64_t)st.st_size;
	return (0);

fail:
	saved = errno;
	close(fd);
	errno = saved;
	return (-1);
}

/*
 * An existing segment is in the way of reg_create().  Refuse it (EEXIST)
 * if its header is valid and its master is alive and not us; otherwise it
 * is stale: unlink it.  *generation becomes its generation + 1 when its
 * header was readable.  Returns 0 when the name is free again.
 *
 * Two masters racing to create the same name are kept apart by the pidfile,
 * not here: one could take the other's half-made segment for garbage.
 */
static int
reg_clear_stale(const char *name, uint32_t *generation, char **cause)
{
	struct reg_hdr	old;
	int		readable, valid;

	memset(&old, 0, sizeof old);
	if (reg_peek(name, &old, &readable, &valid) == -1) {
		if (errno == ENOENT)
			return (0);
		reg_cause(cause, "registry %s: %s", name, strerror(errno));
		return (-1);
	}
	if (readable && (*generation = old.generation + 1) == 0)
		*generation = 1;
	if (valid && old.master != getpid() &&
	    reg_pid_is_alive(old.master)) {
		reg_cause(cause, "registry %s is in use by a running racerd "
		    "(master pid %ld)", name, (long)old.master);
		errno = EEXIST;
		return (-1);
	}
	if (shm_unlink(name) == -1 && errno != ENOENT) {
		reg_cause(cause, "shm_unlink %s: %s", name, strerror(errno));
		return (-1);
	}
	return (0);
}

/*
 * Create the registry segment name (a shm_open name, "/racerd-main") with
 * capacity rooms and workers worker slots, replacing a stale segment of
 * that name.  Returns a handle for reg_close(), or NULL with errno (EEXIST
 * when a live master owns the name, EINVAL for bad sizes) and *cause set
 * to a message the caller frees.
 */
struct reg *
reg_create(const char *name, uint32_t capacity, uint32_t workers,
    char **cause)
{
	struct reg_geom	 g;
	struct reg	*reg = NULL;
	void		*base = MAP_FAILED;
	uint32_t	 generation = 1;
	int		 fd = -1, tries, saved, replaced = 0;

	if (name == NULL || name[0] != '/' ||
	    reg_geometry(capacity, workers, &g) != 0) {
		errno = EINVAL;
		reg_cause(cause, "registry %s: bad name or size (%u rooms, "
		    "%u workers)", name == NULL ? "(null)" : name, capacity,
		    workers);
		return (NULL);
	}
	for (tries = 0; tries < 4; tries++) {
		fd = shm_open(name, O_RDWR|O_CREAT|O_EXCL, 0600);
		if (fd != -1 || errno != EEXIST)
			break;
		if (reg_clear_stale(name, &generation, cause) != 0)
			return (NULL);
		replaced = 1;
	}
	if (fd == -1) {
		reg_cause(cause, "shm_open %s: %s", name, strerror(errno));
		return (NULL);
	}
	if (ftruncate(fd, (off_t)g.size) == -1) {
		reg_cause(cause, "ftruncate %s: %s", name, strerror(errno));
		goto fail;
	}
	base = mmap(NULL, g.size, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		reg_cause(cause, "mmap %s: %s", name, strerror(errno));
		goto fail;
	}
	if (close(fd) == -1) {
		fd = -1;
		reg_cause(cause, "close %s: %s", name, strerror(errno));
		goto fail;
	}
	fd = -1;
	if ((reg = reg_handle(name, base, &g)) == NULL) {
		reg_cause(cause, "registry %s: %s", name, strerror(errno));
		goto fail;
	}
	if (reg_format(reg, &g, generation, cause) != 0)
		goto fail;
	reg->replaced = replaced;
	return (reg);

fail:
	saved = errno;
	if (reg != NULL) {
		free(reg->name);
		free(reg);
	}
	if (base != MAP_FAILED)
		munmap(base, g.size);
	if (fd != -1)
		close(fd);
	shm_unlink(name);
	errno = saved;
	return (NULL);
}

static int
reg_check_header(const struct reg_hdr *hdr, uint64_t size,
    struct reg_geom *g)
{
	if (__atomic_load_n(&hdr->magic, __ATOMIC_ACQUIRE) != REG_MAGIC ||
	    hdr->version != REG_VERSION || hdr->size != size ||
	    reg_geometry(hdr->capacity, hdr->workers, g) != 0 ||
	    g->size != size || g->nbuckets != hdr->nbuckets ||
	    g->slots_off != hdr->slots_off || g->rooms_off != hdr->rooms_off ||
	    g->counts_off != hdr->counts_off ||
	    g->buckets_off != hdr->buckets_off) {
		errno = EINVAL;
		return (-1);
	}
	return (0);
}

/*
 * Map the existing registry segment name, for status tools and tests.
 * Returns a handle for reg_close(), or NULL with errno (ENOENT, or EINVAL
 * when it is not a registry of this version) and *cause set.
 */
struct reg *
reg_attach(const char *name, char **cause)
{
	struct reg_geom	 g;
	struct stat	 st;
	struct reg	*reg;
	void		*base;
	int		 fd;

	if (name == NULL) {
		errno = EINVAL;
		reg_cause(cause, "registry: no name");
		return (NULL);
	}
	if ((fd = shm_open(name, O_RDWR, 0)) == -1) {
		reg_cause(cause, "shm_open %s: %s", name, strerror(errno));
		return (NULL);
	}
	if (fstat(fd, &st) == -1) {
		reg_cause(cause, "fstat %s: %s", name, strerror(errno));
		close(fd);
		return (NULL);
	}
	if ((uint64_t)st.st_size < sizeof (struct reg_hdr)) {
		close(fd);
		errno = EINVAL;
		reg_cause(cause, "%s is not a racerd registry", name);
		return (NULL);
	}
	base = mmap(NULL, st.st_size, PROT_READ|PROT_WRITE, MAP_SHARED, fd, 0);
	if (base == MAP_FAILED) {
		reg_cause(cause, "mmap %s: %s", name, strerror(errno));
		close(fd);
		return (NULL);
	}
	close(fd);
	if (reg_check_header(base, st.st_size, &g) != 0) {
		munmap(base, st.st_size);
		errno = EINVAL;
		reg_cause(cause, "%s is not a racerd registry (version %d)",
		    name, REG_VERSION);
		return (NULL);
	}
	if ((reg = reg_handle(name, base, &g)) == NULL) {
		reg_cause(cause, "registry %s: %s", name, strerror(errno));
		munmap(base, g.size);
		return (NULL);
	}
	memcpy(reg->key, reg->hdr->key, sizeof reg->key);
	return (reg);
}

/* Unmap the registry and free the handle; the segment stays.  NULL is ok. */
void
reg_close(struct reg *reg)
{
	if (reg == NULL)
		return;
	munmap(reg->base, reg->size);
	free(reg->name);
	free(reg);
}

/* Remove the segment name; mappings stay valid.  Returns 0 or -1. */
int
reg_unlink(const char *name)
{
	return (shm_unlink(name));
}

/* Returns the segment name, borrowed from the handle. */
const char *
reg_name(struct reg *reg)
{
	return (reg->name);
}

/* Put room i back in order, or free it if its counts sum to 0. */
static int
reg_repair_room(struct reg *reg, uint32_t i)
{
	struct reg_hdr	*hdr = reg->hdr;
	struct reg_room	*rm = &reg->rooms[i];
	uint32_t	*counts = reg_count(reg, i, 0), *bucket, w;
	uint64_t	 sum = 0;

	if (rm->in_use == 1 && rm->len >= 1 && rm->len <= REG_NAME_MAX) {
		for (w = 0; w < reg->workers; w++)
			sum += counts[w];
	}
	if (sum > UINT32_MAX)
		return (-1);
	if (sum == 0) {
		rm->in_use = 0;
		rm->total = 0;
		memset(counts, 0, reg->workers * sizeof *counts);
		rm->next = hdr->free_head;
		hdr->free_head = i;
		return (0);
	}
	rm->total = (uint32_t)sum;
	rm->hash = reg_hash(reg, rm->name, rm->len);
	bucket = &reg->buckets[rm->hash & (reg->nbuckets - 1)];
	rm->next = *bucket;
	*bucket = i;
	hdr->rooms++;
	hdr->members += sum;
	for (w = 0; w < reg->workers; w++)
		reg->slots[w].members += counts[w];
	return (0);
}

/*
 * Rebuild everything derived from in_use, names and counts after a lock
 * holder died: totals, sums, hash chains and the free list.  It only ever
 * frees rooms with no members and clears counts of free rooms, so it can
 * itself die and be run again.  Called with the lock held (EOWNERDEAD).
 * Returns 0, or -1 if the segment is damaged beyond that (the header no
 * longer matches the mapping).
 */
static int
reg_repair(struct reg *reg)
{
	struct reg_hdr	*hdr = reg->hdr;
	uint32_t	 i, w;

	if (hdr->magic != REG_MAGIC || hdr->version != REG_VERSION ||
	    hdr->size != reg->size || hdr->capacity != reg->capacity ||
	    hdr->workers != reg->workers || hdr->nbuckets != reg->nbuckets)
		return (-1);
	memset(reg->buckets, 0xff, (size_t)reg->nbuckets * sizeof (uint32_t));
	hdr->free_head = REG_NONE;
	hdr->rooms = 0;
	hdr->members = 0;
	for (w = 0; w < reg->workers; w++)
		reg->slots[w].members = 0;
	/* Backwards, so that the free list hands out low indices first. */
	for (i = reg->capacity; i-- > 0;) {
		if (reg_repair_room(reg, i) != 0)
			return (-1);
	}
	return (0);
}

/*
 * Take the registry lock.  If its last holder died, repair the segment
 * first and count the repair.  Returns 0 with the lock held, or -1 with
 * errno ENOTRECOVERABLE: the segment must be replaced (reg_create).
 */
int
reg_lock(struct reg *reg)
{
	int	error;

	error = pthread_mutex_lock(&reg->hdr->mutex);
	if (error == 0)
		return (0);
	if (error == EOWNERDEAD) {
		if (reg_repair(reg) == 0 &&
		    pthread_mutex_consistent(&reg->hdr->mutex) == 0) {
			reg->hdr->repairs++;
			return (0);
		}
		/* Unlocking without consistent makes it unrecoverable. */
		pthread_mutex_unlock(&reg->hdr->mutex);
	}
	errno = ENOTRECOVERABLE;
	return (-1);
}

/* Release the registry lock taken by reg_lock(). */
void
reg_unlock(struct reg *reg)
{
	/* Unlocking a lock we do not hold is a bug in the caller. */
	if (pthread_mutex_unlock(&reg->hdr->mutex) != 0)
		abort();
}

static int
reg_check_room(struct reg *reg, const char *chat, size_t len)
{
	if (reg == NULL || chat == NULL || len == 0 || len > REG_NAME_MAX) {
		errno = EINVAL;
		return (-1);
	}
	return (0);
}

/* Returns the index of the room named chat, or REG_NONE. */
static uint32_t
reg_find(struct reg *reg, uint32_t hash, const char *chat, size_t len)
{
	struct reg_room	*rm;
	uint32_t	 i, n;

	i = reg->buckets[hash & (reg->nbuckets - 1)];
	for (n = 0; i < reg->capacity && n < reg->capacity; n++) {
		rm = &reg->rooms[i];
		if (rm->hash == hash && rm->len == len &&
		    memcmp(rm->name, chat, len) == 0)
			return (i);
		i = rm->next;
	}
	return (REG_NONE);
}

/*
 * Take a free entry and make it room chat, with no members yet.  The name
 * is complete before in_use is set, and in_use is set before the caller
 * counts the first member: a death in between leaves a free entry or an
 * in-use one with no members, which repair frees.  Returns its index, or
 * REG_NONE if the table is full.
 */
static uint32_t
reg_room_alloc(struct reg *reg, uint32_t hash, const char *chat, size_t len)
{
	struct reg_hdr	*hdr = reg->hdr;
	struct reg_room	*rm;
	uint32_t	 i, *bucket;
	size_t		 half = len / 2;

	if ((i = hdr->free_head) >= reg->capacity)
		return (REG_NONE);
	rm = &reg->rooms[i];
	hdr->free_head = rm->next;
	rm->hash = hash;
	rm->len = (uint32_t)len;
	rm->total = 0;
	memcpy(rm->name, chat, half);
	REG_CRASH(REG_CRASH_JOIN_NAME);
	memcpy(rm->name + half, chat + half, len - half);
	/*
	 * Death comes between two instructions of this thread: a signal
	 * fence is exactly the compiler barrier that keeps these stores in
	 * program order (the lock orders them for other processes).
	 */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	rm->in_use = 1;
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	REG_CRASH(REG_CRASH_JOIN_LINK);
	bucket = &reg->buckets[hash & (reg->nbuckets - 1)];
	rm->next = *bucket;
	*bucket = i;
	hdr->rooms++;
	return (i);
}

/* Free room i, whose total has reached 0: unindex it, put it on the list. */
static void
reg_room_free(struct reg *reg, uint32_t i)
{
	struct reg_hdr	*hdr = reg->hdr;
	struct reg_room	*rm = &reg->rooms[i];
	uint32_t	*link, n;

	rm->in_use = 0;
	REG_CRASH(REG_CRASH_LEAVE_FREE);
	link = &reg->buckets[rm->hash & (reg->nbuckets - 1)];
	for (n = 0; *link != i && *link < reg->capacity &&
	    n < reg->capacity; n++)
		link = &reg->rooms[*link].next;
	if (*link == i)
		*link = rm->next;
	rm->next = hdr->free_head;
	hdr->free_head = i;
	hdr->rooms--;
}

/*
 * Add one member on worker w to room chat (len bytes, no NUL needed),
 * creating the room if it is not there.  Sets *total (if not NULL) to the
 * room's members after.  Returns 0, or -1 with errno ENOSPC (table full,
 * nothing changed), EOVERFLOW, EINVAL or ENOTRECOVERABLE.
 */
int
reg_join(struct reg *reg, uint32_t w, const char *chat, size_t len,
    uint32_t *total)
{
	struct reg_room	*rm;
	uint32_t	 hash, i, *count, after;

	if (reg_check_room(reg, chat, len) != 0 || w >= reg->workers) {
		errno = EINVAL;
		return (-1);
	}
	hash = reg_hash(reg, chat, len);
	if (reg_lock(reg) != 0)
		return (-1);
	if ((i = reg_find(reg, hash, chat, len)) == REG_NONE &&
	    (i = reg_room_alloc(reg, hash, chat, len)) == REG_NONE) {
		reg_unlock(reg);
		errno = ENOSPC;
		return (-1);
	}
	rm = &reg->rooms[i];
	if (rm->total == UINT32_MAX) {
		reg_unlock(reg);
		errno = EOVERFLOW;
		return (-1);
	}
	count = reg_count(reg, i, w);
	(*count)++;
	REG_CRASH(REG_CRASH_JOIN_COUNT);
	after = ++rm->total;
	reg->hdr->members++;
	reg->slots[w].members++;
	reg_unlock(reg);
	if (total != NULL)
		*total = after;
	return (0);
}

/*
 * Remove one member on worker w from room chat; the last leave frees the
 * room.  Returns 0, or -1 with errno ENOENT (w has no member there),
 * EINVAL or ENOTRECOVERABLE.
 */
int
reg_leave(struct reg *reg, uint32_t w, const char *chat, size_t len)
{
	struct reg_room	*rm;
	uint32_t	 hash, i, *count;

	if (reg_check_room(reg, chat, len) != 0 || w >= reg->workers) {
		errno = EINVAL;
		return (-1);
	}
	hash = reg_hash(reg, chat, len);
	if (reg_lock(reg) != 0)
		return (-1);
	if ((i = reg_find(reg, hash, chat, len)) == REG_NONE ||
	    *(count = reg_count(reg, i, w)) == 0) {
		reg_unlock(reg);
		errno = ENOENT;
		return (-1);
	}
	rm = &reg->rooms[i];
	(*count)--;
	REG_CRASH(REG_CRASH_LEAVE_COUNT);
	rm->total--;
	reg->hdr->members--;
	reg->slots[w].members--;
	if (rm->total == 0)
		reg_room_free(reg, i);
	reg_unlock(reg);
	return (0);
}

/*
 * Look up room chat: *total (if not NULL) is its members on all workers, 0
 * when there is no such room, and *rooms (if not NULL) the rooms in use.
 * Returns 0, or -1 with errno EINVAL or ENOTRECOVERABLE.
 */
int
reg_room_members(struct reg *reg, const char *chat, size_t len,
    uint32_t *total, uint32_t *rooms)
{
	uint32_t	hash, i, t = 0, r;

	if (reg_check_room(reg, chat, len) != 0)
		return (-1);
	hash = reg_hash(reg, chat, len);
	if (reg_lock(reg) != 0)
		return (-1);
	if ((i = reg_find(reg, hash, chat, len)) != REG_NONE)
		t = reg->rooms[i].total;
	r = reg->hdr->rooms;
	reg_unlock(reg);
	if (total != NULL)
		*total = t;
	if (rooms != NULL)
		*rooms = r;
	return (0);
}

/*
 * Give slot w to a new worker process pid (master, after fork): bump the
 * slot generation, zero its connections and counters, heartbeat now.  Room
 * members are left alone (the new worker may already be joining), so the
 * previous worker of the slot must have been reaped.  Returns 0, or -1
 * with errno EINVAL or ENOTRECOVERABLE.
 */
int
reg_worker_start(struct reg *reg, uint32_t w, pid_t pid)
{
	struct reg_slot	*slot;
	uint64_t	 now;

	if (reg == NULL || w >= reg->workers || pid <= 0) {
		errno = EINVAL;
		return (-1);
	}
	if (reg_now_ms(&now) != 0)
		return (-1);
	slot = &reg->slots[w];
	if (reg_lock(reg) != 0)
		return (-1);
	slot->pid = pid;
	slot->generation++;
	__atomic_store_n(&slot->connections, 0, __ATOMIC_RELAXED);
	__atomic_store_n(&slot->heartbeat, now, __ATOMIC_RELAXED);
	memset(&slot->counters, 0, sizeof slot->counters);
	reg_unlock(reg);
	return (0);
}

/*
 * Remove every member worker w had (master, once the worker is dead),
 * freeing the rooms that become empty, and free the slot.  Sets *removed
 * (if not NULL) to the members removed.  Returns 0, or -1 with errno
 * EINVAL or ENOTRECOVERABLE.
 */
int
reg_worker_reap(struct reg *reg, uint32_t w, uint64_t *removed)
{
	struct reg_slot	*slot;
	struct reg_room	*rm;
	uint32_t	 i, n, *count;
	uint64_t	 done = 0;

	if (reg == NULL || w >= reg->workers) {
		errno = EINVAL;
		return (-1);
	}
	slot = &reg->slots[w];
	if (reg_lock(reg) != 0)
		return (-1);
	for (i = 0; i < reg->capacity && slot->members != 0; i++) {
		rm = &reg->rooms[i];
		count = reg_count(reg, i, w);
		if (rm->in_use != 1 || *count == 0)
			continue;
		n = *count;
		*count = 0;
		REG_CRASH(REG_CRASH_REAP);
		rm->total -= n;
		reg->hdr->members -= n;
		slot->members -= n;
		done += n;
		if (rm->total == 0)
			reg_room_free(reg, i);
	}
	slot->pid = 0;
	__atomic_store_n(&slot->connections, 0, __ATOMIC_RELAXED);
	reg_unlock(reg);
	if (removed != NULL)
		*removed = done;
	return (0);
}

/*
 * Add delta to worker w's connection count, without the lock.  Returns 0,
 * or -1 with errno EINVAL (bad slot, or the count would leave 0..UINT32_MAX;
 * then it is unchanged).
 */
int
reg_worker_conns(struct reg *reg, uint32_t w, int delta)
{
	uint32_t	*p, old;
	int64_t		 next;

	if (reg == NULL || w >= reg->workers) {
		errno = EINVAL;
		return (-1);
	}
	p = &reg->slots[w].connections;
	old = __atomic_load_n(p, __ATOMIC_RELAXED);
	do {
		next = (int64_t)old + delta;
		if (next < 0 || next > UINT32_MAX) {
			errno = EINVAL;
			return (-1);
		}
	} while (!__atomic_compare_exchange_n(p, &old, (uint32_t)next, 0,
	    __ATOMIC_RELAXED, __ATOMIC_RELAXED));
	return (0);
}

/* Store worker w's heartbeat (CLOCK_MONOTONIC ms), without the lock. */
void
reg_worker_heartbeat(struct reg *reg, uint32_t w, uint64_t ms)
{
	if (reg != NULL && w < reg->workers)
		__atomic_store_n(&reg->slots[w].heartbeat, ms,
		    __ATOMIC_RELAXED);
}

/*
 * Returns worker w's counters in shared memory, or NULL (EINVAL).  Only the
 * worker owning slot w writes them, with plain increments and without the
 * lock; reg_worker_info() reads each field atomically, so a reader sees
 * every field whole, but not all fields at the same instant.
 */
struct reg_counters *
reg_worker_counters(struct reg *reg, uint32_t w)
{
	if (reg == NULL || w >= reg->workers) {
		errno = EINVAL;
		return (NULL);
	}
	return (&reg->slots[w].counters);
}

/*
 * Copy a snapshot of slot w into *info.  Returns 0, or -1 with errno EINVAL
 * or ENOTRECOVERABLE.
 */
int
reg_worker_info(struct reg *reg, uint32_t w, struct reg_worker_info *info)
{
	struct reg_slot		*slot;
	struct reg_counters	*c;

	if (reg == NULL || w >= reg->workers || info == NULL) {
		errno = EINVAL;
		return (-1);
	}
	slot = &reg->slots[w];
	if (reg_lock(reg) != 0)
		return (-1);
	info->pid = slot->pid;
	info->generation = slot->generation;
	reg_unlock(reg);
	info->connections = __atomic_load_n(&slot->connections,
	    __ATOMIC_RELAXED);
	info->heartbeat = __atomic_load_n(&slot->heartbeat, __ATOMIC_RELAXED);
	c = &slot->counters;
	info->counters.msgs_in = __atomic_load_n(&c->msgs_in,
	    __ATOMIC_RELAXED);
	info->counters.msgs_out = __atomic_load_n(&c->msgs_out,
	    __ATOMIC_RELAXED);
	info->counters.bytes_out = __atomic_load_n(&c->bytes_out,
	    __ATOMIC_RELAXED);
	info->counters.handshakes = __atomic_load_n(&c->handshakes,
	    __ATOMIC_RELAXED);
	info->counters.closes_slow = __atomic_load_n(&c->closes_slow,
	    __ATOMIC_RELAXED);
	info->counters.store_errors = __atomic_load_n(&c->store_errors,
	    __ATOMIC_RELAXED);
	info->counters.gaps_filled = __atomic_load_n(&c->gaps_filled,
	    __ATOMIC_RELAXED);
	info->counters.sealed_unreadable = __atomic_load_n(
	    &c->sealed_unreadable, __ATOMIC_RELAXED);
	return (0);
}

/*
 * Fill *st with the registry totals.  Returns 0, or -1 with errno EINVAL
 * or ENOTRECOVERABLE.
 */
int
reg_stats(struct reg *reg, struct reg_stats *st)
{
	struct reg_hdr	*hdr;

	if (reg == NULL || st == NULL) {
		errno = EINVAL;
		return (-1);
	}
	hdr = reg->hdr;
	if (reg_lock(reg) != 0)
		return (-1);
	st->rooms = hdr->rooms;
	st->members = hdr->members;
	st->generation = hdr->generation;
	st->master = hdr->master;
	st->repairs = hdr->repairs;
	reg_unlock(reg);
	st->room_capacity = reg->capacity;
	st->workers = reg->workers;
	return (0);
}

/* Returns the sum of the connection counts of all slots (no lock). */
uint64_t
reg_total_conns(struct reg *reg)
{
	uint64_t	sum = 0;
	uint32_t	w;

	if (reg == NULL)
		return (0);
	for (w = 0; w < reg->workers; w++)
		sum += __atomic_load_n(&reg->slots[w].connections,
		    __ATOMIC_RELAXED);
	return (sum);
}

/*
 * Test hook: arm crash point n (enum reg_crash) in this process.  The next
 * critical section that reaches it kills the process with SIGKILL, lock
 * held and writes half done, like a worker crashing there.  REG_CRASH_NONE
 * disarms.  racerd never calls it.
 */
void
reg_test_crash_point(enum reg_crash n)
{
	reg_crash_at = n;
}

/* Check the counts of room i against its entry; adds to the sums. */
static int
reg_verify_room(struct reg *reg, uint32_t i, uint64_t *members,
    uint64_t *slot_members)
{
	struct reg_room	*rm = &reg->rooms[i];
	uint32_t	*counts = reg_count(reg, i, 0), w;
	uint64_t	 sum = 0;

	for (w = 0; w < reg->workers; w++) {
		sum += counts[w];
		slot_members[w] += counts[w];
	}
	*members += sum;
	if (rm->in_use == 0)
		return (sum == 0 && rm->total == 0 ? 0 : -1);
	if (rm->in_use != 1 || rm->len == 0 || rm->len > REG_NAME_MAX ||
	    rm->hash != reg_hash(reg, rm->name, rm->len) ||
	    sum == 0 || rm->total != sum)
		return (-1);
	return (0);
}

/* Walk chains and the free list, marking rooms; each must appear once. */
static int
reg_verify_index(struct reg *reg, unsigned char *seen)
{
	struct reg_room	*rm;
	uint32_t	 b, i, n = 0;

	for (b = 0; b < reg->nbuckets; b++) {
		for (i = reg->buckets[b]; i != REG_NONE; i = rm->next) {
			if (i >= reg->capacity || seen[i])
				return (-1);
			rm = &reg->rooms[i];
			seen[i] = 1;
			n++;
			if (rm->in_use != 1 || (rm->hash &
			    (reg->nbuckets - 1)) != b)
				return (-1);
		}
	}
	if (n != reg->hdr->rooms)
		return (-1);
	for (i = reg->hdr->free_head; i != REG_NONE; i = rm->next) {
		if (i >= reg->capacity || seen[i])
			return (-1);
		rm = &reg->rooms[i];
		seen[i] = 1;
		n++;
		if (rm->in_use != 0)
			return (-1);
	}
	return (n == reg->capacity ? 0 : -1);
}

static int
reg_verify_locked(struct reg *reg, unsigned char *seen, uint64_t *slot_members)
{
	uint64_t	members = 0;
	uint32_t	i, w, rooms = 0;

	for (i = 0; i < reg->capacity; i++) {
		if (reg_verify_room(reg, i, &members, slot_members) != 0)
			return (-1);
		rooms += reg->rooms[i].in_use;
	}
	if (rooms != reg->hdr->rooms || members != reg->hdr->members)
		return (-1);
	for (w = 0; w < reg->workers; w++) {
		if (slot_members[w] != reg->slots[w].members)
			return (-1);
	}
	return (reg_verify_index(reg, seen));
}

/*
 * Test hook: check every invariant listed at the top of this file, under
 * the lock.  Returns 0 if they all hold, or -1 with errno EBADMSG (one does
 * not), ENOMEM or ENOTRECOVERABLE.  racerd never calls it.
 */
int
reg_test_verify(struct reg *reg)
{
	unsigned char	*seen;
	uint64_t	*slot_members;
	int		 rc;

	seen = calloc(reg->capacity, 1);
	slot_members = calloc(reg->workers, sizeof *slot_members);
	if (seen == NULL || slot_members == NULL) {
		free(seen);
		free(slot_members);
		errno = ENOMEM;
		return (-1);
	}
	if ((rc = reg_lock(reg)) == 0) {
		rc = reg_verify_locked(reg, seen, slot_members);
		reg_unlock(reg);
		if (rc != 0)
			errno = EBADMSG;
	}
	free(seen);
	free(slot_members);
	return (rc);
}

/* Returns 1 if reg_create replaced a stale segment to make this one. */
int
reg_replaced(struct reg *reg)
{
	return (reg->replaced);
}
