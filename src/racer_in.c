/* SPDX-License-Identifier: ISC */
/* racer: lines from standard input. */
/*
 * Each line of standard input (LF or CRLF; the last may lack its newline)
 * becomes one message; empty lines are skipped.  Standard input is read
 * by the event loop when it can be polled (a pipe, a socket, a terminal);
 * a regular file or a device (/dev/null, /dev/zero), which epoll refuses,
 * is read a chunk per loop turn instead, from a zero timeout: the loop
 * polls for signals and the socket between two chunks, so an input that
 * never ends cannot starve them.  An over-long line is refused once and
 * the rest of it, however long, is dropped as it arrives.  Reading pauses while RACER_IN_QUEUE_MAX messages
 * wait for their acknowledgement, so a large file is not read into memory
 * at once; racer.c resumes it.  At the end of input racer.c is told once.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/event.h>

#include "racerd.h"
#include "racer.h"

#define RACER_IN_CHUNK		16384
#define RACER_IN_QUEUE_MAX	1024	/* messages waiting before a pause */
#define RACER_IN_LINE_MAX	(RACER_MSG_MAX + 1)	/* longer: refused */

static struct {
	struct event	*ev;
	struct evbuffer	*buf;
	int		 polled;	/* ev watches fd 0; else a loop turn */
	int		 paused;
	int		 stopped;
	int		 skipping;	/* the rest of an over-long line */
	u_long		 lineno;
} in;

static void	racer_in_pause(void);

/*
 * Read the next chunk of an unpollable input on the next loop turn. Not
 * event_active: an event activated from its own callback runs again in
 * the same pass over the active queue, before the loop polls anything.
 */
static void
racer_in_next(void)
{
	struct timeval	 tv = { 0, 0 };

	if (event_add(in.ev, &tv) != 0)
		racer_exit(RACER_EXIT_FAIL, "cannot schedule reading standard "
		    "input");
}

static void
racer_in_line(const char *line, size_t len)
{
	const char	*why;

	in.lineno++;
	if (len == 0)
		return;
	if (racer_chat_add(line, len, &why) != 0)
		racer_warnx("line %lu not sent: %s", in.lineno, why);
}

/* Drop the rest of an over-long line. Returns 1 once it is gone. */
static int
racer_in_skip(void)
{
	struct evbuffer_ptr	 p;
	size_t			 eol;

	p = evbuffer_search_eol(in.buf, NULL, &eol, EVBUFFER_EOL_LF);
	if (p.pos == -1) {
		if (evbuffer_drain(in.buf, evbuffer_get_length(in.buf)) != 0)
			fatalx("evbuffer_drain");
		return (0);
	}
	if (evbuffer_drain(in.buf, p.pos + eol) != 0)
		fatalx("evbuffer_drain");
	in.skipping = 0;
	return (1);
}

/* Send every complete line; at EOF the rest is a line too. */
static void
racer_in_lines(int eof)
{
	char	*line;
	size_t	 len;

	for (;;) {
		if (in.skipping && !racer_in_skip())
			return;
		line = evbuffer_readln(in.buf, &len, EVBUFFER_EOL_CRLF);
		if (line == NULL)
			break;
		racer_in_line(line, len);
		free(line);
	}
	len = evbuffer_get_length(in.buf);
	if (len >= RACER_IN_LINE_MAX || (eof && len > 0)) {
		if (len > RACER_IN_LINE_MAX)
			len = RACER_IN_LINE_MAX;
		if ((line = (char *)evbuffer_pullup(in.buf, len)) == NULL)
			fatalx("evbuffer_pullup");
		racer_in_line(line, len);
		if (evbuffer_drain(in.buf, len) != 0)
			fatalx("evbuffer_drain");
		in.skipping = !eof;
	}
}

static void
racer_in_read_cb(__unused int fd, __unused short events, __unused void *arg)
{
	int	 n;

	n = evbuffer_read(in.buf, STDIN_FILENO, RACER_IN_CHUNK);
	if (n == -1) {
		if (errno == EAGAIN || errno == EINTR)
			return;
		racer_exit(RACER_EXIT_FAIL, "standard input: %s",
		    strerror(errno));
	}
	racer_in_lines(n == 0);
	if (n == 0) {
		racer_in_stop();
		racer_input_done();
		return;
	}
	if (racer_chat_pending() >= RACER_IN_QUEUE_MAX)
		racer_in_pause();
	else if (!in.polled)
		racer_in_next();
}

/*
 * Start reading standard input.  Returns 0, or -1 with *cause set (the
 * caller frees it).
 */
int
racer_in_start(struct event_base *base, char **cause)
{
	struct stat	 sb;

	if (fstat(STDIN_FILENO, &sb) != 0) {
		xasprintf(cause, "standard input: %s", strerror(errno));
		return (-1);
	}
	in.polled = S_ISFIFO(sb.st_mode) || S_ISSOCK(sb.st_mode) ||
	    isatty(STDIN_FILENO);
	if ((in.buf = evbuffer_new()) == NULL)
		fatalx("evbuffer_new");
	in.ev = event_new(base, in.polled ? STDIN_FILENO : -1,
	    in.polled ? EV_READ|EV_PERSIST : 0, racer_in_read_cb, NULL);
	if (in.ev == NULL)
		fatalx("event_new");
	if (!in.polled)
		racer_in_next();
	else if (event_add(in.ev, NULL) != 0) {
		xasprintf(cause, "cannot watch standard input");
		return (-1);
	}
	return (0);
}

/* Stop reading until racer_in_resume: enough is waiting to be sent. */
static void
racer_in_pause(void)
{
	if (in.ev == NULL || in.paused || in.stopped)
		return;
	in.paused = 1;
	if (in.polled)
		event_del(in.ev);
}

void
racer_in_resume(void)
{
	if (in.ev == NULL || !in.paused || in.stopped ||
	    racer_chat_pending() >= RACER_IN_QUEUE_MAX / 2)
		return;
	in.paused = 0;
	if (in.polled) {
		if (event_add(in.ev, NULL) != 0)
			racer_exit(RACER_EXIT_FAIL, "cannot watch standard "
			    "input");
	} else
		racer_in_next();
}

/* No more reading (end of input, or racer is finishing). */
void
racer_in_stop(void)
{
	if (in.ev == NULL || in.stopped)
		return;
	in.stopped = 1;
	event_del(in.ev);
}
