/* SPDX-License-Identifier: ISC */
/* racerd: the master process. */
/*
 * The master validates the configuration, opens the listening sockets
 * (plain and TLS; it loads the TLS certificate and key before it forks, so
 * workers inherit a checked context), creates the shared-memory registry,
 * starts the embedded store, forks the workers and supervises them.  It
 * serves no clients.
 *
 * A worker that dies is reaped from the registry (its slot cleared and
 * exactly its members removed) before a new one takes its place; one that
 * keeps dying soon after start is respawned with growing back-off and,
 * after MASTER_CRASH_MAX crashes in a row, given up on.  Signals are
 * libevent events: TERM/INT drain (a second one forces), HUP reloads the
 * configuration and replaces workers one at a time, USR1 reopens logs and
 * is forwarded to the workers, CHLD reaps.  A HUP that changes no setting
 * (a renewed certificate or key file in the same place, say) replaces no
 * worker: it is forwarded, and every worker reloads its files in place, so
 * that open connections stay.
 */
#include <sys/types.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>

#include <netinet/in.h>
#include <arpa/inet.h>

#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "racerd.h"
#include "registry.h"

#define MASTER_CRASH_MAX	5	/* crashes in a row before giving up */
#define MASTER_CRASH_SOON_MS	10000	/* a crash this soon counts */
#define MASTER_BACKOFF_MAX_MS	5000

struct master_worker {
	pid_t		 pid;		/* -1 when not running */
	uint64_t	 started;	/* monotonic ms */
	int		 crashes;	/* crashes in a row, soon after start */
	int		 replace;	/* reload: respawn when it exits */
	struct event	*respawn;	/* back-off timer */
};

static struct {
	struct config		*cfg;
	struct reg		*reg;
	struct event_base	*base;
	char			*regname;
	char			*store_addr;
	int			 lfd;		/* plain, or -1 */
	int			 tlsfd;		/* TLS, or -1 */
	int			 ready;		/* start-up pipe, or -1 */
	int			 nworkers;
	struct master_worker	*w;
	int			 stopping;	/* 1 draining, 2 forced */
	int			 exit_code;
	int			 pidfile_written;
	int			 pidfd;		/* locked while we run */
	struct event		*stop_timer;
	struct event		*store_timer;
	int			 store_failures;
	struct event		*sig[6];
} master;

static void	master_spawn(int);
static void	master_reload_step(void);

/*
 * Open the listening socket for "host:port" or "[v6]:port".  Returns the
 * descriptor, or -1 with a message in *cause.
 */
static int
master_listen(const char *listen_on, char **cause)
{
	struct addrinfo	 hints, *res = NULL;
	char		 host[256], port[16];
	const char	*colon;
	int		 fd = -1, on = 1, error;
	size_t		 hlen;

	colon = strrchr(listen_on, ':');
	if (colon == NULL) {
		xasprintf(cause, "listen %s: missing port", listen_on);
		return (-1);
	}
	hlen = colon - listen_on;
	if (listen_on[0] == '[' && hlen >= 2 && listen_on[hlen - 1] == ']') {
		listen_on++;
		hlen -= 2;
	}
	if (hlen >= sizeof host) {
		xasprintf(cause, "listen %s: host too long", listen_on);
		return (-1);
	}
	memcpy(host, listen_on, hlen);
	host[hlen] = '\0';
	snprintf(port, sizeof port, "%s", colon + 1);

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
	error = getaddrinfo(hlen == 0 || strcmp(host, "*") == 0 ? NULL : host,
	    port, &hints, &res);
	if (error != 0) {
		xasprintf(cause, "listen %s: %s", listen_on,
		    gai_strerror(error));
		return (-1);
	}
	fd = socket(res->ai_family, res->ai_socktype | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1)
		goto fail;
	if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) == -1)
		goto fail;
	if (bind(fd, res->ai_addr, res->ai_addrlen) == -1)
		goto fail;
	if (listen(fd, 4096) == -1)
		goto fail;
	freeaddrinfo(res);
	return (fd);
fail:
	xasprintf(cause, "listen %s: %s", listen_on, strerror(errno));
	if (fd != -1)
		close(fd);
	freeaddrinfo(res);
	return (-1);
}

/* Log the address we really listen on (the port may have been 0). */
static void
master_log_listen(int fd, const char *what)
{
	struct sockaddr_storage	 ss;
	socklen_t		 len = sizeof ss;
	char			 host[INET6_ADDRSTRLEN], serv[16];

	if (getsockname(fd, (struct sockaddr *)&ss, &len) != 0 ||
	    getnameinfo((struct sockaddr *)&ss, len, host, sizeof host, serv,
	    sizeof serv, NI_NUMERICHOST | NI_NUMERICSERV) != 0)
		return;
	log_info("listening on %s%s%s:%s%s",
	    ss.ss_family == AF_INET6 ? "[" : "", host,
	    ss.ss_family == AF_INET6 ? "]" : "", serv, what);
}

/*
 * Write the pid file: never through a symbolic link or into anything but
 * a regular file, and locked (flock) for the master's life, so that a
 * second racerd given the same file refuses to start instead of taking
 * it over.  Returns 0, or -1 with a message in *cause.
 */
static int
master_write_pidfile(const char *path, char **cause)
{
	struct stat	 sb;
	char		 buf[32];
	int		 fd, n, saved;
	const char	*why;

	fd = open(path, O_WRONLY|O_CREAT|O_NOFOLLOW|O_NONBLOCK|O_CLOEXEC,
	    0644);
	if (fd == -1) {
		xasprintf(cause, "pid file %s: %s", path, errno == ELOOP ?
		    "is a symbolic link" : strerror(errno));
		return (-1);
	}
	if (fstat(fd, &sb) == -1 || !S_ISREG(sb.st_mode)) {
		why = "not a regular file";
		goto fail;
	}
	if (flock(fd, LOCK_EX|LOCK_NB) == -1) {
		why = errno == EWOULDBLOCK ? "locked by another racerd" : NULL;
		goto fail;
	}
	n = snprintf(buf, sizeof buf, "%ld\n", (long)getpid());
	if (ftruncate(fd, 0) == -1 || write(fd, buf, n) != n) {
		why = NULL;
		goto fail;
	}
	master.pidfd = fd;
	master.pidfile_written = 1;
	return (0);

fail:
	saved = errno;
	close(fd);
	xasprintf(cause, "pid file %s: %s", path, why != NULL ? why :
	    strerror(saved));
	return (-1);
}

static int
master_live_workers(void)
{
	int	 i, n = 0;

	for (i = 0; i < master.nworkers; i++)
		if (master.w[i].pid > 0)
			n++;
	return (n);
}

static void
master_signal_workers(int signo)
{
	int	 i;

	for (i = 0; i < master.nworkers; i++)
		if (master.w[i].pid > 0)
			kill(master.w[i].pid, signo);
}

/* Everything is stopped: release what the master holds and leave. */
static void
master_finish(void)
{
	store_embedded_stop(master.cfg->shutdown_timeout);
	if (master.reg != NULL) {
		reg_close(master.reg);
		reg_unlink(master.regname);
		master.reg = NULL;
	}
	if (master.pidfile_written)
		unlink(master.cfg->pid_file);
	log_info("exiting");
	event_base_loopbreak(master.base);
}

static void
master_stop_timeout(__unused evutil_socket_t fd, __unused short events,
    __unused void *arg)
{
	log_warnx("shutdown-timeout passed: killing %d worker(s)",
	    master_live_workers());
	master.stopping = 2;
	master_signal_workers(SIGKILL);
}

static void
master_stop(int signo)
{
	struct timeval	 tv = { master.cfg->shutdown_timeout, 0 };
	int		 i;

	if (master.stopping) {
		log_info("second signal %d: forcing shutdown", signo);
		master.stopping = 2;
		master_signal_workers(SIGKILL);
		return;
	}
	log_info("signal %d: shutting down gracefully", signo);
	master.stopping = 1;
	for (i = 0; i < master.nworkers; i++)
		if (master.w[i].respawn != NULL)
			evtimer_del(master.w[i].respawn);
	if (master.store_timer != NULL)
		evtimer_del(master.store_timer);
	master_signal_workers(SIGTERM);
	if (master_live_workers() == 0) {
		master_finish();
		return;
	}
	master.stop_timer = evtimer_new(master.base, master_stop_timeout, NULL);
	util_timer_add(master.stop_timer, &tv);
}

static void
master_respawn_cb(__unused evutil_socket_t fd, __unused short events,
    void *arg)
{
	int	 i = (int)(intptr_t)arg;

	if (!master.stopping && master.w[i].pid == -1)
		master_spawn(i);
}

/*
 * A worker exited: reap its registry slot, then decide whether and when to
 * start another.
 */
static void
master_worker_exited(int i, int status)
{
	struct master_worker	*w = &master.w[i];
	uint64_t		 removed = 0, now = util_mono_ms();
	struct timeval		 tv;
	int			 crashed, delay;

	w->pid = -1;
	iplimit_worker_gone(i);
	if (reg_worker_reap(master.reg, i, &removed) != 0)
		log_warn("worker[%d]: registry reap failed", i);
	if (WIFSIGNALED(status))
		log_warnx("worker[%d] killed by signal %d (%llu members "
		    "reaped)", i, WTERMSIG(status),
		    (unsigned long long)removed);
	else
		log_info("worker[%d] exited with status %d (%llu members "
		    "reaped)", i, WEXITSTATUS(status),
		    (unsigned long long)removed);
	if (master.stopping) {
		if (master_live_workers() == 0)
			master_finish();
		return;
	}
	if (w->replace) {
		w->replace = 0;
		master_spawn(i);
		master_reload_step();
		return;
	}
	if (WIFEXITED(status) && WEXITSTATUS(status) == RD_EXIT_NORESPAWN) {
		log_warnx("worker[%d] cannot run; not respawning it", i);
		goto check;
	}

	crashed = !WIFEXITED(status) || WEXITSTATUS(status) != 0;
	if (crashed && now - w->started < MASTER_CRASH_SOON_MS)
		w->crashes++;
	else
		w->crashes = crashed ? 1 : 0;
	if (w->crashes >= MASTER_CRASH_MAX) {
		log_warnx("worker[%d] is crash-looping (%d crashes within "
		    "%d ms of start); not respawning it", i, w->crashes,
		    MASTER_CRASH_SOON_MS);
		goto check;
	}
	delay = 0;
	if (w->crashes > 1) {
		delay = 100 << (w->crashes - 1);
		if (delay > MASTER_BACKOFF_MAX_MS)
			delay = MASTER_BACKOFF_MAX_MS;
	}
	if (delay == 0) {
		master_spawn(i);
		return;
	}
	log_info("worker[%d] respawns in %d ms", i, delay);
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	util_timer_add(w->respawn, &tv);
	return;
check:
	if (master_live_workers() == 0) {
		log_warnx("no worker left running; shutting down");
		master.exit_code = 1;
		master_stop(SIGTERM);
	}
}

static void
master_store_restart(__unused evutil_socket_t fd, __unused short events,
    __unused void *arg)
{
	char		*cause = NULL;
	struct timeval	 tv;
	int		 delay;

	if (master.stopping)
		return;
	if (store_embedded_start(master.cfg, &cause) == 0) {
		log_info("embedded store restarted");
		master.store_failures = 0;
		return;
	}
	log_warnx("embedded store restart failed: %s", cause);
	free(cause);
	master.store_failures++;
	delay = 250 << (master.store_failures < 5 ? master.store_failures : 5);
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	util_timer_add(master.store_timer, &tv);
}

static void
master_chld(void)
{
	struct timeval	 tv = { 0, 0 };
	pid_t		 pid;
	int		 status, i;

	while ((pid = waitpid(-1, &status, WNOHANG)) > 0) {
		if (pid == store_embedded_pid()) {
			store_embedded_stop(-1);
			if (master.stopping)
				continue;
			log_warnx("embedded store (pid %ld) died; restarting "
			    "it", (long)pid);
			util_timer_add(master.store_timer, &tv);
			continue;
		}
		for (i = 0; i < master.nworkers; i++) {
			if (master.w[i].pid == pid) {
				master_worker_exited(i, status);
				break;
			}
		}
	}
}

/*
 * Restore what a child inherits from the master to defaults: signal
 * dispositions set by libevent and the master's mask.
 */
static void
master_child_reset(void)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGUSR1, SIGUSR2,
	    SIGCHLD };
	sigset_t	 set;
	size_t		 i;

	for (i = 0; i < nitems(sigs); i++)
		signal(sigs[i], SIG_DFL);
	/* The master may forward a HUP before the worker handles it. */
	signal(SIGHUP, SIG_IGN);
	sigemptyset(&set);
	sigprocmask(SIG_SETMASK, &set, NULL);
}

static void
master_spawn(int i)
{
	struct timeval	 one = { 1, 0 };
	char		 role[32];
	pid_t		 pid, parent = getpid();
	int		 rc;

	pid = fork();
	if (pid == -1) {
		/* Out of processes: try again in a second. */
		log_warn("worker[%d]: fork", i);
		if (evtimer_add(master.w[i].respawn, &one) != 0)
			log_warnx("worker[%d]: cannot arm its respawn", i);
		return;
	}
	if (pid == 0) {
		/* A worker never outlives its master. */
		if (prctl(PR_SET_PDEATHSIG, SIGTERM) == -1 ||
		    getppid() != parent)
			_exit(RD_EXIT_FATAL);
		/*
		 * Let go of the master's loop without touching the epoll
		 * instance the master still uses: reinit gives the child its
		 * own backend, which is then freed with the base.
		 */
		if (event_reinit(master.base) == 0)
			event_base_free(master.base);
		master.base = NULL;
		if (master.ready != -1)
			close(master.ready);
		/* The pid file's lock is the master's alone. */
		if (master.pidfd != -1)
			close(master.pidfd);
		master_child_reset();
		snprintf(role, sizeof role, "worker[%d]", i);
		log_set_role(role);
		rc = worker_main(master.cfg, master.reg, i, master.lfd, master.tlsfd,
		    master.store_addr);
		log_close();
		_exit(rc);
	}
	master.w[i].pid = pid;
	master.w[i].started = util_mono_ms();
	log_info("worker[%d] started, pid %ld", i, (long)pid);
}

/* Reload: take the next worker still to be replaced out of service. */
static void
master_reload_step(void)
{
	int	 i;

	for (i = 0; i < master.nworkers; i++) {
		if (master.w[i].replace && master.w[i].pid > 0) {
			kill(master.w[i].pid, SIGTERM);
			return;
		}
		master.w[i].replace = 0;
	}
	log_info("reload complete");
}

/*
 * Keys that only a restart can change: keep the running value and say so.
 */
static void
master_keep(const char *key, char **now, char **next)
{
	char	*shown;

	if (strcmp(*now, *next) == 0)
		return;
	shown = config_store_redact(*now);	/* never a password */
	log_warnx("reload: %s cannot change without a restart; keeping %s",
	    key, shown);
	free(shown);
	free(*next);
	*next = xstrdup(*now);
}

/*
 * Read the configuration at path (NULL: the built-in defaults), resolve it
 * and load the keys it names: what racerd starts with and what a reload
 * reads.  Returns it, or NULL with a message in *cause; a warning that
 * does not stop it is left in *warn.  The caller frees both.
 */
struct config *
master_load(const char *path, char **warn, char **cause)
{
	struct config	*cfg;

	if (path != NULL)
		cfg = config_load(path, cause);
	else
		cfg = config_default();
	if (cfg != NULL && (config_resolve(cfg, cause) != 0 ||
	    worker_load_keys(cfg, warn, cause) != 0)) {
		config_free(cfg);
		cfg = NULL;
	}
	return (cfg);
}

static void
master_reload(void)
{
	struct config	*next;
	char		*cause = NULL, *warn = NULL;
	int		 i;

	next = master_load(master.cfg->path, &warn, &cause);
	if (warn != NULL) {
		log_warnx("reload: %s", warn);
		free(warn);
	}
	if (next == NULL) {
		log_warnx("reload failed: %s; keeping the old configuration",
		    cause);
		free(cause);
		return;
	}
	master_keep("listen", &master.cfg->listen, &next->listen);
	master_keep("tls-listen", &master.cfg->tls_listen, &next->tls_listen);
	master_keep("instance", &master.cfg->instance, &next->instance);
	master_keep("run-dir", &master.cfg->run_dir, &next->run_dir);
	master_keep("state-dir", &master.cfg->state_dir, &next->state_dir);
	master_keep("pid-file", &master.cfg->pid_file, &next->pid_file);
	master_keep("redis", &master.cfg->redis, &next->redis);
	if (config_workers(next) != master.nworkers) {
		log_warnx("reload: workers cannot change without a restart; "
		    "keeping %d", master.nworkers);
		next->workers = master.nworkers;
	}
	if (next->max_chats != master.cfg->max_chats) {
		log_warnx("reload: max-chats cannot change without a restart;"
		    " keeping %d", master.cfg->max_chats);
		next->max_chats = master.cfg->max_chats;
	}
	/* Workers started from now on inherit this context. */
	if (tls_configure(next, &cause) != 0) {
		log_warnx("reload: %s; keeping the old certificate", cause);
		free(cause);
	}
	if (config_same(master.cfg, next)) {
		config_free(next);
		/* Only the files it names may have changed. */
		log_info("configuration unchanged; workers reload the "
		    "certificate and key files in place");
		master_signal_workers(SIGHUP);
		return;
	}
	config_free(master.cfg);
	master.cfg = next;
	log_set_level(master.cfg->log_level);
	log_info("configuration reloaded; replacing workers one at a time");
	for (i = 0; i < master.nworkers; i++)
		master.w[i].replace = (master.w[i].pid > 0);
	master_reload_step();
}

static void
master_signal(evutil_socket_t signo, __unused short events,
    __unused void *arg)
{
	switch (signo) {
	case SIGTERM:
	case SIGINT:
		master_stop(signo);
		break;
	case SIGHUP:
		if (!master.stopping)
			master_reload();
		break;
	case SIGUSR1:
		if (log_reopen() != 0)
			log_warn("reopening the log file");
		master_signal_workers(SIGUSR1);
		break;
	case SIGCHLD:
		master_chld();
		break;
	}
}

/*
 * Detach from the terminal, but let the parent wait on a pipe until the
 * master is ready so that start-up errors reach the terminal and the exit
 * status.  Returns the write end, or -1 in the foreground.
 */
static int
master_daemonize(void)
{
	char	 buf[1024];
	ssize_t	 n, len = 0;
	int	 p[2], fd;

	if (pipe2(p, O_CLOEXEC) == -1)
		fatal("pipe");
	switch (fork()) {
	case -1:
		fatal("fork");
	case 0:
		break;
	default:
		close(p[1]);
		while ((n = read(p[0], buf + len, sizeof buf - 1 - len)) > 0)
			len += n;
		if (len == 0)
			_exit(1);
		buf[len] = '\0';
		if (strcmp(buf, "ok") == 0)
			_exit(0);
		fprintf(stderr, "racerd: %s\n", buf);
		_exit(1);
	}
	close(p[0]);
	if (setsid() == -1)
		fatal("setsid");
	if (chdir("/") == -1)
		fatal("chdir");
	/* Errors from here on travel through the pipe, not stderr. */
	if ((fd = open("/dev/null", O_RDWR)) != -1) {
		dup2(fd, STDIN_FILENO);
		dup2(fd, STDOUT_FILENO);
		dup2(fd, STDERR_FILENO);
		if (fd > STDERR_FILENO)
			close(fd);
	}
	return (p[1]);
}

static void
master_report(int fd, const char *what)
{
	if (fd == -1)
		return;
	if (write(fd, what, strlen(what)) == -1) {
		/* The parent is gone; nothing to tell. */
	}
	close(fd);
}

/* A store password in a file everyone may read is no secret. */
static void
master_warn_secret(const char *addr)
{
	struct config_store	 st;
	struct stat		 sb;

	if (master.cfg->path == NULL || config_store_parse(addr, &st) != 0 ||
	    st.password[0] == '\0')
		return;
	if (stat(master.cfg->path, &sb) == 0 && (sb.st_mode & S_IROTH))
		log_warnx("%s holds the store's password and is readable by "
		    "everyone; chmod o-r it", master.cfg->path);
	sodium_memzero(&st, sizeof st);
}

static int
master_start(char **cause)
{
	static const int sigs[] = { SIGTERM, SIGINT, SIGHUP, SIGUSR1,
	    SIGCHLD };
	char	**list;
	u_int	  n;
	size_t	  i;

	if (util_mkdir_p(master.cfg->run_dir, 0755, cause) != 0)
		return (-1);
	xasprintf(&master.regname, "/racerd-%s", master.cfg->instance);
	master.nworkers = config_workers(master.cfg);
	master.reg = reg_create(master.regname, master.cfg->max_chats, master.nworkers, cause);
	if (master.reg == NULL)
		return (-1);
	if (iplimit_init(master.nworkers, cause) != 0)
		return (-1);
	if (reg_replaced(master.reg))
		log_warnx("replaced a stale registry segment %s (its master "
		    "is gone)", master.regname);
	if (master_write_pidfile(master.cfg->pid_file, cause) != 0)
		return (-1);

	master.base = event_base_new();
	if (master.base == NULL) {
		xasprintf(cause, "event_base_new failed");
		return (-1);
	}
	for (i = 0; i < nitems(sigs); i++) {
		master.sig[i] = evsignal_new(master.base, sigs[i], master_signal, NULL);
		if (master.sig[i] == NULL || evsignal_add(master.sig[i], NULL) != 0) {
			xasprintf(cause, "cannot handle signal %d", sigs[i]);
			return (-1);
		}
	}
	signal(SIGPIPE, SIG_IGN);
	master.store_timer = evtimer_new(master.base, master_store_restart, NULL);

	if (strcmp(master.cfg->redis, "embedded") == 0) {
		if (store_embedded_start(master.cfg, cause) != 0)
			return (-1);
	}
	master.store_addr = store_address(master.cfg);
	list = config_store_list(master.store_addr, &n);
	for (i = 0; i < n; i++) {
		if (store_check_policy(list[i], cause) != 0) {
			config_store_list_free(list);
			return (-1);
		}
		master_warn_secret(list[i]);
	}
	store_note_shards(master.cfg, list, n);
	config_store_list_free(list);

	master.w = xcalloc(master.nworkers, sizeof *master.w);
	for (i = 0; i < (size_t)master.nworkers; i++) {
		master.w[i].pid = -1;
		master.w[i].respawn = evtimer_new(master.base, master_respawn_cb,
		    (void *)(intptr_t)i);
	}
	return (0);
}

/*
 * A connection is a descriptor: take all that the hard limit allows, as
 * Redis and nginx's worker_rlimit_nofile do.  Workers and the embedded
 * store inherit it.
 */
static void
master_rlimit(void)
{
	struct rlimit	 rl;
	rlim_t		 was;

	if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
		log_warn("getrlimit");
		return;
	}
	if (rl.rlim_cur >= rl.rlim_max)
		return;
	was = rl.rlim_cur;
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
		log_warn("setrlimit");
	else
		log_info("open files limit raised from %llu to %llu",
		    (unsigned long long)was, (unsigned long long)rl.rlim_cur);
}

/*
 * Run the master until shutdown.  Takes ownership of cfg.  Returns the
 * process exit status.
 */
int
master_main(struct config *cfg, int foreground)
{
	char	*cause = NULL;
	int	 i, ready = -1;

	master.cfg = cfg;
	master.lfd = master.tlsfd = -1;
	master.pidfd = -1;
	if (tls_configure(cfg, &cause) != 0 ||
	    (*cfg->listen != '\0' &&
	    (master.lfd = master_listen(cfg->listen, &cause)) == -1) ||
	    (tls_enabled(cfg) &&
	    (master.tlsfd = master_listen(cfg->tls_listen, &cause)) == -1)) {
		fprintf(stderr, "racerd: %s\n", cause);
		return (1);
	}
	if (!foreground)
		ready = master_daemonize();
	master.ready = ready;
	log_open(cfg->log_file, foreground, cfg->log_level, "master");
	master_rlimit();

	if (master_start(&cause) != 0) {
		log_warnx("%s", cause);
		if (foreground && cfg->log_file != NULL &&
		    *cfg->log_file != '\0')
			fprintf(stderr, "racerd: %s\n", cause);
		master_report(ready, cause);
		free(cause);
		if (master.pidfile_written)
			unlink(cfg->pid_file);
		store_embedded_stop(cfg->shutdown_timeout);
		if (master.reg != NULL) {
			reg_close(master.reg);
			reg_unlink(master.regname);
		}
		return (1);
	}
	if (master.lfd != -1)
		master_log_listen(master.lfd, "");
	if (master.tlsfd != -1)
		master_log_listen(master.tlsfd, " (TLS)");
	if (master.lfd != -1)
		auth_check_listen(master.lfd);
	if (master.tlsfd != -1)
		auth_check_listen(master.tlsfd);
	log_info("racerd %s starting %d worker(s), instance %s",
	    PACKAGE_VERSION, master.nworkers, cfg->instance);
	for (i = 0; i < master.nworkers; i++)
		master_spawn(i);
	master_report(ready, "ok");
	master.ready = -1;

	event_base_dispatch(master.base);
	return (master.exit_code);
}
