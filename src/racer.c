/* SPDX-License-Identifier: ISC */
/* racer: command-line client of racerd. */
/*
 * racer joins one chat, sends each line of standard input (or --send
 * TEXT) as a message and prints what arrives.  This file owns the options
 * and the life of the connection: it connects, reads what the end of a
 * connection means (racerd's close-code classes, racerd-protocol(7)), and
 * either reconnects -- at once, or with exponential back-off and jitter -- or
 * exits with one of the statuses of racer(1) and one line on stderr.
 *
 * One connection exists at a time.  It is freed in its end callback or by
 * a timer of ours, never from inside its own open or text callbacks.
 * Nothing here runs in a signal handler: signals are libevent events.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <jansson.h>
#include <sodium.h>

#include "racerd.h"
#include "http.h"
#include "racer.h"

#define RACER_BACKOFF_BASE	250	/* ms: the first delay after a loss */
#define RACER_BACKOFF_SLOW	1000	/* ms: the first after 4100-4199 */
#define RACER_BACKOFF_MAX	15000	/* ms: the longest delay */
#define RACER_RETRY_FIRST	500	/* ms: re-send after "unavailable" */
#define RACER_RETRY_MAX		8000
#define RACER_TIMEOUT		10	/* s: --timeout by default */
#define RACER_TIMEOUT_MAX	86400
#define RACER_OPT_CACERT	256	/* long options without a letter */
#define RACER_OPT_INSECURE	257

struct racer_opts	 racer_opts;

static struct {
	struct event_base	*base;
	struct racer_ws		*ws;
	int			 open;		/* ws is a WebSocket */
	int			 joined;	/* ws got its welcome */
	int			 ever_joined;
	uint64_t		 started;	/* monotonic ms */
	char			 refused[256];	/* the last 429 or 5xx */
	u_int			 attempts;	/* failed since a welcome */
	int			 input_done;
	int			 closing;	/* closing to exit */
	int			 status;	/* ... with this status */
	u_int			 retry_ms;
	struct event		*reconnect;	/* back-off */
	struct event		*attempt;	/* a welcome is due */
	struct event		*deadline;	/* acknowledgements are due */
	struct event		*tick;		/* acks, every second */
	struct event		*retry;		/* send again after an error */
	struct event		*sigint;
	struct event		*sigterm;
	struct stat		 token_st;	/* --token-file when read */
} racer;

static void	racer_connect(void);

static __dead void
racer_usage(void)
{
	fprintf(stderr, "usage: racer [-hjlqVv] [-K file] [-k token] "
	    "[-m text] [-n count] [-s seq]\n"
	    "             [-t seconds] [-u user] [--cacert file] [--insecure]\n"
	    "             [--e2e-secret-file file] "
	    "ws[s]://host[:port][/prefix] chat\n");
	exit(RACER_EXIT_USAGE);
}

/* Print "racer: message" on stderr. */
void
racer_warnx(const char *fmt, ...)
{
	va_list	 ap;

	fflush(stdout);
	fputs("racer: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Exit with status, after one line on stderr unless fmt is NULL. */
void
racer_exit(int status, const char *fmt, ...)
{
	va_list	 ap;

	if (fmt != NULL) {
		fflush(stdout);
		fputs("racer: ", stderr);
		va_start(ap, fmt);
		vfprintf(stderr, fmt, ap);
		va_end(ap);
		fputc('\n', stderr);
	}
	exit(status);
}

/* --- The URL and the options --- */

/* Parse a decimal number in [min, max]. Returns 0, or -1. */
static int
racer_parse_num(const char *s, long long min, long long max, long long *out)
{
	char	*end;

	if (*s < '0' || *s > '9')
		return (-1);
	errno = 0;
	*out = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || *out < min || *out > max)
		return (-1);
	return (0);
}

static int
racer_url_port(const char *s, char **cause)
{
	long long	 port;

	if (racer_parse_num(s, 1, 65535, &port) != 0) {
		xasprintf(cause, "bad port \"%s\" in the URL", s);
		return (-1);
	}
	return (0);
}

/* Split an authority ("host", "host:port", "[v6]:port") into racer_opts. */
static int
racer_url_authority(const char *a, size_t len, char **cause)
{
	const char	*colon, *end = a + len;
	char		*hostport;

	racer_opts.authority = xstrndup(a, len);
	hostport = racer_opts.authority;
	if (*hostport == '[') {
		if ((colon = strchr(hostport, ']')) == NULL)
			goto bad;
		racer_opts.host = xstrndup(hostport + 1, colon - hostport - 1);
		colon++;
		if (*colon != '\0' && *colon != ':')
			goto bad;
	} else {
		colon = strchr(hostport, ':');
		if (colon != NULL && strchr(colon + 1, ':') != NULL) {
			xasprintf(cause, "an IPv6 address in a URL goes in "
			    "brackets: ws://[%s]", hostport);
			return (-1);
		}
		racer_opts.host = xstrndup(hostport, colon != NULL ?
		    (size_t)(colon - hostport) : len);
	}
	if (*racer_opts.host == '\0')
		goto bad;
	if (colon != NULL && *colon == ':') {
		if (colon + 1 == end)
			goto bad;
		racer_opts.port = xstrdup(colon + 1);
		return (racer_url_port(racer_opts.port, cause));
	}
	racer_opts.port = xstrdup(racer_opts.tls ? "443" : "80");
	return (0);
bad:
	xasprintf(cause, "bad host in the URL: %s", racer_opts.url);
	return (-1);
}

/*
 * Parse ws://host[:port][/prefix] or wss://... into racer_opts.  Returns
 * 0, or -1 with *cause set (the caller frees it).
 */
static int
racer_url(const char *url, char **cause)
{
	const char	*a, *p;
	size_t		 i, len;

	for (i = 0; url[i] != '\0'; i++) {
		if ((u_char)url[i] <= 0x20 || url[i] == 0x7f) {
			xasprintf(cause, "bad URL: it contains a space or a "
			    "control character");
			return (-1);
		}
	}
	if (strncasecmp(url, "wss://", 6) == 0) {
		racer_opts.tls = 1;
		a = url + 6;
	} else if (strncasecmp(url, "ws://", 5) == 0)
		a = url + 5;
	else {
		xasprintf(cause, "bad URL \"%s\": it must start with ws:// "
		    "or wss://", url);
		return (-1);
	}
	len = strcspn(a, "/?#");
	if (len == 0 || memchr(a, '@', len) != NULL) {
		xasprintf(cause, "bad host in the URL: %s", url);
		return (-1);
	}
	p = a + len;
	if (strpbrk(p, "?#") != NULL) {
		xasprintf(cause, "bad URL \"%s\": no query or fragment, "
		    "please", url);
		return (-1);
	}
	/* A path is a prefix before /ws/CHAT (a reverse proxy's). */
	i = strlen(p);
	while (i > 0 && p[i - 1] == '/')
		i--;
	racer_opts.prefix = xstrndup(p, i);
	return (racer_url_authority(a, len, cause));
}

static long long
racer_number(const char *s, long long min, long long max, const char *what)
{
	long long	 n;

	if (racer_parse_num(s, min, max, &n) != 0)
		racer_exit(RACER_EXIT_USAGE, "%s \"%s\": not a number from "
		    "%lld to %lld", what, s, min, max);
	return (n);
}

static void
racer_check_id(const char *s, size_t max, const char *what)
{
	if (!http_valid_id(s, strlen(s), max))
		racer_exit(RACER_EXIT_USAGE, "bad %s \"%s\": 1 to %zu letters, "
		    "digits or ._:- (not . or ..)", what, s, max);
}

static const struct option racer_longopts[] = {
	{ "e2e-secret-file", required_argument,	NULL, 'E' },
	{ "help",	no_argument,		NULL, 'h' },
	{ "cacert",	required_argument,	NULL, RACER_OPT_CACERT },
	{ "history",	required_argument,	NULL, 'n' },
	{ "insecure",	no_argument,		NULL, RACER_OPT_INSECURE },
	{ "json",	no_argument,		NULL, 'j' },
	{ "listen",	no_argument,		NULL, 'l' },
	{ "quiet",	no_argument,		NULL, 'q' },
	{ "send",	required_argument,	NULL, 'm' },
	{ "since",	required_argument,	NULL, 's' },
	{ "timeout",	required_argument,	NULL, 't' },
	{ "token",	required_argument,	NULL, 'k' },
	{ "token-file",	required_argument,	NULL, 'K' },
	{ "user",	required_argument,	NULL, 'u' },
	{ "verbose",	no_argument,		NULL, 'v' },
	{ "version",	no_argument,		NULL, 'V' },
	{ NULL,		0,			NULL, 0 }
};

/*
 * Read the token of --token-file: its first line, without blanks.
 * Returns 0 if it is read (and not empty), else -1 (errno 0: empty).
 */
static int
racer_token_read(void)
{
	FILE	*f;
	char	*line = NULL, *t;
	size_t	 size = 0;
	int	 rc = -1;

	errno = 0;
	if ((f = fopen(racer_opts.token_file, "re")) == NULL)
		return (-1);
	if (fstat(fileno(f), &racer.token_st) == 0 &&
	    getline(&line, &size, f) != -1) {
		t = line + strspn(line, " \t");
		t[strcspn(t, " \t\r\n")] = '\0';
		if (*t != '\0') {
			free(racer_opts.token);
			racer_opts.token = xstrdup(t);
			rc = 0;
		}
	}
	if (rc != 0 && ferror(f) == 0)
		errno = 0;
	free(line);
	fclose(f);
	return (rc);
}

/*
 * Once a second while joined: if --token-file changed, read it again,
 * use the new token from now on and send it in a refresh, so that the
 * connection outlives the old token's expiry.
 */
static void
racer_token_check(void)
{
	struct stat	 st;
	json_t		*o;
	char		*old, *s;

	if (racer_opts.token_file == NULL ||
	    stat(racer_opts.token_file, &st) != 0)
		return;
	if (st.st_ino == racer.token_st.st_ino &&
	    st.st_size == racer.token_st.st_size &&
	    st.st_mtim.tv_sec == racer.token_st.st_mtim.tv_sec &&
	    st.st_mtim.tv_nsec == racer.token_st.st_mtim.tv_nsec)
		return;
	old = xstrdup(racer_opts.token);
	if (racer_token_read() != 0 || strcmp(old, racer_opts.token) == 0) {
		free(old);
		return;
	}
	free(old);
	if (racer_opts.verbose)
		racer_warnx("%s changed: refreshing the token",
		    racer_opts.token_file);
	o = json_pack("{s:s, s:s}", "type", "refresh", "token",
	    racer_opts.token);
	if (o == NULL || (s = json_dumps(o, JSON_COMPACT)) == NULL)
		fatalx("json");
	json_decref(o);
	if (racer_send_text(s, strlen(s)) != 0 && racer_opts.verbose)
		racer_warnx("not connected: the new token goes with the next "
		    "connection");
	free(s);
}

/* The URL and the chat id, and options that exclude each other. */
static void
racer_args(int argc, char **argv)
{
	char	*cause;

	if (argc != 2)
		racer_usage();
	racer_opts.url = argv[0];
	if (racer_url(argv[0], &cause) != 0)
		racer_exit(RACER_EXIT_USAGE, "%s", cause);
	racer_opts.chat = argv[1];
	racer_check_id(racer_opts.chat, RD_CHAT_MAX, "chat id");
	if (racer_opts.user != NULL)
		racer_check_id(racer_opts.user, RD_USER_MAX, "user name");
	if (racer_opts.send != NULL && racer_opts.listen)
		racer_exit(RACER_EXIT_USAGE, "--send and --listen exclude "
		    "each other");
	if (racer_opts.send != NULL && *racer_opts.send == '\0')
		racer_exit(RACER_EXIT_USAGE, "--send: the message is empty");
	if (racer_opts.token != NULL && racer_opts.token_file != NULL)
		racer_exit(RACER_EXIT_USAGE, "--token and --token-file exclude "
		    "each other");
	if (racer_opts.token_file != NULL && racer_token_read() != 0)
		racer_exit(RACER_EXIT_USAGE, "--token-file %s: %s",
		    racer_opts.token_file, errno != 0 ? strerror(errno) :
		    "no token in the file");
	if ((racer_opts.cacert != NULL || racer_opts.insecure) &&
	    !racer_opts.tls)
		racer_exit(RACER_EXIT_USAGE, "--cacert and --insecure are for "
		    "wss:// URLs");
	if (racer_opts.cacert != NULL && racer_opts.insecure)
		racer_exit(RACER_EXIT_USAGE, "--cacert and --insecure exclude "
		    "each other");
}

static void
racer_options(int argc, char **argv)
{
	int	 ch;

	racer_opts.since = -1;
	racer_opts.timeout = RACER_TIMEOUT;
	while ((ch = getopt_long(argc, argv, "hjK:k:lm:n:qs:t:u:vV",
	    racer_longopts, NULL)) != -1) {
		switch (ch) {
		case 'E':
			racer_opts.e2e_secret_file = optarg;
			break;
		case 'j':
			racer_opts.json = 1;
			break;
		case 'k':
			racer_opts.token = optarg;
			break;
		case 'K':
			racer_opts.token_file = optarg;
			break;
		case 'l':
			racer_opts.listen = 1;
			break;
		case 'm':
			racer_opts.send = optarg;
			break;
		case 'n':
			racer_opts.history = racer_number(optarg, 1, 1000,
			    "--history");
			break;
		case 'q':
			racer_opts.quiet = 1;
			break;
		case 's':
			racer_opts.since = racer_number(optarg, 0, INT64_MAX,
			    "--since");
			break;
		case 't':
			racer_opts.timeout = racer_number(optarg, 1,
			    RACER_TIMEOUT_MAX, "--timeout");
			break;
		case 'u':
			racer_opts.user = optarg;
			break;
		case 'v':
			racer_opts.verbose = 1;
			break;
		case 'V':
			printf("racer %s\n", PACKAGE_VERSION);
			exit(RACER_EXIT_OK);
		case RACER_OPT_CACERT:
			racer_opts.cacert = optarg;
			break;
		case RACER_OPT_INSECURE:
			racer_opts.insecure = 1;
			break;
		default:
			racer_usage();
		}
	}
	racer_args(argc - optind, argv + optind);
}

/* Arm a timer for ms milliseconds. */
static void
racer_timer_add(struct event *ev, u_int ms)
{
	struct timeval	 tv = { ms / 1000, (ms % 1000) * 1000 };

	if (evtimer_add(ev, &tv) != 0)
		fatalx("evtimer_add");
}

/* --- Sending and finishing --- */

/*
 * Send a text frame on the joined connection.  Returns 0, or -1 when
 * there is none (the frame waits for the next one).
 */
int
racer_send_text(const char *buf, size_t len)
{
	if (racer.ws == NULL || !racer.open)
		return (-1);
	return (racer_ws_send(racer.ws, buf, len));
}

/*
 * Exit with status, after an orderly close (1000) of a joined connection
 * so that the server keeps our position; message (or NULL) goes first.
 */
static void __attribute__((__format__(__printf__, 2, 3)))
racer_finish(int status, const char *fmt, ...)
{
	va_list	 ap;
	char	*s;

	if (fmt != NULL) {
		va_start(ap, fmt);
		if (xvasprintf(&s, fmt, ap) == -1)
			fatalx("xvasprintf");
		va_end(ap);
		racer_warnx("%s", s);
		free(s);
	}
	racer_in_stop();
	evtimer_del(racer.deadline);
	if (racer.ws == NULL || !racer.joined)
		racer_exit(status, NULL);
	racer_chat_ack();
	racer.closing = 1;
	racer.status = status;
	racer_ws_close(racer.ws, WS_CLOSE_NORMAL, NULL);
}

/* Finish with status after one line, message, on stderr. */
void
racer_give_up(int status, const char *message)
{
	racer_finish(status, "%s", message);
}

/* Everything read is acknowledged and no more is coming: done. */
static void
racer_check_done(void)
{
	u_int	 refused = racer_chat_refused();

	if (!racer.input_done || !racer.joined || racer_chat_busy() ||
	    racer_chat_pending() > 0 || racer.closing)
		return;
	if (refused > 0)
		racer_finish(RACER_EXIT_FAIL, "%u line%s not sent", refused,
		    refused == 1 ? "" : "s");
	else
		racer_finish(RACER_EXIT_OK, NULL);
}

/* A message was acknowledged. */
void
racer_progress(void)
{
	if (!evtimer_pending(racer.retry, NULL)) {
		racer.retry_ms = 0;
		racer_chat_pump();
	}
	racer_in_resume();
	racer_check_done();
}

/* The server refused what was in flight for now: send it again later. */
void
racer_retry_later(void)
{
	if (evtimer_pending(racer.retry, NULL))
		return;
	if (racer.retry_ms == 0)
		racer.retry_ms = RACER_RETRY_FIRST;
	else if ((racer.retry_ms *= 2) > RACER_RETRY_MAX)
		racer.retry_ms = RACER_RETRY_MAX;
	racer_timer_add(racer.retry, racer.retry_ms);
}

static void
racer_retry_cb(__unused int fd, __unused short events, __unused void *arg)
{
	racer_chat_pump();
}

/* Standard input is over: finish once everything is acknowledged. */
void
racer_input_done(void)
{
	racer.input_done = 1;
	if (!evtimer_pending(racer.deadline, NULL))
		racer_timer_add(racer.deadline, racer_opts.timeout * 1000);
	racer_check_done();
}

/* Time is up before any welcome: say why, as a refusal if there was one. */
static __dead void
racer_never_joined(void)
{
	if (racer.refused[0] != '\0')
		racer_exit(RACER_EXIT_REFUSED, "refused by the server: %s",
		    racer.refused);
	racer_exit(RACER_EXIT_CONNECT, "%s: no welcome from the server within "
	    "%d s", racer_opts.url, racer_opts.timeout);
}

static void
racer_deadline_cb(__unused int fd, __unused short events,
    __unused void *arg)
{
	u_int	 n = racer_chat_pending();

	if (!racer.ever_joined)
		racer_never_joined();
	if (n == 0)
		racer_finish(RACER_EXIT_FAIL, "the replay or history page did "
		    "not arrive within %d s", racer_opts.timeout);
	else
		racer_finish(RACER_EXIT_FAIL, "%u message%s not acknowledged "
		    "within %d s", n, n == 1 ? "" : "s", racer_opts.timeout);
}

static void
racer_signal_cb(int sig, __unused short events, __unused void *arg)
{
	u_int	 n = racer_chat_pending();

	if (racer.closing)
		racer_exit(racer.status, NULL);
	if (n > 0)
		racer_finish(RACER_EXIT_FAIL, "%s: %u message%s not "
		    "acknowledged", strsignal(sig), n, n == 1 ? "" : "s");
	else
		racer_finish(RACER_EXIT_OK, NULL);
}

static void
racer_tick_cb(__unused int fd, __unused short events, __unused void *arg)
{
	racer_chat_ack();
	racer_token_check();
}

/* --- The connection's life --- */

/* A delay for attempt n: exponential from base, capped, with jitter. */
static u_int
racer_backoff(u_int n, u_int base)
{
	u_int	 d = base;

	while (n-- > 0 && d < RACER_BACKOFF_MAX)
		d *= 2;
	if (d > RACER_BACKOFF_MAX)
		d = RACER_BACKOFF_MAX;
	return (d / 2 + randombytes_uniform(d / 2 + 1));
}

/* Connect again after ms milliseconds. */
static void
racer_reconnect_in(u_int ms)
{
	racer.attempts++;
	if (racer_opts.verbose)
		racer_warnx("reconnecting in %u.%03u s", ms / 1000, ms % 1000);
	racer_timer_add(racer.reconnect, ms);
}

static void
racer_reconnect_cb(__unused int fd, __unused short events,
    __unused void *arg)
{
	racer_connect();
}

/* The connection is gone: forget it (it may not be used again). */
static int
racer_drop(void)
{
	int	 was_joined = racer.joined;

	racer_ws_free(racer.ws);
	racer.ws = NULL;
	racer.open = racer.joined = 0;
	evtimer_del(racer.attempt);
	evtimer_del(racer.tick);
	racer_chat_disconnected();
	return (was_joined);
}

/* What close codes 4000-4099 mean, when the server gave no reason. */
static const char *
racer_close_text(int code, const char *reason)
{
	if (*reason != '\0')
		return (reason);
	switch (code) {
	case WS_CLOSE_UNAUTHORIZED:
		return ("unauthorized");
	case WS_CLOSE_FORBIDDEN:
		return ("forbidden");
	case WS_CLOSE_TAKEN_OVER:
		return ("session taken over by a newer connection");
	default:
		return ("do not reconnect");
	}
}

/* Closed by the server: racerd's close-code classes say what next. */
static void
racer_closed(const struct racer_ws_result *res, int was_joined)
{
	int		 code = res->code;
	const char	*sp = *res->why != '\0' ? " " : "";
	u_int		 ms;

	if (WS_CLOSE_IS_FINAL(code))
		racer_exit(RACER_EXIT_REFUSED, "closed by the server: %d %s",
		    code, racer_close_text(code, res->why));
	switch (code) {
	case WS_CLOSE_NORMAL:
	case WS_CLOSE_PROTOCOL:
	case WS_CLOSE_UNSUPPORTED:
	case WS_CLOSE_BAD_DATA:
	case WS_CLOSE_POLICY:
	case WS_CLOSE_TOO_BIG:
	case WS_CLOSE_EXTENSION:
		/* Ours or final: reconnecting would end the same way. */
		racer_exit(RACER_EXIT_FAIL, "closed by the server: %d%s%s",
		    code, sp, res->why);
	}
	if (WS_CLOSE_IS_RESUME(code) || code == WS_CLOSE_GOING_AWAY) {
		/* Resume at once; back off only if that fails. */
		ms = racer.attempts == 0 ? 0 :
		    racer_backoff(racer.attempts - 1, RACER_BACKOFF_BASE);
	} else if (WS_CLOSE_IS_LATER(code))
		ms = racer_backoff(racer.attempts, RACER_BACKOFF_SLOW);
	else
		ms = racer_backoff(racer.attempts, RACER_BACKOFF_BASE);
	if (was_joined)
		racer_warnx("closed by the server (%d%s%s); reconnecting",
		    code, sp, res->why);
	racer_reconnect_in(ms);
}

/* An HTTP error status instead of the upgrade. */
static void
racer_refused(const struct racer_ws_result *res, int was_joined)
{
	if (!res->racerd) {
		/* Not racerd's own answer: a proxy's, or not racerd at all. */
		if (!racer.ever_joined)
			racer_exit(RACER_EXIT_CONNECT, "%s: not a racerd "
			    "WebSocket server (%s)", racer_opts.url, res->why);
		racer_reconnect_in(racer_backoff(racer.attempts,
		    RACER_BACKOFF_BASE));
		return;
	}
	if (res->code == 401 && racer_chat_has_session() &&
	    strstr(res->why, "session") != NULL) {
		/* The session is gone: join again from our last seq. */
		racer_warnx("session expired; joining again");
		racer_chat_forget_session();
		racer_reconnect_in(0);
		return;
	}
	/*
	 * 429 and 5xx are for now (rate, overload, store down, draining):
	 * try again, the first time until --timeout is over.
	 */
	if ((res->code == 429 || res->code >= 500) && (racer.ever_joined ||
	    util_mono_ms() - racer.started <
	    (uint64_t)racer_opts.timeout * 1000)) {
		if (was_joined || racer_opts.verbose)
			racer_warnx("refused by the server: %s; retrying",
			    res->why);
		if (!racer.ever_joined)
			snprintf(racer.refused, sizeof racer.refused, "%s",
			    res->why);
		racer_reconnect_in(racer_backoff(racer.attempts,
		    RACER_BACKOFF_BASE));
		return;
	}
	racer_exit(RACER_EXIT_REFUSED, "refused by the server: %s", res->why);
}

static void
racer_on_end(const struct racer_ws_result *end, __unused void *arg)
{
	struct racer_ws_result	 copy = *end, *res = &copy;
	int			 was_joined;

	was_joined = racer_drop();	/* frees end */
	if (racer.closing)
		racer_exit(racer.status, NULL);
	switch (res->kind) {
	case RACER_WS_CLOSED:
		racer_closed(res, was_joined);
		return;
	case RACER_WS_REFUSED:
		racer_refused(res, was_joined);
		return;
	case RACER_WS_HANDSHAKE:
		if (!racer.ever_joined)
			racer_exit(RACER_EXIT_CONNECT, "%s: not a racerd "
			    "WebSocket server (%s)", racer_opts.url, res->why);
		break;
	case RACER_WS_TLS:
		/* A certificate that does not verify will not get better. */
		if (!racer.ever_joined || res->code == 1)
			racer_exit(RACER_EXIT_CONNECT, "%s: %s",
			    racer_opts.url, res->why);
		break;
	case RACER_WS_CONNECT:
	case RACER_WS_LOST:
		if (!racer.ever_joined)
			racer_exit(RACER_EXIT_CONNECT, "%s", res->why);
		break;
	}
	if (was_joined)
		racer_warnx("connection lost (%s); reconnecting", res->why);
	else if (racer_opts.verbose)
		racer_warnx("%s", res->why);
	racer_reconnect_in(racer_backoff(racer.attempts, RACER_BACKOFF_BASE));
}

static void
racer_on_open(__unused void *arg)
{
	racer.open = 1;
}

static void
racer_on_text(const char *buf, size_t len, __unused void *arg)
{
	racer_chat_frame(buf, len);
}

/* The welcome arrived (racer_chat.c): the connection works. */
void
racer_joined(void)
{
	racer.joined = racer.ever_joined = 1;
	racer.attempts = 0;
	evtimer_del(racer.attempt);
	racer_timer_add(racer.tick, 1000);
	racer_check_done();
}

/* No welcome in time: give this attempt up. */
static void
racer_attempt_cb(__unused int fd, __unused short events, __unused void *arg)
{
	if (!racer.ever_joined)
		racer_never_joined();
	racer_drop();
	if (racer_opts.verbose)
		racer_warnx("no welcome within %d s", racer_opts.timeout);
	racer_reconnect_in(racer_backoff(racer.attempts, RACER_BACKOFF_BASE));
}

static void
racer_connect(void)
{
	static const struct racer_ws_cbs cbs = {
		racer_on_open, racer_on_text, racer_on_end, NULL
	};
	char		*query, *path;

	query = racer_chat_query();
	xasprintf(&path, "%s/ws/%s%s%s", racer_opts.prefix, racer_opts.chat,
	    *query != '\0' ? "?" : "", query);
	free(query);
	if (racer_opts.verbose)
		racer_warnx("connecting to %s:%s", racer_opts.host,
		    racer_opts.port);
	racer.ws = racer_ws_connect(racer.base, racer_opts.host,
	    racer_opts.port, racer_opts.authority, path, &cbs);
	free(path);
	racer_timer_add(racer.attempt, racer_opts.timeout * 1000);
}

static void
racer_events(void)
{
	struct event_base	*b = racer.base;

	racer.reconnect = evtimer_new(b, racer_reconnect_cb, NULL);
	racer.attempt = evtimer_new(b, racer_attempt_cb, NULL);
	racer.deadline = evtimer_new(b, racer_deadline_cb, NULL);
	racer.tick = event_new(b, -1, EV_PERSIST, racer_tick_cb, NULL);
	racer.retry = evtimer_new(b, racer_retry_cb, NULL);
	racer.sigint = evsignal_new(b, SIGINT, racer_signal_cb, NULL);
	racer.sigterm = evsignal_new(b, SIGTERM, racer_signal_cb, NULL);
	if (racer.reconnect == NULL || racer.attempt == NULL ||
	    racer.deadline == NULL || racer.tick == NULL ||
	    racer.retry == NULL || racer.sigint == NULL ||
	    racer.sigterm == NULL)
		fatalx("event_new");
	if (evsignal_add(racer.sigint, NULL) != 0 ||
	    evsignal_add(racer.sigterm, NULL) != 0)
		fatalx("evsignal_add");
}

/* What to send: --send TEXT, or lines from standard input. */
static void
racer_input(void)
{
	const char	*why;
	char		*cause;

	if (racer_opts.send != NULL && strcmp(racer_opts.send, "-") != 0) {
		if (racer_chat_add(racer_opts.send, strlen(racer_opts.send),
		    &why) != 0)
			racer_exit(RACER_EXIT_USAGE, "--send: %s", why);
		racer_input_done();
	} else if (!racer_opts.listen &&
	    racer_in_start(racer.base, &cause) != 0)
		racer_exit(RACER_EXIT_FAIL, "%s", cause);
}

int
main(int argc, char **argv)
{
	char	*cause;

	racer_options(argc, argv);
	log_set_role("racer");
	if (racer_opts.tls) {
		if (racer_tls_init(racer_opts.cacert, racer_opts.insecure,
		    &cause) != 0)
			racer_exit(RACER_EXIT_USAGE, "%s", cause);
		if (racer_opts.insecure)
			racer_warnx("warning: --insecure: the server's "
			    "certificate is not checked; anyone on the way can "
			    "read and change this chat");
	}
	if (sodium_init() == -1)
		racer_exit(RACER_EXIT_FAIL, "cannot initialise libsodium");
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		racer_exit(RACER_EXIT_FAIL, "signal: %s", strerror(errno));
	if ((racer.base = event_base_new()) == NULL)
		racer_exit(RACER_EXIT_FAIL, "cannot make an event loop");
	if (racer_e2e_setup(racer_opts.e2e_secret_file, racer_opts.chat,
	    &cause) == -1)
		racer_exit(RACER_EXIT_USAGE, "%s", cause);
	racer.started = util_mono_ms();
	racer_events();
	racer_chat_init();
	racer_input();
	racer_connect();
	if (event_base_dispatch(racer.base) != 0)
		racer_exit(RACER_EXIT_FAIL, "event loop failed");
	racer_exit(RACER_EXIT_FAIL, "nothing left to do");
}
