/* SPDX-License-Identifier: ISC */
/* racerd: logging. */
/*
 * One line per event: a UTC timestamp, the role ("master" or "worker[N]"),
 * the pid and the message.  Output goes to stderr in the foreground, to
 * the log file when one is configured, and to syslog otherwise.
 * log_reopen() reopens the file after rotation (SIGUSR1).  Nothing here
 * may be called from a signal handler: signals are libevent events.
 * Every message is escaped (log_escape) before it is written, so that a
 * value a client chose cannot forge or split a line.
 */
#include <sys/time.h>

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>

#include "racerd.h"

static char	*log_path;		/* log file, or NULL */
static int	 log_fd = STDERR_FILENO;
static int	 log_syslog;
static int	 log_level = LOG_LEVEL_INFO;
static char	 log_role[32] = "racerd";

static const int log_prio[] = { LOG_ERR, LOG_WARNING, LOG_INFO, LOG_DEBUG };

/* libevent's own messages go to our log (tmux event_set_log_callback). */
static void
log_event_cb(int severity, const char *msg)
{
	if (severity >= EVENT_LOG_WARN)
		log_warnx("libevent: %s", msg);
	else
		log_debug("libevent: %s", msg);
}

/*
 * Start logging: to the file at path when it is set, else to stderr in the
 * foreground and syslog otherwise.  A file that cannot be opened is fatal
 * at start (the caller has not daemonized yet when it matters).
 */
void
log_open(const char *path, int foreground, int level, const char *role)
{
	log_level = level;
	event_set_log_callback(log_event_cb);
	if (role != NULL)
		log_set_role(role);
	free(log_path);
	log_path = NULL;
	if (path != NULL && *path != '\0') {
		log_path = xstrdup(path);
		if (log_reopen() != 0)
			fatal("cannot open log file %s", path);
		log_syslog = 0;
	} else if (!foreground) {
		openlog("racerd", LOG_PID | LOG_NDELAY, LOG_DAEMON);
		log_syslog = 1;
	} else {
		log_fd = STDERR_FILENO;
		log_syslog = 0;
	}
}

/* Reopen the log file. Returns 0, or -1 (the old file is kept). */
int
log_reopen(void)
{
	int	 fd;

	if (log_path == NULL)
		return (0);
	fd = open(log_path, O_WRONLY|O_APPEND|O_CREAT|O_CLOEXEC, 0640);
	if (fd == -1)
		return (-1);
	if (log_fd != STDERR_FILENO && log_fd != -1)
		close(log_fd);
	log_fd = fd;
	return (0);
}

/* Name this process in every line: "master" or "worker[N]". */
void
log_set_role(const char *role)
{
	snprintf(log_role, sizeof log_role, "%s", role);
}

void
log_set_level(int level)
{
	log_level = level;
}

void
log_close(void)
{
	if (log_syslog)
		closelog();
	if (log_fd != STDERR_FILENO && log_fd != -1)
		close(log_fd);
	log_fd = STDERR_FILENO;
	free(log_path);
	log_path = NULL;
}

static void	log_vwrite(int, const char *, va_list, int)
		    __attribute__((__format__(__printf__, 2, 0)));

/*
 * Copy src into dst (size bytes, NUL-terminated) so that it is one line of
 * printable ASCII: a backslash becomes \\, a tab, CR or LF \t, \r or \n,
 * and any other byte outside 0x20-0x7e \xHH (as vis(3) -c does).  A log
 * line can then neither be split nor carry terminal escapes, whatever a
 * client put in a value.  Truncates at a whole escape.  Returns the length
 * of dst.
 */
static size_t
log_escape(char *dst, size_t size, const char *src)
{
	static const char	 hex[] = "0123456789abcdef";
	const unsigned char	*s = (const unsigned char *)src;
	char			 e[5];
	size_t			 n = 0, k;

	if (size == 0)
		return (0);
	for (; *s != '\0'; s++) {
		k = 0;
		if (*s == '\\' || *s == '\t' || *s == '\r' || *s == '\n') {
			e[k++] = '\\';
			e[k++] = *s == '\t' ? 't' : *s == '\r' ? 'r' :
			    *s == '\n' ? 'n' : '\\';
		} else if (*s < 0x20 || *s > 0x7e) {
			e[k++] = '\\';
			e[k++] = 'x';
			e[k++] = hex[*s >> 4];
			e[k++] = hex[*s & 0xf];
		} else
			e[k++] = *s;
		if (n + k >= size)
			break;
		memcpy(dst + n, e, k);
		n += k;
	}
	dst[n] = '\0';
	return (n);
}

static void
log_vwrite(int level, const char *fmt, va_list ap, int errnum)
{
	char		 raw[2048], msg[4096], line[4400];
	struct timeval	 tv;
	struct tm	 tm;
	int		 n, saved = errno;

	if (level > log_level)
		return;
	vsnprintf(raw, sizeof raw, fmt, ap);
	if (errnum != 0) {
		n = strlen(raw);
		snprintf(raw + n, sizeof raw - n, ": %s", strerror(errnum));
	}
	/* Values in a message may come from clients: one line, printable. */
	log_escape(msg, sizeof msg, raw);
	if (log_syslog) {
		syslog(log_prio[level], "%s: %s", log_role, msg);
		errno = saved;
		return;
	}
	gettimeofday(&tv, NULL);
	gmtime_r(&tv.tv_sec, &tm);
	n = snprintf(line, sizeof line,
	    "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ %s %ld: %s\n",
	    tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour,
	    tm.tm_min, tm.tm_sec, (int)(tv.tv_usec / 1000), log_role,
	    (long)getpid(), msg);
	if (n > (int)sizeof line - 1)
		n = sizeof line - 1;
	if (write(log_fd, line, n) == -1) {
		/* Nowhere left to report it. */
	}
	errno = saved;
}

void
log_warn(const char *fmt, ...)
{
	va_list	 ap;
	int	 e = errno;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_WARN, fmt, ap, e);
	va_end(ap);
}

void
log_warnx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_WARN, fmt, ap, 0);
	va_end(ap);
}

void
log_info(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_INFO, fmt, ap, 0);
	va_end(ap);
}

void
log_debug(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_DEBUG, fmt, ap, 0);
	va_end(ap);
}

void
fatal(const char *fmt, ...)
{
	va_list	 ap;
	int	 e = errno;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, fmt, ap, e);
	va_end(ap);
	exit(RD_EXIT_FATAL);
}

void
fatalx(const char *fmt, ...)
{
	va_list	 ap;

	va_start(ap, fmt);
	log_vwrite(LOG_LEVEL_ERROR, fmt, ap, 0);
	va_end(ap);
	exit(RD_EXIT_FATAL);
}

void
log_assert(const char *file, int line, const char *expr)
{
	log_warnx("assertion failed at %s:%d: %s", file, line, expr);
	abort();
}
