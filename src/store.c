/* SPDX-License-Identifier: ISC */
/* racerd: the store's address, and the embedded redis-server. */
/*
 * With "redis = embedded" (the default) the master runs a private
 * redis-server on a unix socket in run-dir, persisting to state-dir with
 * an append-only file and refusing to evict (history must not vanish).
 * The master starts it before any worker, restarts it when it dies (its
 * SIGCHLD handler arms a timer that calls store_embedded_start again,
 * backing off while that fails) and stops it last.
 * The child gets PR_SET_PDEATHSIG so it never outlives the master.
 *
 * With an external store the master only checks its maxmemory-policy at
 * start and warns loudly unless it is noeviction; a store that refuses
 * the configured credentials stops the start (a store that cannot be
 * reached does not: workers keep trying).  Addresses are logged through
 * config_store_redact: a password never reaches a log.
 */
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <hiredis/hiredis.h>

#include "racerd.h"

#define STORE_SOCKET		"redis.sock"
#define STORE_START_MS		10000	/* how long it may take to answer */

static pid_t	 store_pid = -1;

/*
 * The address workers connect to: "unix:PATH" for the embedded store, or
 * the configured URL.  Returns an allocated string.
 */
char *
store_address(const struct config *cfg)
{
	char	*s;

	if (strcmp(cfg->redis, "embedded") == 0)
		xasprintf(&s, "unix:%s/%s", cfg->run_dir, STORE_SOCKET);
	else
		s = xstrdup(cfg->redis);
	return (s);
}

/*
 * AUTH with the credentials of st, if it has any.  Returns 0, or -1 with
 * the store's answer in why.
 */
static int
store_auth_sync(redisContext *c, const struct config_store *st, char *why,
    size_t len)
{
	redisReply	*r;
	int		 rc = 0;

	if (st->password[0] == '\0')
		return (0);
	if (st->user[0] != '\0')
		r = redisCommand(c, "AUTH %s %s", st->user, st->password);
	else
		r = redisCommand(c, "AUTH %s", st->password);
	if (r == NULL || r->type == REDIS_REPLY_ERROR) {
		snprintf(why, len, "%s", r != NULL ? r->str : c->errstr);
		rc = -1;
	}
	if (r != NULL)
		freeReplyObject(r);
	return (rc);
}

/*
 * Connect synchronously to an address in the forms store_address gives,
 * and authenticate.  Returns the context, or NULL; a refused AUTH puts
 * the store's answer in denied (else it is left empty).
 */
static redisContext *
store_connect_sync(const char *addr, int timeout_ms, char *denied,
    size_t len)
{
	struct timeval	 tv = { timeout_ms / 1000, (timeout_ms % 1000) * 1000 };
	struct config_store st;
	redisContext	*c;
	redisReply	*r;
	int		 db;

	if (config_store_parse(addr, &st) != 0)
		return (NULL);
	db = st.db;
	if (st.path[0] != '\0')
		c = redisConnectUnixWithTimeout(st.path, tv);
	else
		c = redisConnectWithTimeout(st.host, st.port, tv);
	if (c == NULL)
		return (NULL);
	if (c->err) {
		redisFree(c);
		return (NULL);
	}
	redisSetTimeout(c, tv);
	if (store_auth_sync(c, &st, denied, len) != 0) {
		redisFree(c);
		return (NULL);
	}
	if (db != 0) {
		r = redisCommand(c, "SELECT %d", db);
		if (r == NULL || r->type == REDIS_REPLY_ERROR) {
			if (r != NULL)
				freeReplyObject(r);
			redisFree(c);
			return (NULL);
		}
		freeReplyObject(r);
	}
	return (c);
}

/* Returns 1 when the store at addr answers PING, else 0. */
static int
store_ping(const char *addr)
{
	redisContext	*c;
	redisReply	*r;
	char		 denied[256] = "";
	int		 ok = 0;

	if ((c = store_connect_sync(addr, 500, denied, sizeof denied)) ==
	    NULL)
		return (0);
	r = redisCommand(c, "PING");
	if (r != NULL && r->type == REDIS_REPLY_STATUS)
		ok = 1;
	if (r != NULL)
		freeReplyObject(r);
	redisFree(c);
	return (ok);
}

/*
 * Warn loudly unless the store's maxmemory-policy is noeviction: with
 * eviction, history (and so acknowledged messages) can silently vanish.
 * Returns 0, or -1 with *cause if the store refuses our credentials.
 */
int
store_check_policy(const char *addr_, char **cause)
{
	redisContext	*c;
	redisReply	*r;
	char		 denied[256] = "", *addr;

	if (strncmp(addr_, "sentinel://", 11) == 0) {
		log_info("store %s: the workers ask the sentinels for its "
		    "primary; make sure it has maxmemory-policy noeviction",
		    addr_);
		return (0);
	}
	addr = config_store_redact(addr_);
	if ((c = store_connect_sync(addr_, 2000, denied, sizeof denied)) ==
	    NULL) {
		if (denied[0] != '\0') {
			xasprintf(cause, "store %s refused to authenticate: %s",
			    addr, denied);
			free(addr);
			return (-1);
		}
		log_warnx("store %s is not reachable at start; workers will "
		    "keep retrying", addr);
		free(addr);
		return (0);
	}
	r = redisCommand(c, "CONFIG GET maxmemory-policy");
	if (r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements == 2 &&
	    r->element[1]->type == REDIS_REPLY_STRING) {
		if (strcmp(r->element[1]->str, "noeviction") != 0)
			log_warnx("WARNING: store %s has maxmemory-policy %s: "
			    "history and sessions may be evicted and "
			    "acknowledged messages lost; set it to "
			    "noeviction", addr, r->element[1]->str);
	} else
		log_warnx("store %s: cannot read maxmemory-policy (CONFIG "
		    "GET refused?); make sure it is noeviction", addr);
	if (r != NULL)
		freeReplyObject(r);
	redisFree(c);
	free(addr);
	return (0);
}

/*
 * The share, in percent, of chats whose shard changes from the list old
 * (nold addresses) to new: jump hash buckets sampled over many keys.
 */
static double
store_moved_share(char **old, u_int nold, char **new, u_int nnew)
{
	char		 id[32];
	u_int		 i, moved = 0, samples = 100000;

	for (i = 0; i < samples; i++) {
		snprintf(id, sizeof id, "sample-%u", i);
		if (strcmp(old[bus_shard_hash(id, strlen(id), nold)],
		    new[bus_shard_hash(id, strlen(id), nnew)]) != 0)
			moved++;
	}
	return (100.0 * moved / samples);
}

/*
 * Compare the shard list with the one of the last start (STATE-DIR/shards,
 * addresses with their passwords hidden) and say which share of chats now
 * lives on another shard: their history and sessions stay where they
 * were.  Then record this list.
 */
void
store_note_shards(const struct config *cfg, char **list, u_int n)
{
	char		 path[PATH_MAX], line[1024], **old = NULL, **shown;
	char		*cause;
	FILE		*f;
	u_int		 nold = 0, i;
	int		 same, fd = -1;

	if (strcmp(cfg->redis, "embedded") == 0)
		return;		/* one store, in run-dir */
	shown = xcalloc(n, sizeof *shown);
	for (i = 0; i < n; i++)
		shown[i] = config_store_redact(list[i]);
	snprintf(path, sizeof path, "%s/shards", cfg->state_dir);
	if ((f = fopen(path, "r")) != NULL) {
		while (fgets(line, sizeof line, f) != NULL) {
			line[strcspn(line, "\n")] = '\0';
			if (*line == '\0')
				continue;
			old = xreallocarray(old, nold + 1, sizeof *old);
			old[nold++] = xstrdup(line);
		}
		fclose(f);
	}
	same = nold == n;
	for (i = 0; same && i < n; i++)
		same = strcmp(old[i], shown[i]) == 0;
	if (n > 1 || nold > 1)
		log_info("store: %u shard(s)", n);
	if (nold > 0 && !same)
		log_warnx("store shards changed from %u to %u since the last "
		    "start: about %.1f%% of chats now live on another shard; "
		    "their history and sessions stay on the shard they were "
		    "on", nold, n, store_moved_share(old, nold, shown, n));
	if (!same) {
		if (util_mkdir_p(cfg->state_dir, 0750, &cause) != 0) {
			log_warnx("cannot record the store shards: %s", cause);
			free(cause);
		} else if ((fd = open(path, O_WRONLY|O_CREAT|O_TRUNC|O_NOFOLLOW,
		    0640)) == -1 || (f = fdopen(fd, "w")) == NULL) {
			log_warnx("cannot record the store shards: %s: %s",
			    path, strerror(errno));
			if (fd != -1)
				close(fd);
		} else {
			for (i = 0; i < n; i++)
				fprintf(f, "%s\n", shown[i]);
			if (fclose(f) != 0)
				log_warnx("cannot record the store shards: "
				    "%s: %s", path, strerror(errno));
		}
	}
	for (i = 0; i < nold; i++)
		free(old[i]);
	free(old);
	for (i = 0; i < n; i++)
		free(shown[i]);
	free(shown);
}

/* The embedded store's maxmemory: configured, or a quarter of RAM. */
static void
store_max_memory(const struct config *cfg, char *buf, size_t size)
{
	long	 pages, page;

	if (*cfg->store_max_memory != '\0') {
		snprintf(buf, size, "%s", cfg->store_max_memory);
		return;
	}
	pages = sysconf(_SC_PHYS_PAGES);
	page = sysconf(_SC_PAGESIZE);
	if (pages <= 0 || page <= 0)
		snprintf(buf, size, "1gb");
	else
		snprintf(buf, size, "%llu",
		    (unsigned long long)pages * page / 4);
}

static __dead void
store_exec(const struct config *cfg, const char *sock)
{
	char	 logf[1024], maxmem[48];
	sigset_t set;

	/* Never outlive the master; undo the master's signal set-up. */
	if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1)
		_exit(127);
	sigemptyset(&set);
	sigprocmask(SIG_SETMASK, &set, NULL);
	signal(SIGPIPE, SIG_DFL);
	signal(SIGHUP, SIG_DFL);
	/* The append-only file holds every message: not for other users. */
	umask(umask(0) | 027);
	snprintf(logf, sizeof logf, "%s/redis.log", cfg->state_dir);
	store_max_memory(cfg, maxmem, sizeof maxmem);
	execl(REDIS_SERVER_PATH, REDIS_SERVER_PATH,
	    "--port", "0",
	    "--unixsocket", sock,
	    "--unixsocketperm", "700",
	    "--dir", cfg->state_dir,
	    "--appendonly", "yes",
	    "--appendfsync", "everysec",
	    "--save", "",
	    "--maxmemory", maxmem,
	    "--maxmemory-policy", "noeviction",
	    "--daemonize", "no",
	    "--logfile", logf,
	    (char *)NULL);
	_exit(127);
}

/*
 * Start the embedded redis-server and wait until it answers.  Returns 0,
 * or -1 with an allocated message in *cause.
 */
int
store_embedded_start(const struct config *cfg, char **cause)
{
	char		*sock, *addr;
	uint64_t	 deadline;
	pid_t		 pid;
	int		 status;
	struct timespec	 ts = { 0, 20 * 1000 * 1000 };

	if (access(REDIS_SERVER_PATH, X_OK) != 0) {
		xasprintf(cause, "embedded store: %s not found (apt-get "
		    "install redis-server, or set redis = redis://...)",
		    REDIS_SERVER_PATH);
		return (-1);
	}
	if (util_mkdir_p(cfg->state_dir, 0750, cause) != 0)
		return (-1);
	xasprintf(&sock, "%s/%s", cfg->run_dir, STORE_SOCKET);
	if (strlen(sock) > 100) {
		xasprintf(cause, "embedded store: socket path %s is too long",
		    sock);
		free(sock);
		return (-1);
	}
	unlink(sock);
	if ((pid = fork()) == -1) {
		xasprintf(cause, "fork: %s", strerror(errno));
		free(sock);
		return (-1);
	}
	if (pid == 0)
		store_exec(cfg, sock);
	store_pid = pid;
	free(sock);

	addr = store_address(cfg);
	deadline = util_mono_ms() + STORE_START_MS;
	while (!store_ping(addr)) {
		if (waitpid(pid, &status, WNOHANG) == pid) {
			store_pid = -1;
			xasprintf(cause, "embedded store exited at start "
			    "(status %d); see %s/redis.log", status,
			    cfg->state_dir);
			free(addr);
			return (-1);
		}
		if (util_mono_ms() > deadline) {
			xasprintf(cause, "embedded store did not answer "
			    "within %d ms", STORE_START_MS);
			free(addr);
			return (-1);
		}
		nanosleep(&ts, NULL);
	}
	log_info("embedded store pid %ld on %s", (long)pid, addr);
	free(addr);
	return (0);
}

/* The embedded store's pid, or -1 when none runs. */
pid_t
store_embedded_pid(void)
{
	return (store_pid);
}

/*
 * Stop the embedded store (it writes its AOF on SIGTERM) and wait for it,
 * for at most timeout seconds; then kill it.  With a negative timeout the
 * master has already reaped it and only forgets it.
 */
void
store_embedded_stop(int timeout)
{
	uint64_t	 deadline;
	struct timespec	 ts = { 0, 20 * 1000 * 1000 };

	if (store_pid == -1)
		return;
	if (timeout < 0) {
		store_pid = -1;
		return;
	}
	kill(store_pid, SIGTERM);
	deadline = util_mono_ms() + (uint64_t)timeout * 1000;
	while (waitpid(store_pid, NULL, WNOHANG) == 0) {
		if (util_mono_ms() > deadline) {
			kill(store_pid, SIGKILL);
			waitpid(store_pid, NULL, 0);
			break;
		}
		nanosleep(&ts, NULL);
	}
	store_pid = -1;
}
