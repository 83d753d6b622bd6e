/* SPDX-License-Identifier: ISC */
/* racerd: small helpers shared by the modules. */
#include <sys/stat.h>

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <sodium.h>

#include "racerd.h"

/* Wall-clock time in milliseconds since the epoch. */
uint64_t
util_now_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/* Monotonic time in milliseconds; for timeouts and heartbeats. */
uint64_t
util_mono_ms(void)
{
	struct timespec	 ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ((uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000);
}

/*
 * The id of a message sent without one: "s-" and 16 random hex digits,
 * never deduplicated (racerd-protocol(7)).  out has UTIL_MSG_ID_SIZE bytes.
 */
void
util_msg_id(char *out)
{
	uint8_t	 rnd[8];

	randombytes_buf(rnd, sizeof rnd);
	out[0] = 's';
	out[1] = '-';
	sodium_bin2hex(out + 2, UTIL_MSG_ID_SIZE - 2, rnd, sizeof rnd);
}

/* This host's name, looked up once; "localhost" if it has none. */
const char *
util_hostname(void)
{
	static char	 host[HOST_NAME_MAX + 1];

	if (*host == '\0') {
		if (gethostname(host, sizeof host) != 0 || *host == '\0')
			snprintf(host, sizeof host, "localhost");
		host[sizeof host - 1] = '\0';
	}
	return (host);
}

/*
 * Create a directory and its parents.  Returns 0, or -1 with a message in
 * *cause that the caller frees.
 */
int
util_mkdir_p(const char *path, mode_t mode, char **cause)
{
	char	*copy, *p;
	int	 saved;

	copy = xstrdup(path);
	for (p = copy + 1; ; p++) {
		if (*p != '/' && *p != '\0')
			continue;
		saved = *p;
		*p = '\0';
		if (mkdir(copy, mode) == -1 && errno != EEXIST) {
			xasprintf(cause, "cannot create %s: %s", copy,
			    strerror(errno));
			free(copy);
			return (-1);
		}
		if (saved == '\0')
			break;
		*p = saved;
	}
	free(copy);
	return (0);
}


/*
 * Arm a timer.  libevent refuses only an event that was never set up (a
 * bug) or when out of memory; neither may pass as a timer that never
 * fires.
 */
void
util_timer_add(struct event *ev, const struct timeval *tv)
{
	if (evtimer_add(ev, tv) != 0)
		fatalx("evtimer_add failed");
}
