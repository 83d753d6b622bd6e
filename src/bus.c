/* racerd: a worker's connections to the store (prefix bus_). */
/*
 * Each worker keeps one asynchronous hiredis connection for commands,
 * attached to its libevent loop.  A lost connection is retried with
 * exponential back-off and jitter; while it is down bus_is_up() is 0 and
 * /healthz says 503.  An idle connection is probed with PING every
 * BUS_PROBE_MS: a probe not answered within BUS_DEADLINE_MS means the
 * connection is dead even if the socket looks fine, and it is dropped
 * and reconnected.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/event.h>
#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <hiredis/adapters/libevent.h>
#include <sodium.h>

#include "racerd.h"

#define BUS_PROBE_MS		1000
#define BUS_DEADLINE_MS		3000
#define BUS_BACKOFF_MIN_MS	100
#define BUS_BACKOFF_MAX_MS	5000

static struct {
	struct event_base	*base;
	char			 host[256];
	char			 path[256];
	int			 port;
	int			 db;
	redisAsyncContext	*cmd;
	int			 up;		/* connected and answering */
	unsigned		 backoff;	/* ms */
	struct event		*retry;
	struct event		*probe;
	uint64_t		 probe_sent;	/* 0: none outstanding */
	char			 why[128];	/* why it is down */
	int			 closing;
} bus;

static void	bus_connect(void);

/* Parse "unix:/path[?db=N]" or "redis://host[:port][/db]". */
static int
bus_parse(const char *addr)
{
	const char	*q;

	bus.port = 6379;
	bus.db = 0;
	if (strncmp(addr, "unix:", 5) == 0) {
		snprintf(bus.path, sizeof bus.path, "%s", addr + 5);
		bus.path[strcspn(bus.path, "?")] = '\0';
		if ((q = strstr(addr, "?db=")) != NULL)
			bus.db = atoi(q + 4);
		return (0);
	}
	if (sscanf(addr, "redis://%255[^:/]:%d/%d", bus.host, &bus.port,
	    &bus.db) >= 1)
		return (0);
	return (-1);
}

static void
bus_down(const char *why)
{
	if (bus.up)
		log_warnx("store connection lost: %s", why);
	bus.up = 0;
	snprintf(bus.why, sizeof bus.why, "%s", why);
}

static void
bus_schedule_retry(void)
{
	struct timeval	 tv;
	unsigned	 delay;

	if (bus.backoff == 0)
		bus.backoff = BUS_BACKOFF_MIN_MS;
	else if ((bus.backoff *= 2) > BUS_BACKOFF_MAX_MS)
		bus.backoff = BUS_BACKOFF_MAX_MS;
	/* Full jitter keeps workers and hosts from reconnecting in step. */
	delay = bus.backoff / 2 + randombytes_uniform(bus.backoff / 2 + 1);
	tv.tv_sec = delay / 1000;
	tv.tv_usec = (delay % 1000) * 1000;
	evtimer_add(bus.retry, &tv);
}

static void
bus_on_connect(const redisAsyncContext *ac, int status)
{
	if (status != REDIS_OK) {
		bus_down(ac->errstr);
		bus.cmd = NULL;		/* hiredis frees it */
		bus_schedule_retry();
		return;
	}
	log_debug("store connected");
}

static void
bus_on_disconnect(const redisAsyncContext *ac, int status)
{
	if (bus.closing)
		return;
	bus_down(status == REDIS_OK ? "closed" : ac->errstr);
	bus.cmd = NULL;
	bus.probe_sent = 0;
	bus_schedule_retry();
}

static void
bus_on_pong(__unused redisAsyncContext *ac, void *r, __unused void *arg)
{
	redisReply	*reply = r;

	if (reply == NULL)
		return;
	bus.probe_sent = 0;
	if (reply->type == REDIS_REPLY_ERROR) {
		bus_down(reply->str);
		return;
	}
	if (!bus.up)
		log_info("store is up");
	bus.up = 1;
	bus.backoff = 0;
}

static void
bus_probe(__unused evutil_socket_t fd, __unused short events,
    __unused void *arg)
{
	uint64_t	 now = util_mono_ms();

	if (bus.cmd == NULL)
		return;
	if (bus.probe_sent != 0) {
		if (now - bus.probe_sent < BUS_DEADLINE_MS)
			return;
		log_warnx("store did not answer a probe within %d ms; "
		    "reconnecting", BUS_DEADLINE_MS);
		bus_down("probe timed out");
		bus.probe_sent = 0;
		redisAsyncFree(bus.cmd);	/* runs bus_on_disconnect */
		return;
	}
	bus.probe_sent = now;
	redisAsyncCommand(bus.cmd, bus_on_pong, NULL, "PING");
}

static void
bus_retry(__unused evutil_socket_t fd, __unused short events,
    __unused void *arg)
{
	bus_connect();
}

static void
bus_connect(void)
{
	redisAsyncContext	*ac;

	if (bus.path[0] != '\0')
		ac = redisAsyncConnectUnix(bus.path);
	else
		ac = redisAsyncConnect(bus.host, bus.port);
	if (ac == NULL || ac->err) {
		bus_down(ac != NULL ? ac->errstr : "out of memory");
		if (ac != NULL)
			redisAsyncFree(ac);
		bus_schedule_retry();
		return;
	}
	if (redisLibeventAttach(ac, bus.base) != REDIS_OK) {
		redisAsyncFree(ac);
		bus_down("cannot attach to the event loop");
		bus_schedule_retry();
		return;
	}
	redisAsyncSetConnectCallback(ac, bus_on_connect);
	redisAsyncSetDisconnectCallback(ac, bus_on_disconnect);
	bus.cmd = ac;
	if (bus.db != 0)
		redisAsyncCommand(ac, NULL, NULL, "SELECT %d", bus.db);
	bus.probe_sent = util_mono_ms();
	redisAsyncCommand(ac, bus_on_pong, NULL, "PING");
}

/*
 * Start the store connection for this worker.  Returns 0, or -1 if the
 * address cannot be used.
 */
int
bus_init(struct event_base *base, const char *addr)
{
	struct timeval	 tv = { BUS_PROBE_MS / 1000,
	    (BUS_PROBE_MS % 1000) * 1000 };

	memset(&bus, 0, sizeof bus);
	bus.base = base;
	if (bus_parse(addr) != 0)
		return (-1);
	snprintf(bus.why, sizeof bus.why, "connecting");
	bus.retry = evtimer_new(base, bus_retry, NULL);
	bus.probe = event_new(base, -1, EV_PERSIST, bus_probe, NULL);
	if (bus.retry == NULL || bus.probe == NULL)
		return (-1);
	evtimer_add(bus.probe, &tv);
	bus_connect();
	return (0);
}

/* Close the store connection at worker exit. */
void
bus_shutdown(void)
{
	if (bus.probe != NULL) {
		event_free(bus.probe);
		bus.probe = NULL;
	}
	if (bus.retry != NULL) {
		event_free(bus.retry);
		bus.retry = NULL;
	}
	bus.closing = 1;
	if (bus.cmd != NULL) {
		redisAsyncFree(bus.cmd);
		bus.cmd = NULL;
	}
}

/* Returns 1 if the store answers, else 0 with the reason in *why. */
int
bus_is_up(const char **why)
{
	if (why != NULL)
		*why = bus.why;
	return (bus.up);
}
