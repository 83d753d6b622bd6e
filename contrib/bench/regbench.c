/* SPDX-License-Identifier: ISC */
/* racerd: registry micro-benchmark (not a test). */
/*
 * Measures reg_join() + reg_leave() pairs per second on a private
 * registry segment with 1, 2 and 4 processes contending for its lock, as
 * workers would.  Each process is one worker slot and cycles over the
 * given number of chat ids (1 by default: every pair creates and frees the
 * same room when it is alone, the worst case for contention).  The segment
 * is unlinked as soon as it is created, so nothing is left behind.
 *
 * usage: regbench [-r rooms] [-s seconds]
 */
#include <sys/types.h>
#include <sys/wait.h>

#include <err.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "registry.h"

#define BENCH_PROCS_MAX	4
#define BENCH_NAME_LEN	32

struct bench_result {
	uint64_t	pairs;
	uint64_t	ns;
};

static uint64_t
bench_now_ns(void)
{
	struct timespec	ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		err(1, "clock_gettime");
	return ((uint64_t)ts.tv_sec * 1000000000 + (uint64_t)ts.tv_nsec);
}

/* One worker: wait for the gate to open, then cycle until time is up. */
static void
bench_child(struct reg *reg, uint32_t w, int gate, int out, uint32_t rooms,
    unsigned int seconds)
{
	struct bench_result	 res;
	char			(*names)[BENCH_NAME_LEN];
	size_t			*lens;
	uint64_t		 start, end, now;
	uint32_t		 i, r;
	char			 c;

	if ((names = calloc(rooms, sizeof *names)) == NULL ||
	    (lens = calloc(rooms, sizeof *lens)) == NULL)
		err(1, "calloc");
	for (r = 0; r < rooms; r++)
		lens[r] = snprintf(names[r], sizeof names[r], "bench-%u", r);
	if (read(gate, &c, 1) == -1)
		err(1, "read");

	start = now = bench_now_ns();
	end = start + (uint64_t)seconds * 1000000000;
	res.pairs = 0;
	r = w % rooms;
	while (now < end) {
		for (i = 0; i < 256; i++) {
			if (reg_join(reg, w, names[r], lens[r], NULL) != 0)
				err(1, "reg_join");
			if (reg_leave(reg, w, names[r], lens[r]) != 0)
				err(1, "reg_leave");
			if (++r == rooms)
				r = 0;
		}
		res.pairs += 256;
		now = bench_now_ns();
	}
	res.ns = now - start;
	if (write(out, &res, sizeof res) != sizeof res)
		err(1, "write");
	_exit(0);
}

/* Run procs workers at once; returns the pairs per second of them all. */
static double
bench_run(struct reg *reg, int procs, uint32_t rooms, unsigned int seconds)
{
	struct bench_result	res;
	pid_t			pids[BENCH_PROCS_MAX];
	double			rate = 0;
	int			gate[2], out[2], k, status;

	if (pipe(gate) == -1 || pipe(out) == -1)
		err(1, "pipe");
	for (k = 0; k < procs; k++) {
		if ((pids[k] = fork()) == -1)
			err(1, "fork");
		if (pids[k] == 0) {
			close(gate[1]);
			close(out[0]);
			bench_child(reg, k, gate[0], out[1], rooms, seconds);
		}
	}
	close(gate[0]);
	close(out[1]);
	close(gate[1]);		/* all start together */
	for (k = 0; k < procs; k++) {
		if (read(out[0], &res, sizeof res) != sizeof res)
			errx(1, "a worker failed");
		rate += (double)res.pairs * 1e9 / (double)res.ns;
	}
	close(out[0]);
	for (k = 0; k < procs; k++) {
		if (waitpid(pids[k], &status, 0) == -1)
			err(1, "waitpid");
		if (!WIFEXITED(status) || WEXITSTATUS(status) != 0)
			errx(1, "worker %d: status %#x", k, status);
	}
	return (rate);
}

int
main(int argc, char **argv)
{
	static const int	 procs[] = { 1, 2, 4 };
	struct reg		*reg;
	struct reg_stats	 st;
	char			 name[64], *cause;
	unsigned long		 rooms = 1, seconds = 2;
	double			 rate;
	size_t			 i;
	int			 ch;

	while ((ch = getopt(argc, argv, "r:s:")) != -1) {
		switch (ch) {
		case 'r':
			rooms = strtoul(optarg, NULL, 10);
			break;
		case 's':
			seconds = strtoul(optarg, NULL, 10);
			break;
		default:
			fprintf(stderr, "usage: regbench [-r rooms] "
			    "[-s seconds]\n");
			return (1);
		}
	}
	if (rooms < 1 || rooms > 65536 || seconds < 1 || seconds > 3600)
		errx(1, "rooms must be 1..65536 and seconds 1..3600");

	snprintf(name, sizeof name, "/racerd-bench-%ld", (long)getpid());
	reg = reg_create(name, rooms + BENCH_PROCS_MAX, BENCH_PROCS_MAX,
	    &cause);
	if (reg == NULL)
		errx(1, "%s", cause);
	/* Private: children inherit the mapping, the name is not needed. */
	if (reg_unlink(name) == -1)
		err(1, "reg_unlink %s", name);

	printf("regbench: %lu chat id(s), %lu s per run\n", rooms, seconds);
	for (i = 0; i < sizeof procs / sizeof procs[0]; i++) {
		rate = bench_run(reg, procs[i], rooms, seconds);
		printf("  %d process%s: %12.0f join+leave pairs/s "
		    "(%.0f ns per pair)\n", procs[i], procs[i] == 1 ? "  " :
		    "es", rate, 1e9 / rate);
		fflush(stdout);
	}
	if (reg_stats(reg, &st) == -1)
		err(1, "reg_stats");
	if (st.rooms != 0 || st.members != 0 || st.repairs != 0)
		errx(1, "registry not empty after the runs: %u rooms, %llu "
		    "members, %llu repairs", st.rooms,
		    (unsigned long long)st.members,
		    (unsigned long long)st.repairs);
	reg_close(reg);
	return (0);
}
