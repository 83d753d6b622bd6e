/* SPDX-License-Identifier: ISC */
/* racerd: shared-memory room registry. */
/*
 * The registry is one POSIX shared-memory segment created by the master
 * before it forks and inherited by every worker.  It holds a header, one
 * slot per worker and a fixed-capacity table of rooms (chat ids) with a
 * member count per worker.  Everything in it is an index or an offset,
 * never a pointer, so it means the same in every process.
 *
 * One process-shared robust mutex guards the whole segment.  Only
 * reg_lock() and reg_unlock() touch it: a holder that dies is detected by
 * the next locker (EOWNERDEAD), which repairs the counts and marks the
 * mutex consistent.  A mutex that cannot be recovered (ENOTRECOVERABLE)
 * is reported to the caller: a worker that meets it exits (RD_EXIT_SHM)
 * and the master starts another.
 *
 * Functions return 0 on success and -1 on failure with errno set:
 * ENOSPC   the room table is full (a clear refusal, nothing changed)
 * ENOENT   no such room / member
 * ENOTRECOVERABLE  the lock is lost; the segment must be replaced
 * EEXIST   (reg_create) a live master owns the segment
 * EINVAL   bad arguments
 * Each function is described where it is defined, in registry.c.
 */
#ifndef RACERD_REGISTRY_H
#define RACERD_REGISTRY_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

#define REG_MAGIC		0x52414345u	/* "RACE" */
#define REG_VERSION		1
#define REG_NAME_MAX		128	/* longest chat id */
#define REG_WORKERS_MAX		256
#define REG_NONE		UINT32_MAX

/* Per-worker counters, written by the owning worker without the lock. */
struct reg_counters {
	uint64_t	msgs_in;	/* messages received from clients */
	uint64_t	msgs_out;	/* frames delivered to clients */
	uint64_t	bytes_out;
	uint64_t	handshakes;
	uint64_t	closes_slow;	/* 4208 closes */
	uint64_t	store_errors;
	uint64_t	gaps_filled;
	uint64_t	sealed_unreadable;	/* bodies that did not open */
};

/* A snapshot of one worker slot. */
struct reg_worker_info {
	pid_t			pid;		/* 0 when the slot is free */
	uint32_t		generation;	/* bumped at every (re)spawn */
	uint32_t		connections;
	uint64_t		heartbeat;	/* CLOCK_MONOTONIC ms */
	struct reg_counters	counters;
};

struct reg_stats {
	uint32_t	rooms;		/* rooms in use */
	uint32_t	room_capacity;
	uint64_t	members;	/* all members of all rooms */
	uint32_t	workers;	/* worker slots */
	uint32_t	generation;
	pid_t		master;
	uint64_t	repairs;	/* EOWNERDEAD recoveries so far */
};

struct reg;

/* Creation and lifetime (master). */
struct reg	*reg_create(const char *, uint32_t, uint32_t, char **);
struct reg	*reg_attach(const char *, char **);
void		 reg_close(struct reg *);
int		 reg_unlink(const char *);
const char	*reg_name(struct reg *);
int		 reg_replaced(struct reg *);

/* Locking. */
int		 reg_lock(struct reg *);
void		 reg_unlock(struct reg *);

/* Rooms (workers). */
int		 reg_join(struct reg *, uint32_t, const char *, size_t,
		     uint32_t *);
int		 reg_leave(struct reg *, uint32_t, const char *, size_t);
/* reg_room_members(reg, chat, len, &total, &rooms_in_use) */
int		 reg_room_members(struct reg *, const char *, size_t,
		     uint32_t *, uint32_t *);

/* Workers. */
int		 reg_worker_start(struct reg *, uint32_t, pid_t);
int		 reg_worker_reap(struct reg *, uint32_t, uint64_t *);
int		 reg_worker_conns(struct reg *, uint32_t, int);
void		 reg_worker_heartbeat(struct reg *, uint32_t, uint64_t);
struct reg_counters *reg_worker_counters(struct reg *, uint32_t);
int		 reg_worker_info(struct reg *, uint32_t,
		     struct reg_worker_info *);
int		 reg_stats(struct reg *, struct reg_stats *);
uint64_t	 reg_total_conns(struct reg *);

/*
 * Test hooks, for tests/check_registry.c only; racerd never calls them.
 * reg_test_crash_point() makes this process SIGKILL itself at the named
 * point of its next critical section, lock held and writes half done.
 * reg_test_verify() checks every invariant of the segment under the lock.
 */
enum reg_crash {
	REG_CRASH_NONE,
	REG_CRASH_JOIN_NAME,	/* new room: name half written, not in use */
	REG_CRASH_JOIN_LINK,	/* new room: in use, not indexed, no members */
	REG_CRASH_JOIN_COUNT,	/* worker count raised, room total not */
	REG_CRASH_LEAVE_COUNT,	/* worker count lowered, room total not */
	REG_CRASH_LEAVE_FREE,	/* empty room marked free, still indexed */
	REG_CRASH_REAP		/* reap: one room's count cleared, total not */
};
void		 reg_test_crash_point(enum reg_crash);
int		 reg_test_verify(struct reg *);

#endif
