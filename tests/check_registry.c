/* SPDX-License-Identifier: ISC */
/* racerd: unit tests for shm/registry.c (Check). */
/*
 * The registry is shared between processes, so these tests fork real
 * processes: racing joiners, a lock holder that dies, a live or dead
 * master.  Children never call ck_assert (its failure path belongs to the
 * test process): they report with C_CHECK and their exit status, which
 * the test asserts.
 *
 * Each test names its segments /racerd-test-<pid>-<n> after its own
 * process, and the checked teardown unlinks them.  In CK_FORK mode a
 * failed assertion _exit()s the test process, so a checked teardown does
 * not run after a failure: the checked setup therefore also starts a
 * guardian, out of the test's process group (Check kills that group), that
 * unlinks the same names when the test process and its children are gone.
 */
#include <sys/types.h>
#include <sys/mman.h>
#include <sys/wait.h>

#include <check.h>
#include <errno.h>
#include <fcntl.h>
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
#include "testutil.h"

#define T_NAMES		4	/* segment names per test */
#define T_CHILDREN	8	/* most children a test forks at once */
#define T_WAIT_MS	8000	/* how long a child may take */

#define C_CHECK(x) do {							\
	if (!(x)) {							\
		fprintf(stderr, "%s:%d: child %ld: %s failed: %s\n",	\
		    __FILE__, __LINE__, (long)getpid(), #x,		\
		    strerror(errno));					\
		_exit(1);						\
	}								\
} while (0)

static char	 t_names[T_NAMES][64];
static int	 t_guard = -1;
static pid_t	 t_guard_pid = -1;

/* State shared with children (MAP_SHARED), for barriers and counters. */
struct t_shared {
	pthread_barrier_t	barrier;
	volatile uint64_t	counter;
};

static void
t_guardian(int fd, int ready)
{
	char	c;
	int	n;

	/* Leave the test's process group: Check kills it after the test. */
	if (setsid() == -1)
		_exit(1);
	close(ready);
	while (read(fd, &c, 1) == -1 && errno == EINTR)
		/* nothing */;
	for (n = 0; n < T_NAMES; n++)
		shm_unlink(t_names[n]);
	_exit(0);
}

static void
t_setup(void)
{
	char	c;
	int	p[2], ready[2], n;

	for (n = 0; n < T_NAMES; n++)
		snprintf(t_names[n], sizeof t_names[n], "/racerd-test-%ld-%d",
		    (long)getpid(), n);
	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(pipe(ready), 0);
	t_guard_pid = fork();
	ck_assert_int_ne(t_guard_pid, -1);
	if (t_guard_pid == 0) {
		close(p[1]);
		close(ready[0]);
		t_guardian(p[0], ready[1]);
	}
	close(p[0]);
	close(ready[1]);
	/* Until it has left our process group, a failure would kill it. */
	ck_assert_int_eq(read(ready[0], &c, 1), 0);
	close(ready[0]);
	t_guard = p[1];
}

static void
t_teardown(void)
{
	int	n, rc, status;

	for (n = 0; n < T_NAMES; n++) {
		rc = reg_unlink(t_names[n]);
		ck_assert_msg(rc == 0 || errno == ENOENT, "unlink %s: %s",
		    t_names[n], strerror(errno));
	}
	close(t_guard);
	ck_assert_int_eq(waitpid(t_guard_pid, &status, 0), t_guard_pid);
}

static struct reg *
t_create(int n, uint32_t rooms, uint32_t workers)
{
	struct reg	*reg;
	char		*cause = NULL;

	reg = reg_create(t_names[n], rooms, workers, &cause);
	ck_assert_msg(reg != NULL, "reg_create: %s", cause);
	ck_assert_ptr_null(cause);
	return (reg);
}

static struct t_shared *
t_shared_new(unsigned int parties)
{
	struct t_shared		*sh;
	pthread_barrierattr_t	 attr;

	sh = mmap(NULL, sizeof *sh, PROT_READ|PROT_WRITE,
	    MAP_SHARED|MAP_ANONYMOUS, -1, 0);
	ck_assert_ptr_ne(sh, MAP_FAILED);
	ck_assert_int_eq(pthread_barrierattr_init(&attr), 0);
	ck_assert_int_eq(pthread_barrierattr_setpshared(&attr,
	    PTHREAD_PROCESS_SHARED), 0);
	ck_assert_int_eq(pthread_barrier_init(&sh->barrier, &attr, parties),
	    0);
	ck_assert_int_eq(pthread_barrierattr_destroy(&attr), 0);
	sh->counter = 0;
	return (sh);
}

static void
t_shared_free(struct t_shared *sh)
{
	ck_assert_int_eq(pthread_barrier_destroy(&sh->barrier), 0);
	ck_assert_int_eq(munmap(sh, sizeof *sh), 0);
}

/* Wait for pid; returns its status.  A child that hangs fails the test. */
static int
t_wait(pid_t pid)
{
	struct timespec	ts = { 0, 1000000 };
	int		status, ms;
	pid_t		rc;

	for (ms = 0; ms < T_WAIT_MS; ms++) {
		rc = waitpid(pid, &status, WNOHANG);
		ck_assert_int_ne(rc, -1);
		if (rc == pid)
			return (status);
		nanosleep(&ts, NULL);
	}
	kill(pid, SIGKILL);
	waitpid(pid, &status, 0);
	ck_abort_msg("child %ld still running after %d ms (lost wake-up?)",
	    (long)pid, T_WAIT_MS);
	return (-1);
}

static void
t_wait_ok(pid_t pid)
{
	int	status;

	status = t_wait(pid);
	ck_assert_msg(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	    "child %ld: status %#x", (long)pid, status);
}

/* Wait for a child that must have been killed at a crash point. */
static void
t_wait_killed(pid_t pid)
{
	int	status;

	status = t_wait(pid);
	ck_assert_msg(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL,
	    "child %ld: status %#x, not killed at its crash point",
	    (long)pid, status);
}

/* Run fn(k, arg) in n children at once, k = 0..n-1; all must exit 0. */
static void
t_run(int n, void (*fn)(int, void *), void *arg)
{
	pid_t	pids[T_CHILDREN];
	int	k;

	ck_assert_int_le(n, T_CHILDREN);
	for (k = 0; k < n; k++) {
		pids[k] = fork();
		ck_assert_int_ne(pids[k], -1);
		if (pids[k] == 0) {
			fn(k, arg);
			_exit(0);
		}
	}
	for (k = 0; k < n; k++)
		t_wait_ok(pids[k]);
}

static size_t
t_room(char *buf, size_t size, const char *fmt, ...)
	__attribute__((__format__(__printf__, 3, 4)));

static size_t
t_room(char *buf, size_t size, const char *fmt, ...)
{
	va_list	ap;
	int	len;

	va_start(ap, fmt);
	len = vsnprintf(buf, size, fmt, ap);
	va_end(ap);
	if (len < 0 || (size_t)len >= size)
		abort();
	return (len);
}

static int
t_join(struct reg *reg, uint32_t w, const char *chat)
{
	return (reg_join(reg, w, chat, strlen(chat), NULL));
}

static int
t_leave(struct reg *reg, uint32_t w, const char *chat)
{
	return (reg_leave(reg, w, chat, strlen(chat)));
}

static uint32_t
t_members(struct reg *reg, const char *chat)
{
	uint32_t	total = UINT32_MAX;

	ck_assert_int_eq(reg_room_members(reg, chat, strlen(chat), &total,
	    NULL), 0);
	return (total);
}

static void
t_expect(struct reg *reg, uint32_t rooms, uint64_t members)
{
	struct reg_stats	st;

	ck_assert_int_eq(reg_test_verify(reg), 0);
	ck_assert_int_eq(reg_stats(reg, &st), 0);
	ck_assert_uint_eq(st.rooms, rooms);
	ck_assert_uint_eq(st.members, members);
}

/*
 * Every free entry must be reachable: fill the table to capacity with new
 * rooms, check that one more is refused, then empty it again.
 */
static void
t_fill(struct reg *reg, uint32_t w)
{
	struct reg_stats	st;
	char			chat[64];
	size_t			len;
	uint32_t		i, n;

	ck_assert_int_eq(reg_stats(reg, &st), 0);
	n = st.room_capacity - st.rooms;
	for (i = 0; i < n; i++) {
		len = t_room(chat, sizeof chat, "fill-%u", i);
		ck_assert_int_eq(reg_join(reg, w, chat, len, NULL), 0);
	}
	len = t_room(chat, sizeof chat, "fill-%u", n);
	ck_assert_int_eq(reg_join(reg, w, chat, len, NULL), -1);
	ck_assert_int_eq(errno, ENOSPC);
	t_expect(reg, st.room_capacity, st.members + n);
	for (i = 0; i < n; i++) {
		len = t_room(chat, sizeof chat, "fill-%u", i);
		ck_assert_int_eq(reg_leave(reg, w, chat, len), 0);
	}
	t_expect(reg, st.rooms, st.members);
}

/* Creation, attachment, arguments. */

START_TEST(test_create_attach)
{
	struct reg		*reg, *other;
	struct reg_stats	 st;
	char			*cause = NULL;
	uint32_t		 total;

	reg = t_create(0, 100, 4);
	ck_assert_str_eq(reg_name(reg), t_names[0]);
	ck_assert_int_eq(reg_stats(reg, &st), 0);
	ck_assert_uint_eq(st.room_capacity, 100);
	ck_assert_uint_eq(st.workers, 4);
	ck_assert_uint_eq(st.generation, 1);
	ck_assert_int_eq(st.master, getpid());
	ck_assert_uint_eq(st.rooms, 0);
	ck_assert_uint_eq(st.repairs, 0);
	ck_assert_int_eq(t_join(reg, 3, "lobby"), 0);

	other = reg_attach(t_names[0], &cause);
	ck_assert_msg(other != NULL, "reg_attach: %s", cause);
	ck_assert_int_eq(reg_join(other, 1, "lobby", 5, &total), 0);
	ck_assert_uint_eq(total, 2);
	ck_assert_uint_eq(t_members(reg, "lobby"), 2);
	reg_close(other);
	t_expect(reg, 1, 2);
	reg_close(reg);
}
END_TEST

START_TEST(test_attach_errors)
{
	char	*cause = NULL;
	int	 fd;

	ck_assert_ptr_null(reg_attach(t_names[0], &cause));
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_ptr_nonnull(cause);
	free(cause);
	cause = NULL;

	fd = shm_open(t_names[0], O_RDWR|O_CREAT|O_EXCL, 0600);
	ck_assert_int_ne(fd, -1);
	ck_assert_int_eq(ftruncate(fd, 65536), 0);
	close(fd);
	ck_assert_ptr_null(reg_attach(t_names[0], &cause));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_nonnull(cause);
	free(cause);
}
END_TEST

START_TEST(test_create_bad_args)
{
	char	*cause = NULL;

	ck_assert_ptr_null(reg_create(t_names[0], 16, 0, &cause));
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_nonnull(cause);
	free(cause);
	cause = NULL;
	ck_assert_ptr_null(reg_create(t_names[0], 16, REG_WORKERS_MAX + 1,
	    &cause));
	ck_assert_int_eq(errno, EINVAL);
	free(cause);
	cause = NULL;
	ck_assert_ptr_null(reg_create(t_names[0], 0, 2, &cause));
	ck_assert_int_eq(errno, EINVAL);
	free(cause);
	cause = NULL;
	ck_assert_ptr_null(reg_create("racerd-no-slash", 16, 2, &cause));
	ck_assert_int_eq(errno, EINVAL);
	free(cause);
}
END_TEST

START_TEST(test_room_args)
{
	struct reg	*reg;
	char		 name[REG_NAME_MAX + 1], other[REG_NAME_MAX];
	uint32_t	 total, rooms;

	reg = t_create(0, 8, 2);
	memset(name, 'x', sizeof name);
	ck_assert_int_eq(reg_join(reg, 0, name, 0, NULL), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(reg_join(reg, 0, name, REG_NAME_MAX + 1, NULL), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(reg_join(reg, 2, name, 1, NULL), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(reg_join(reg, 0, NULL, 1, NULL), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(reg_leave(reg, 0, name, 0), -1);
	ck_assert_int_eq(errno, EINVAL);
	t_expect(reg, 0, 0);

	/* The longest id, not NUL-terminated, and one differing at its end. */
	memcpy(other, name, sizeof other);
	other[REG_NAME_MAX - 1] = 'y';
	ck_assert_int_eq(reg_join(reg, 0, name, REG_NAME_MAX, &total), 0);
	ck_assert_uint_eq(total, 1);
	ck_assert_int_eq(reg_join(reg, 1, other, REG_NAME_MAX, &total), 0);
	ck_assert_uint_eq(total, 1);
	ck_assert_int_eq(reg_join(reg, 0, "a\0b", 3, NULL), 0);
	ck_assert_int_eq(reg_room_members(reg, "a\0c", 3, &total, &rooms), 0);
	ck_assert_uint_eq(total, 0);
	ck_assert_uint_eq(rooms, 3);
	ck_assert_int_eq(reg_room_members(reg, "a", 1, &total, NULL), 0);
	ck_assert_uint_eq(total, 0);

	/* Leaving where one is not a member. */
	ck_assert_int_eq(t_leave(reg, 0, "nowhere"), -1);
	ck_assert_int_eq(errno, ENOENT);
	ck_assert_int_eq(reg_leave(reg, 1, name, REG_NAME_MAX), -1);
	ck_assert_int_eq(errno, ENOENT);
	t_expect(reg, 3, 3);
	ck_assert_int_eq(reg_leave(reg, 1, other, REG_NAME_MAX), 0);
	ck_assert_int_eq(reg_leave(reg, 1, other, REG_NAME_MAX), -1);
	ck_assert_int_eq(errno, ENOENT);
	t_expect(reg, 2, 2);
	reg_close(reg);
}
END_TEST

/* 7: stale and live segments. */

START_TEST(test_stale_dead_master)
{
	struct reg		*reg;
	struct reg_stats	 st;
	pid_t			 pid;

	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		/* A master that dies without unlinking its segment. */
		reg = reg_create(t_names[0], 16, 2, NULL);
		C_CHECK(reg != NULL);
		C_CHECK(t_join(reg, 0, "left-behind") == 0);
		_exit(0);
	}
	t_wait_ok(pid);
	reg = t_create(0, 32, 3);
	ck_assert_int_eq(reg_stats(reg, &st), 0);
	ck_assert_uint_eq(st.generation, 2);
	ck_assert_int_eq(st.master, getpid());
	ck_assert_uint_eq(st.room_capacity, 32);
	ck_assert_uint_eq(t_members(reg, "left-behind"), 0);
	t_expect(reg, 0, 0);
	reg_close(reg);
}
END_TEST

START_TEST(test_stale_garbage)
{
	struct reg		*reg;
	struct reg_stats	 st;
	char			 junk[8192];
	int			 fd;

	fd = shm_open(t_names[0], O_RDWR|O_CREAT|O_EXCL, 0600);
	ck_assert_int_ne(fd, -1);
	memset(junk, 0xa5, sizeof junk);
	ck_assert_int_eq(write(fd, junk, sizeof junk), sizeof junk);
	close(fd);
	reg = t_create(0, 16, 2);
	ck_assert_int_eq(reg_stats(reg, &st), 0);
	ck_assert_uint_eq(st.generation, 1);
	t_expect(reg, 0, 0);
	reg_close(reg);

	/* An empty one, as left by a master that died in reg_create. */
	fd = shm_open(t_names[1], O_RDWR|O_CREAT|O_EXCL, 0600);
	ck_assert_int_ne(fd, -1);
	close(fd);
	reg = t_create(1, 16, 2);
	ck_assert_int_eq(reg_stats(reg, &st), 0);
	ck_assert_uint_eq(st.generation, 1);
	reg_close(reg);
}
END_TEST

START_TEST(test_live_master)
{
	struct reg		*reg;
	struct reg_stats	 st;
	char			*cause = NULL, want[256], c;
	int			 ready[2], go[2];
	pid_t			 pid;

	ck_assert_int_eq(pipe(ready), 0);
	ck_assert_int_eq(pipe(go), 0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		close(ready[0]);
		close(go[1]);
		reg = reg_create(t_names[0], 16, 2, NULL);
		C_CHECK(reg != NULL);
		C_CHECK(t_join(reg, 1, "live") == 0);
		C_CHECK(write(ready[1], "r", 1) == 1);
		C_CHECK(read(go[0], &c, 1) == 0);
		_exit(0);
	}
	close(ready[1]);
	close(go[0]);
	ck_assert_int_eq(read(ready[0], &c, 1), 1);

	ck_assert_ptr_null(reg_create(t_names[0], 16, 2, &cause));
	ck_assert_int_eq(errno, EEXIST);
	ck_assert_ptr_nonnull(cause);
	snprintf(want, sizeof want, "registry %s is in use by a running "
	    "racerd (master pid %ld)", t_names[0], (long)pid);
	ck_assert_str_eq(cause, want);
	free(cause);

	/* The live segment was left alone. */
	reg = reg_attach(t_names[0], NULL);
	ck_assert_ptr_nonnull(reg);
	ck_assert_int_eq(reg_stats(reg, &st), 0);
	ck_assert_int_eq(st.master, pid);
	ck_assert_uint_eq(t_members(reg, "live"), 1);
	reg_close(reg);

	/* Once that master is gone, its segment is stale. */
	close(go[1]);
	t_wait_ok(pid);
	close(ready[0]);
	reg = t_create(0, 16, 2);
	ck_assert_int_eq(reg_stats(reg, &st), 0);
	ck_assert_uint_eq(st.generation, 2);
	reg_close(reg);
}
END_TEST

START_TEST(test_same_master_replaces)
{
	struct reg		*old, *reg;
	struct reg_stats	 st;

	/* The master replaces its own segment, e.g. after ENOTRECOVERABLE. */
	old = t_create(0, 16, 2);
	ck_assert_int_eq(t_join(old, 0, "x"), 0);
	reg = t_create(0, 16, 2);
	ck_assert_int_eq(reg_stats(reg, &st), 0);
	ck_assert_uint_eq(st.generation, 2);
	t_expect(reg, 0, 0);
	t_expect(old, 1, 1);
	reg_close(old);
	reg_close(reg);
}
END_TEST

/* Two-process contention: catches a lock that does not exclude. */

struct t_ctx {
	struct reg		*reg;
	struct t_shared		*sh;
	int			 iterations;
	int			 rooms;
};

static void
t_lock_child(int k, void *arg)
{
	struct t_ctx	*ctx = arg;
	uint64_t	 v;
	volatile int	 spin;
	int		 i;

	(void)k;
	pthread_barrier_wait(&ctx->sh->barrier);
	for (i = 0; i < ctx->iterations; i++) {
		C_CHECK(reg_lock(ctx->reg) == 0);
		/* A wide read-modify-write: any overlap loses an update. */
		v = ctx->sh->counter;
		for (spin = 0; spin < 20; spin++)
			/* nothing */;
		ctx->sh->counter = v + 1;
		reg_unlock(ctx->reg);
	}
}

static void
t_join_child(int k, void *arg)
{
	struct t_ctx	*ctx = arg;
	int		 i;

	pthread_barrier_wait(&ctx->sh->barrier);
	for (i = 0; i < ctx->iterations; i++)
		C_CHECK(t_join(ctx->reg, k, "contended") == 0);
	pthread_barrier_wait(&ctx->sh->barrier);
	pthread_barrier_wait(&ctx->sh->barrier);
	for (i = 0; i < ctx->iterations; i++)
		C_CHECK(t_leave(ctx->reg, k, "contended") == 0);
}

START_TEST(test_lock_excludes)
{
	struct t_ctx	ctx;

	ctx.reg = t_create(0, 16, 2);
	ctx.sh = t_shared_new(2);
	ctx.iterations = 50000;
	t_run(2, t_lock_child, &ctx);
	ck_assert_uint_eq(ctx.sh->counter, 100000);
	t_expect(ctx.reg, 0, 0);
	t_shared_free(ctx.sh);
	reg_close(ctx.reg);
}
END_TEST

START_TEST(test_join_counts_exact)
{
	struct t_ctx	ctx;
	pid_t		pids[2];
	int		k;

	ctx.reg = t_create(0, 16, 2);
	ctx.sh = t_shared_new(3);
	ctx.iterations = 5000;
	for (k = 0; k < 2; k++) {
		pids[k] = fork();
		ck_assert_int_ne(pids[k], -1);
		if (pids[k] == 0) {
			t_join_child(k, &ctx);
			_exit(0);
		}
	}
	pthread_barrier_wait(&ctx.sh->barrier);
	pthread_barrier_wait(&ctx.sh->barrier);
	/* Between the phases: all joins done, no leave started. */
	ck_assert_uint_eq(t_members(ctx.reg, "contended"), 10000);
	t_expect(ctx.reg, 1, 10000);
	pthread_barrier_wait(&ctx.sh->barrier);
	for (k = 0; k < 2; k++)
		t_wait_ok(pids[k]);
	t_expect(ctx.reg, 0, 0);
	t_shared_free(ctx.sh);
	reg_close(ctx.reg);
}
END_TEST

/* 1: racing first joins create exactly one entry. */

static void
t_first_join_child(int k, void *arg)
{
	struct t_ctx	*ctx = arg;
	char		 chat[64];
	size_t		 len;
	uint32_t	 total;
	int		 i;

	for (i = 0; i < ctx->rooms; i++) {
		len = t_room(chat, sizeof chat, "first-%d", i);
		pthread_barrier_wait(&ctx->sh->barrier);
		C_CHECK(reg_join(ctx->reg, k, chat, len, &total) == 0);
		C_CHECK(total == 1 || total == 2);
	}
}

START_TEST(test_first_join_race)
{
	struct t_ctx	ctx;
	char		chat[64];
	int		i;

	ctx.reg = t_create(0, 1024, 2);
	ctx.sh = t_shared_new(2);
	ctx.rooms = 1000;
	t_run(2, t_first_join_child, &ctx);
	for (i = 0; i < ctx.rooms; i++) {
		t_room(chat, sizeof chat, "first-%d", i);
		ck_assert_uint_eq(t_members(ctx.reg, chat), 2);
	}
	t_expect(ctx.reg, 1000, 2000);
	t_shared_free(ctx.sh);
	reg_close(ctx.reg);
}
END_TEST

/* 2: churn by 8 processes leaves nothing behind. */

static void
t_churn_child(int k, void *arg)
{
	struct t_ctx	*ctx = arg;
	char		 chat[64];
	size_t		 len;
	uint32_t	 total;
	int		 i;

	pthread_barrier_wait(&ctx->sh->barrier);
	for (i = 0; i < ctx->iterations; i++) {
		len = t_room(chat, sizeof chat, "churn-%d",
		    (k * 7 + i) % ctx->rooms);
		C_CHECK(reg_join(ctx->reg, k, chat, len, &total) == 0);
		C_CHECK(total >= 1 && total <= T_CHILDREN);
		C_CHECK(reg_leave(ctx->reg, k, chat, len) == 0);
	}
}

START_TEST(test_churn)
{
	struct t_ctx	ctx;

	ctx.reg = t_create(0, 128, 8);
	ctx.sh = t_shared_new(8);
	ctx.iterations = 2000;
	ctx.rooms = 1;
	t_run(8, t_churn_child, &ctx);
	t_expect(ctx.reg, 0, 0);
	ctx.rooms = 100;
	t_run(8, t_churn_child, &ctx);
	t_expect(ctx.reg, 0, 0);
	t_fill(ctx.reg, 0);
	t_shared_free(ctx.sh);
	reg_close(ctx.reg);
}
END_TEST

/* 3: last leaves free a room once; joins racing them stay consistent. */

static void
t_last_leave_child(int k, void *arg)
{
	struct t_ctx	*ctx = arg;
	uint32_t	 total, rooms;
	int		 i;

	for (i = 0; i < ctx->iterations; i++) {
		pthread_barrier_wait(&ctx->sh->barrier);
		C_CHECK(t_join(ctx->reg, k, "hot") == 0);
		pthread_barrier_wait(&ctx->sh->barrier);
		C_CHECK(t_leave(ctx->reg, k, "hot") == 0);
		pthread_barrier_wait(&ctx->sh->barrier);
		/* Both left: one free, no wrap-around of the room count. */
		C_CHECK(reg_room_members(ctx->reg, "hot", 3, &total,
		    &rooms) == 0);
		C_CHECK(total == 0 && rooms == 0);
	}
}

static void
t_join_vs_leave_child(int k, void *arg)
{
	struct t_ctx	*ctx = arg;
	uint32_t	 total, rooms;
	int		 i;

	pthread_barrier_wait(&ctx->sh->barrier);
	for (i = 0; i < ctx->iterations; i++) {
		C_CHECK(reg_join(ctx->reg, k, "hot", 3, &total) == 0);
		C_CHECK(total >= 1 && total <= 4);
		/* One id in play: a second entry for it would show here. */
		C_CHECK(reg_room_members(ctx->reg, "hot", 3, &total,
		    &rooms) == 0);
		C_CHECK(total >= 1 && rooms == 1);
		C_CHECK(t_leave(ctx->reg, k, "hot") == 0);
		if (k == 0 && i % 1000 == 0)
			C_CHECK(reg_test_verify(ctx->reg) == 0);
	}
}

START_TEST(test_last_leave_once)
{
	struct t_ctx	ctx;

	ctx.reg = t_create(0, 8, 4);
	ctx.sh = t_shared_new(2);
	ctx.iterations = 5000;
	t_run(2, t_last_leave_child, &ctx);
	t_expect(ctx.reg, 0, 0);
	t_fill(ctx.reg, 0);
	t_shared_free(ctx.sh);
	reg_close(ctx.reg);
}
END_TEST

START_TEST(test_join_races_last_leave)
{
	struct t_ctx	ctx;

	ctx.reg = t_create(0, 8, 4);
	ctx.sh = t_shared_new(4);
	ctx.iterations = 20000;
	t_run(4, t_join_vs_leave_child, &ctx);
	t_expect(ctx.reg, 0, 0);
	t_fill(ctx.reg, 1);
	t_shared_free(ctx.sh);
	reg_close(ctx.reg);
}
END_TEST

/* 4: a lock holder that dies. */

/* The state each crash test starts from: 3 rooms, 5 members. */
static struct reg *
t_crash_setup(int n)
{
	struct reg	*reg;

	reg = t_create(n, 8, 3);
	ck_assert_int_eq(t_join(reg, 0, "a"), 0);
	ck_assert_int_eq(t_join(reg, 0, "b"), 0);
	ck_assert_int_eq(t_join(reg, 1, "a"), 0);
	ck_assert_int_eq(t_join(reg, 1, "c"), 0);
	ck_assert_int_eq(t_join(reg, 1, "c"), 0);
	t_expect(reg, 3, 5);
	return (reg);
}

static void
t_expect_repairs(struct reg *reg, uint64_t repairs)
{
	struct reg_stats	st;

	ck_assert_int_eq(reg_stats(reg, &st), 0);
	ck_assert_uint_eq(st.repairs, repairs);
}

START_TEST(test_holder_dies)
{
	struct reg	*reg;
	pid_t		 pid;

	reg = t_crash_setup(0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		C_CHECK(reg_lock(reg) == 0);
		_exit(0);
	}
	t_wait_ok(pid);
	/* The next locker (here reg_test_verify) repairs. */
	t_expect(reg, 3, 5);
	t_expect_repairs(reg, 1);

	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		C_CHECK(reg_lock(reg) == 0);
		raise(SIGKILL);
		_exit(1);
	}
	t_wait_killed(pid);
	ck_assert_int_eq(t_join(reg, 2, "b"), 0);
	t_expect_repairs(reg, 2);
	t_expect(reg, 3, 6);
	ck_assert_uint_eq(t_members(reg, "b"), 2);
	t_fill(reg, 2);
	reg_close(reg);
}
END_TEST

/* Run op as worker 1 in a child that dies at crash point n. */
static void
t_crash_in(struct reg *reg, enum reg_crash n, const char *op,
    const char *chat)
{
	pid_t	pid;

	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		reg_test_crash_point(n);
		if (strcmp(op, "join") == 0)
			t_join(reg, 1, chat);
		else if (strcmp(op, "leave") == 0)
			t_leave(reg, 1, chat);
		else
			reg_worker_reap(reg, 1, NULL);
		_exit(0);
	}
	t_wait_killed(pid);
}

START_TEST(test_crash_join_new)
{
	struct reg	*reg;

	/* Half-written name: the room must not exist. */
	reg = t_crash_setup(0);
	t_crash_in(reg, REG_CRASH_JOIN_NAME, "join", "a-new-room-name");
	t_expect(reg, 3, 5);
	t_expect_repairs(reg, 1);
	ck_assert_uint_eq(t_members(reg, "a-new-room-name"), 0);
	t_fill(reg, 0);
	reg_close(reg);

	/* In use but unindexed and empty: freed, not leaked. */
	reg = t_crash_setup(1);
	t_crash_in(reg, REG_CRASH_JOIN_LINK, "join", "another-room");
	t_expect(reg, 3, 5);
	t_expect_repairs(reg, 1);
	ck_assert_uint_eq(t_members(reg, "another-room"), 0);
	ck_assert_int_eq(t_join(reg, 2, "another-room"), 0);
	t_expect(reg, 4, 6);
	t_fill(reg, 0);
	reg_close(reg);

	/* First member counted, room total not: a complete, findable room. */
	reg = t_crash_setup(2);
	t_crash_in(reg, REG_CRASH_JOIN_COUNT, "join", "a-fresh-room");
	t_expect(reg, 4, 6);
	t_expect_repairs(reg, 1);
	ck_assert_uint_eq(t_members(reg, "a-fresh-room"), 1);
	ck_assert_int_eq(t_leave(reg, 1, "a-fresh-room"), 0);
	t_expect(reg, 3, 5);
	t_fill(reg, 0);
	reg_close(reg);
}
END_TEST

START_TEST(test_crash_join_count)
{
	struct reg	*reg;

	/* Worker count raised, total not: the count wins. */
	reg = t_crash_setup(0);
	t_crash_in(reg, REG_CRASH_JOIN_COUNT, "join", "a");
	t_expect(reg, 3, 6);
	t_expect_repairs(reg, 1);
	ck_assert_uint_eq(t_members(reg, "a"), 3);
	ck_assert_int_eq(t_leave(reg, 1, "a"), 0);
	ck_assert_int_eq(t_leave(reg, 1, "a"), 0);
	ck_assert_int_eq(t_leave(reg, 1, "a"), -1);
	t_expect(reg, 3, 4);
	reg_close(reg);
}
END_TEST

START_TEST(test_crash_leave)
{
	struct reg	*reg;

	/* Count lowered, total not. */
	reg = t_crash_setup(0);
	t_crash_in(reg, REG_CRASH_LEAVE_COUNT, "leave", "a");
	t_expect(reg, 3, 4);
	t_expect_repairs(reg, 1);
	ck_assert_uint_eq(t_members(reg, "a"), 1);
	reg_close(reg);

	/* Last member's count lowered, room not freed yet: repair frees it. */
	reg = t_crash_setup(1);
	ck_assert_int_eq(t_leave(reg, 1, "c"), 0);
	t_crash_in(reg, REG_CRASH_LEAVE_COUNT, "leave", "c");
	t_expect(reg, 2, 3);
	ck_assert_uint_eq(t_members(reg, "c"), 0);
	t_fill(reg, 0);
	reg_close(reg);

	/* Marked free but still indexed. */
	reg = t_crash_setup(2);
	ck_assert_int_eq(t_leave(reg, 1, "c"), 0);
	t_crash_in(reg, REG_CRASH_LEAVE_FREE, "leave", "c");
	t_expect(reg, 2, 3);
	t_expect_repairs(reg, 1);
	ck_assert_uint_eq(t_members(reg, "c"), 0);
	ck_assert_int_eq(t_join(reg, 0, "c"), 0);
	t_expect(reg, 3, 4);
	t_fill(reg, 0);
	reg_close(reg);
}
END_TEST

START_TEST(test_crash_reap)
{
	struct reg	*reg;
	uint64_t	 removed = 0;

	/* A master dying half-way through a reap; the next reap finishes. */
	reg = t_crash_setup(0);
	t_crash_in(reg, REG_CRASH_REAP, "reap", NULL);
	/* Worker 1's count in "a" (the first room) was cleared. */
	t_expect(reg, 3, 4);
	t_expect_repairs(reg, 1);
	ck_assert_uint_eq(t_members(reg, "a"), 1);
	ck_assert_int_eq(reg_worker_reap(reg, 1, &removed), 0);
	ck_assert_uint_eq(removed, 2);
	t_expect(reg, 2, 2);
	ck_assert_uint_eq(t_members(reg, "a"), 1);
	ck_assert_uint_eq(t_members(reg, "c"), 0);
	t_fill(reg, 2);
	reg_close(reg);
}
END_TEST

START_TEST(test_unrecoverable)
{
	struct reg		*reg;
	struct reg_stats	 st;
	uint32_t		*magic;
	int			 fd;
	pid_t			 pid;

	reg = t_crash_setup(0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		C_CHECK(reg_lock(reg) == 0);
		_exit(0);
	}
	t_wait_ok(pid);

	/* Damage no crash explains: the magic (offset 0) is gone. */
	fd = shm_open(t_names[0], O_RDWR, 0);
	ck_assert_int_ne(fd, -1);
	magic = mmap(NULL, sizeof *magic, PROT_READ|PROT_WRITE, MAP_SHARED,
	    fd, 0);
	ck_assert_ptr_ne(magic, MAP_FAILED);
	close(fd);
	ck_assert_uint_eq(*magic, REG_MAGIC);
	*magic = 0;

	/* Repair fails, the mutex is unlocked without consistent... */
	ck_assert_int_eq(t_join(reg, 0, "a"), -1);
	ck_assert_int_eq(errno, ENOTRECOVERABLE);
	/* ...and stays lost, for every process, even with the magic back. */
	*magic = REG_MAGIC;
	ck_assert_int_eq(reg_stats(reg, &st), -1);
	ck_assert_int_eq(errno, ENOTRECOVERABLE);
	ck_assert_int_eq(reg_lock(reg), -1);
	ck_assert_int_eq(errno, ENOTRECOVERABLE);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		C_CHECK(reg_lock(reg) == -1 && errno == ENOTRECOVERABLE);
		C_CHECK(t_leave(reg, 1, "c") == -1 &&
		    errno == ENOTRECOVERABLE);
		_exit(0);
	}
	t_wait_ok(pid);
	ck_assert_int_eq(munmap(magic, sizeof *magic), 0);

	/* What the master does then: a new generation. */
	reg_close(reg);
	reg = t_create(0, 8, 3);
	ck_assert_int_eq(reg_stats(reg, &st), 0);
	ck_assert_uint_eq(st.generation, 2);
	t_expect(reg, 0, 0);
	reg_close(reg);
}
END_TEST

/* 5: reaping a dead worker. */

START_TEST(test_reap)
{
	struct reg		*reg;
	struct reg_worker_info	 info;
	uint64_t		 removed;
	pid_t			 pid;

	reg = t_create(0, 16, 3);
	ck_assert_int_eq(t_join(reg, 0, "A"), 0);
	ck_assert_int_eq(t_join(reg, 0, "D"), 0);
	ck_assert_int_eq(t_join(reg, 2, "B"), 0);
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		C_CHECK(t_join(reg, 1, "A") == 0);
		C_CHECK(t_join(reg, 1, "A") == 0);
		C_CHECK(t_join(reg, 1, "B") == 0);
		C_CHECK(t_join(reg, 1, "C") == 0);
		_exit(0);
	}
	ck_assert_int_eq(reg_worker_start(reg, 1, pid), 0);
	ck_assert_int_eq(reg_worker_conns(reg, 1, 3), 0);
	t_wait_ok(pid);
	t_expect(reg, 4, 7);

	ck_assert_int_eq(reg_worker_reap(reg, 1, &removed), 0);
	ck_assert_uint_eq(removed, 4);
	t_expect(reg, 3, 3);
	ck_assert_uint_eq(t_members(reg, "A"), 1);
	ck_assert_uint_eq(t_members(reg, "B"), 1);
	ck_assert_uint_eq(t_members(reg, "C"), 0);
	ck_assert_uint_eq(t_members(reg, "D"), 1);
	ck_assert_int_eq(t_leave(reg, 0, "A"), 0);
	ck_assert_int_eq(t_leave(reg, 2, "B"), 0);
	ck_assert_int_eq(reg_worker_info(reg, 1, &info), 0);
	ck_assert_int_eq(info.pid, 0);
	ck_assert_uint_eq(info.connections, 0);
	ck_assert_int_eq(reg_worker_reap(reg, 1, &removed), 0);
	ck_assert_uint_eq(removed, 0);
	t_expect(reg, 1, 1);
	t_fill(reg, 1);
	reg_close(reg);
}
END_TEST

/* 6: a full table. */

START_TEST(test_full_table)
{
	struct reg	*reg;
	char		 chat[32];
	size_t		 len;
	uint32_t	 i, total;

	reg = t_create(0, 16, 2);
	for (i = 0; i < 16; i++) {
		len = t_room(chat, sizeof chat, "r%u", i);
		ck_assert_int_eq(reg_join(reg, 0, chat, len, NULL), 0);
	}
	ck_assert_int_eq(t_join(reg, 1, "r16"), -1);
	ck_assert_int_eq(errno, ENOSPC);
	ck_assert_int_eq(t_join(reg, 0, "r16"), -1);
	ck_assert_int_eq(errno, ENOSPC);
	t_expect(reg, 16, 16);
	ck_assert_uint_eq(t_members(reg, "r16"), 0);

	/* Existing rooms still work. */
	ck_assert_int_eq(reg_join(reg, 1, "r3", 2, &total), 0);
	ck_assert_uint_eq(total, 2);
	ck_assert_int_eq(t_leave(reg, 1, "r3"), 0);
	ck_assert_uint_eq(t_members(reg, "r3"), 1);
	t_expect(reg, 16, 16);

	/* A freed entry makes room for a new one, and only one. */
	ck_assert_int_eq(t_leave(reg, 0, "r5"), 0);
	t_expect(reg, 15, 15);
	ck_assert_int_eq(t_join(reg, 1, "r16"), 0);
	ck_assert_int_eq(t_join(reg, 1, "r17"), -1);
	ck_assert_int_eq(errno, ENOSPC);
	t_expect(reg, 16, 16);
	reg_close(reg);
}
END_TEST

/* Worker slots. */

START_TEST(test_worker_slots)
{
	struct reg		*reg;
	struct reg_worker_info	 info;
	struct reg_counters	*c;
	uint64_t		 removed;
	pid_t			 pid;
	int			 i;

	reg = t_create(0, 8, 3);
	ck_assert_int_eq(reg_worker_start(reg, 3, 1), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(reg_worker_start(reg, 0, 0), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_ptr_null(reg_worker_counters(reg, 3));

	ck_assert_int_eq(reg_worker_start(reg, 1, 4242), 0);
	ck_assert_int_eq(reg_worker_info(reg, 1, &info), 0);
	ck_assert_int_eq(info.pid, 4242);
	ck_assert_uint_eq(info.generation, 1);
	ck_assert_uint_eq(info.connections, 0);
	ck_assert_uint_gt(info.heartbeat, 0);

	ck_assert_int_eq(reg_worker_conns(reg, 1, 5), 0);
	ck_assert_int_eq(reg_worker_conns(reg, 1, -2), 0);
	ck_assert_int_eq(reg_worker_conns(reg, 1, -4), -1);
	ck_assert_int_eq(errno, EINVAL);
	ck_assert_int_eq(reg_worker_conns(reg, 2, 7), 0);
	ck_assert_uint_eq(reg_total_conns(reg), 10);
	reg_worker_heartbeat(reg, 1, 123456789);

	/* The owner writes its counters without the lock. */
	pid = fork();
	ck_assert_int_ne(pid, -1);
	if (pid == 0) {
		c = reg_worker_counters(reg, 1);
		C_CHECK(c != NULL);
		for (i = 0; i < 1000; i++)
			c->msgs_in++;
		c->gaps_filled = 7;
		_exit(0);
	}
	t_wait_ok(pid);
	ck_assert_int_eq(reg_worker_info(reg, 1, &info), 0);
	ck_assert_uint_eq(info.connections, 3);
	ck_assert_uint_eq(info.heartbeat, 123456789);
	ck_assert_uint_eq(info.counters.msgs_in, 1000);
	ck_assert_uint_eq(info.counters.gaps_filled, 7);

	/* Respawn: reap the old worker, start the new one. */
	ck_assert_int_eq(t_join(reg, 1, "room"), 0);
	ck_assert_int_eq(reg_worker_reap(reg, 1, &removed), 0);
	ck_assert_uint_eq(removed, 1);
	ck_assert_uint_eq(reg_total_conns(reg), 7);
	ck_assert_int_eq(reg_worker_start(reg, 1, 4343), 0);
	ck_assert_int_eq(reg_worker_info(reg, 1, &info), 0);
	ck_assert_int_eq(info.pid, 4343);
	ck_assert_uint_eq(info.generation, 2);
	ck_assert_uint_eq(info.counters.msgs_in, 0);
	ck_assert_uint_eq(info.counters.gaps_filled, 0);
	t_expect(reg, 0, 0);
	reg_close(reg);
}
END_TEST

static TCase *
t_tcase(const char *name, int timeout)
{
	TCase	*tc;

	tc = tcase_create(name);
	tcase_add_checked_fixture(tc, t_setup, t_teardown);
	tcase_set_timeout(tc, timeout);
	return (tc);
}

Suite *registry_suite(void);

Suite *
registry_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("registry");

	tc = t_tcase("create", 5);
	tcase_add_test(tc, test_create_attach);
	tcase_add_test(tc, test_attach_errors);
	tcase_add_test(tc, test_create_bad_args);
	tcase_add_test(tc, test_room_args);
	suite_add_tcase(s, tc);

	tc = t_tcase("stale", 10);
	tcase_add_test(tc, test_stale_dead_master);
	tcase_add_test(tc, test_stale_garbage);
	tcase_add_test(tc, test_live_master);
	tcase_add_test(tc, test_same_master_replaces);
	suite_add_tcase(s, tc);

	tc = t_tcase("contention", 20);
	tcase_add_test(tc, test_lock_excludes);
	tcase_add_test(tc, test_join_counts_exact);
	suite_add_tcase(s, tc);

	tc = t_tcase("first_join", 15);
	tcase_add_test(tc, test_first_join_race);
	suite_add_tcase(s, tc);

	tc = t_tcase("churn", 25);
	tcase_add_test(tc, test_churn);
	suite_add_tcase(s, tc);

	tc = t_tcase("last_leave", 25);
	tcase_add_test(tc, test_last_leave_once);
	tcase_add_test(tc, test_join_races_last_leave);
	suite_add_tcase(s, tc);

	tc = t_tcase("crash", 10);
	tcase_add_test(tc, test_holder_dies);
	tcase_add_test(tc, test_crash_join_new);
	tcase_add_test(tc, test_crash_join_count);
	tcase_add_test(tc, test_crash_leave);
	tcase_add_test(tc, test_crash_reap);
	tcase_add_test(tc, test_unrecoverable);
	suite_add_tcase(s, tc);

	tc = t_tcase("reap", 5);
	tcase_add_test(tc, test_reap);
	suite_add_tcase(s, tc);

	tc = t_tcase("full", 5);
	tcase_add_test(tc, test_full_table);
	suite_add_tcase(s, tc);

	tc = t_tcase("workers", 5);
	tcase_add_test(tc, test_worker_slots);
	suite_add_tcase(s, tc);

	return (s);
}

int
main(void)
{
	return (testutil_run(registry_suite()));
}
