/* SPDX-License-Identifier: ISC */
/* racerd: a worker process. */
/*
 * A worker runs one libevent loop: it accepts connections from the
 * listening socket it shares with its siblings, serves HTTP and WebSocket
 * on them (conn.c), keeps its store connections (bus.c) and writes its
 * heartbeat into its registry slot.  Everything here is built after fork:
 * nothing of the master's event base is used.
 *
 * SIGTERM drains: the worker stops accepting, closes every connection
 * (WebSocket clients with 4200, "restarting, resume at once") after what
 * was queued for them is flushed, and exits when the last one is gone or
 * shutdown-timeout has passed.  SIGUSR1 reopens the log file.  SIGHUP
 * (sent by the master when a reload changed no setting) reloads the files
 * in place -- the TLS certificate and key, the API, token and storage
 * keys -- without touching open connections; a file that does not load
 * keeps the old one.
 *
 * There are up to two listening sockets, plain and TLS; every worker
 * accepts from both.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <errno.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/event.h>
#include <event2/listener.h>

#include "racerd.h"
#include "registry.h"

#define WORKER_HEARTBEAT_MS	500
#define WORKER_YIELD_US		2000	/* accept pause over fair share */
#define WORKER_SHARE_SLACK	4	/* WebSockets over the share allowed */

struct worker	 wk;

static void
worker_heartbeat(__unused evutil_socket_t fd, __unused short events,
    __unused void *arg)
{
	reg_worker_heartbeat(wk.reg, wk.idx, util_mono_ms());
	if (getppid() != wk.master) {
		/* PR_SET_PDEATHSIG should have told us; be sure anyway. */
		log_warnx("master is gone; exiting");
		event_base_loopbreak(wk.base);
	}
}

/* Accept on both listening sockets, or on neither. */
static void
worker_listeners(int on)
{
	struct evconnlistener	*l[2] = { wk.listener, wk.tls_listener };
	size_t			 i;

	for (i = 0; i < nitems(l); i++) {
		if (l[i] == NULL)
			continue;
		if ((on ? evconnlistener_enable(l[i]) :
		    evconnlistener_disable(l[i])) != 0)
			log_warnx("cannot %s a listener", on ? "resume" :
			    "pause");
	}
}

static void
worker_accept(__unused struct evconnlistener *lev, evutil_socket_t fd,
    __unused struct sockaddr *sa, __unused int socklen, void *arg)
{
	struct timeval	 tv = { 0, WORKER_YIELD_US };
	uint64_t	 total;
	int		 n = wk.nworkers;

	conn_accept(fd, arg != NULL);

	/*
	 * All workers accept from one socket, and the kernel wakes whoever
	 * it likes: a worker holding more than its share steps back for a
	 * moment so that the others take the next connections.
	 */
	total = reg_total_conns(wk.reg);
	if (n > 1 && (uint64_t)wk.nws * n > total + n * WORKER_SHARE_SLACK) {
		worker_listeners(0);
		util_timer_add(wk.accept_pause, &tv);
	}
}

static void
worker_accept_error(struct evconnlistener *lev, __unused void *arg)
{
	struct timeval	 tv = { 0, 100 * 1000 };

	/* Out of descriptors: pause accepting instead of spinning. */
	log_warn("accept");
	evconnlistener_disable(lev);
	worker_listeners(0);
	util_timer_add(wk.accept_pause, &tv);
}

static void
worker_accept_resume(__unused evutil_socket_t fd, __unused short events,
    __unused void *arg)
{
	if (!wk.draining)
		worker_listeners(1);
}

static void
worker_drain_timeout(__unused evutil_socket_t fd, __unused short events,
    __unused void *arg)
{
	log_warnx("drain did not finish within shutdown-timeout; exiting");
	event_base_loopbreak(wk.base);
}

/* Called by conn.c when a connection is freed. */
void
worker_conn_gone(void)
{
	/* What the last connections wrote to the store must get there. */
	if (wk.draining && wk.nconns == 0 && wk.nlinger == 0 &&
	    bus_pending() == 0)
		event_base_loopbreak(wk.base);
}

/* Called by bus.c when no store reply is outstanding. */
void
worker_store_idle(void)
{
	worker_conn_gone();
}

/*
 * Load every key file of cfg (API keys, token keys, storage keys) and put
 * them in force.  Returns 0 with warnings in *warn (or NULL); or -1 with a
 * message in *cause, the keys in force unchanged where a file was bad.
 * The caller frees both.
 */
int
worker_load_keys(const struct config *cfg, char **warn, char **cause)
{
	*warn = NULL;
	if (api_load_keys(cfg->api_key_file, cause) != 0 ||
	    auth_configure(cfg, warn, cause) != 0 ||
	    seal_configure(cfg, warn, cause) != 0)
		return (-1);
	return (0);
}

/*
 * The master's configuration is unchanged but the files it names may not
 * be: load the certificate and key files again in place, keeping the
 * connections (and, where a file has gone bad meanwhile, the old one).
 */
static void
worker_reload(void)
{
	char	*cause = NULL, *warn = NULL;

	if (tls_configure(wk.cfg, &cause) != 0) {
		log_warnx("reload: %s; keeping the old certificate", cause);
		free(cause);
		cause = NULL;
	} else if (tls_enabled(wk.cfg))
		log_info("reload: certificate reloaded");
	if (worker_load_keys(wk.cfg, &warn, &cause) != 0) {
		log_warnx("reloading keys failed: %s; keeping the old keys",
		    cause);
		free(cause);
		return;
	}
	free(warn);
	log_info("keys reloaded");
}

static void
worker_signal(evutil_socket_t signo, __unused short events,
    __unused void *arg)
{
	struct timeval	 tv;

	switch (signo) {
	case SIGTERM:
	case SIGINT:
		if (wk.draining) {
			event_base_loopbreak(wk.base);
			break;
		}
		log_info("draining %d connection(s)", wk.nconns);
		wk.draining = 1;
		worker_listeners(0);
		tv.tv_sec = wk.cfg->shutdown_timeout;
		tv.tv_usec = 0;
		util_timer_add(wk.drain_timer, &tv);
		conn_drain_all();
		worker_conn_gone();
		break;
	case SIGUSR1:
		if (log_reopen() != 0)
			log_warn("reopening the log file");
		break;
	case SIGHUP:
		worker_reload();
		break;
	}
}

/*
 * Run worker number idx until it drains or its master dies.  Returns the
 * exit status for the master to read.
 */
int
worker_main(struct config *cfg, struct reg *reg, int idx, int lfd,
    int tlsfd, const char *store_addr)
{
	struct timeval	 tv = { 0, WORKER_HEARTBEAT_MS * 1000 };
	struct event	*hb, *sterm, *sint, *susr1, *shup;
	char		*cause = NULL, *warn = NULL;

	memset(&wk, 0, sizeof wk);
	wk.cfg = cfg;
	wk.reg = reg;
	wk.idx = idx;
	wk.master = getppid();
	wk.nworkers = config_workers(cfg);
	TAILQ_INIT(&wk.conns);
	signal(SIGPIPE, SIG_IGN);
	signal(SIGHUP, SIG_IGN);	/* until its event is set up */
	signal(SIGUSR2, SIG_IGN);

	if (reg_worker_start(reg, idx, getpid()) != 0) {
		log_warn("registry slot %d", idx);
		return (RD_EXIT_SHM);
	}
	if ((wk.base = event_base_new()) == NULL) {
		log_warnx("event_base_new failed");
		return (RD_EXIT_FATAL);
	}
	/*
	 * Backlog 0: the master listened already (4096).  -1 would make
	 * libevent listen again, with 128, and a burst of connects would
	 * overflow it: dropped SYNs, retried by the client a second later.
	 */
	if (lfd != -1 && (wk.listener = evconnlistener_new(wk.base,
	    worker_accept, NULL, LEV_OPT_CLOSE_ON_EXEC, 0, lfd)) == NULL) {
		log_warnx("cannot listen");
		return (RD_EXIT_FATAL);
	}
	if (tlsfd != -1 && (wk.tls_listener = evconnlistener_new(wk.base,
	    worker_accept, &wk, LEV_OPT_CLOSE_ON_EXEC, 0, tlsfd)) == NULL) {
		log_warnx("cannot listen");
		return (RD_EXIT_FATAL);
	}
	if (wk.listener != NULL)
		evconnlistener_set_error_cb(wk.listener, worker_accept_error);
	if (wk.tls_listener != NULL)
		evconnlistener_set_error_cb(wk.tls_listener,
		    worker_accept_error);
	wk.accept_pause = evtimer_new(wk.base, worker_accept_resume, NULL);
	wk.drain_timer = evtimer_new(wk.base, worker_drain_timeout, NULL);
	hb = event_new(wk.base, -1, EV_PERSIST, worker_heartbeat, NULL);
	sterm = evsignal_new(wk.base, SIGTERM, worker_signal, NULL);
	sint = evsignal_new(wk.base, SIGINT, worker_signal, NULL);
	susr1 = evsignal_new(wk.base, SIGUSR1, worker_signal, NULL);
	shup = evsignal_new(wk.base, SIGHUP, worker_signal, NULL);
	if (hb == NULL || sterm == NULL || sint == NULL || susr1 == NULL ||
	    shup == NULL ||
	    wk.accept_pause == NULL || wk.drain_timer == NULL) {
		log_warnx("cannot create events");
		return (RD_EXIT_FATAL);
	}
	util_timer_add(hb, &tv);
	if (evsignal_add(sterm, NULL) != 0 || evsignal_add(sint, NULL) != 0 ||
	    evsignal_add(susr1, NULL) != 0 || evsignal_add(shup, NULL) != 0) {
		log_warnx("cannot add the signal events");
		return (RD_EXIT_FATAL);
	}
	reg_worker_heartbeat(reg, idx, util_mono_ms());

	wk.counters = reg_worker_counters(reg, idx);
	if (conn_init() != 0) {
		log_warnx("cannot create events");
		return (RD_EXIT_FATAL);
	}
	if (worker_load_keys(cfg, &warn, &cause) != 0) {
		log_warnx("%s", cause);
		free(cause);
		return (RD_EXIT_NORESPAWN);
	}
	free(warn);		/* the master said it */
	room_init();
	if (bus_init(wk.base, store_addr, cfg->instance, idx) != 0) {
		cause = config_store_redact(store_addr);
		log_warnx("bad store address %s", cause);
		free(cause);
		return (RD_EXIT_NORESPAWN);
	}
	if (sess_init() != 0) {
		log_warnx("cannot set up sessions");
		return (RD_EXIT_FATAL);
	}
	log_debug("serving");
	event_base_dispatch(wk.base);

	conn_free_all();
	room_free_all();
	sess_shutdown();
	bus_shutdown();
	event_base_loop(wk.base, EVLOOP_NONBLOCK);
	if (wk.listener != NULL)
		evconnlistener_free(wk.listener);
	if (wk.tls_listener != NULL)
		evconnlistener_free(wk.tls_listener);
	tls_free();
	event_free(hb);
	event_free(sterm);
	event_free(sint);
	event_free(susr1);
	event_free(shup);
	event_free(wk.accept_pause);
	event_free(wk.drain_timer);
	event_free(wk.flush_ev);
	event_base_free(wk.base);
	return (RD_EXIT_OK);
}
