/* SPDX-License-Identifier: ISC */
/* racerd: configuration -- option table, defaults, racerd.conf parser. */
/*
 * Owns struct config and racerd.conf(5).  master_load (master.c) reads it
 * at start and on SIGHUP: config_load, then config_resolve; a reload that
 * fails keeps the old one.  Everything is driven by config_table[]: a new
 * key is one table row and one struct field.
 *
 * The file is parsed by libinih.  inih tells its handler nothing about line
 * numbers, so lines reach it through our own reader (config_read), which
 * counts them the way inih does, strips leading blanks (so that inih's
 * multi-line continuation never applies), and refuses section headers,
 * NUL bytes and over-long lines itself.  Every error therefore names the
 * file and the exact line, and parsing stops at the first one.
 *
 * Nothing here logs or touches process globals; errors go back in *cause.
 * Invariants: every table default passes its own checks (config_default
 * aborts otherwise; check_config tests it), and the string fields of a
 * struct config returned here are never NULL.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/un.h>

#include <arpa/inet.h>

#include <ctype.h>
#include <errno.h>
#include <ini.h>
#include <limits.h>
#include <sched.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <sodium.h>

#include "racerd.h"

/*
 * With redis = embedded the store listens on a unix socket in run-dir, and
 * sun_path holds 107 bytes: keep 43 of them for "/" and the socket's name.
 */
#define CONFIG_RUN_DIR_MAX	64

#define CONFIG_BAD_LISTEN \
	"is not HOST:PORT or [IPV6]:PORT with a port from 0 to 65535"
#define CONFIG_BAD_REDIS \
	"is not embedded, redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], " \
	"unix:/PATH[?db=N] or sentinel://HOST[:PORT][,HOST[:PORT]...]/NAME"

#define OFF(f) offsetof(struct config, f)

struct config_parse;

static const char	*config_check_listen(const char *);
static const char	*config_check_instance(const char *);
static const char	*config_check_path(const char *);
static const char	*config_check_redis(const char *);
static const char	*config_check_store(const char *);
static const char	*config_check_origins(const char *);
static const char	*config_check_memory(const char *);
static const char	*config_check_auth(const char *);
static const char	*config_check_protocols(const char *);
static void		 config_parse_error(struct config_parse *,
			     const char *, ...)
			     __attribute__((__format__(__printf__, 2, 3)));

/* Indexed by enum log_level. */
static const char *config_levels[] = { "error", "warn", "info", "debug" };

const struct config_option config_table[] = {
	{ "listen", CONFIG_STRING, 0, 261, "127.0.0.1:8080", OFF(listen),
	  "address and port of plain HTTP and WebSocket; empty: none",
	  config_check_listen },
	{ "tls-listen", CONFIG_STRING, 0, 261, "", OFF(tls_listen),
	  "address and port of HTTPS and secure WebSocket; empty: none",
	  config_check_listen },
	{ "tls-certificate", CONFIG_STRING, 0, PATH_MAX - 1, "",
	  OFF(tls_certificate),
	  "PEM file: the server's certificate, then its chain",
	  config_check_path },
	{ "tls-key", CONFIG_STRING, 0, PATH_MAX - 1, "", OFF(tls_key),
	  "PEM file: the private key of tls-certificate", config_check_path },
	{ "tls-ciphers", CONFIG_STRING, 0, 1024, "", OFF(tls_ciphers),
	  "OpenSSL cipher list for TLS 1.2; empty: OpenSSL's defaults", NULL },
	{ "tls-protocols", CONFIG_STRING, 1, 64, "TLSv1.2 TLSv1.3",
	  OFF(tls_protocols), "TLS versions offered: TLSv1.2, TLSv1.3",
	  config_check_protocols },
	{ "workers", CONFIG_INT, 0, CONFIG_WORKERS_MAX, "0", OFF(workers),
	  "worker processes; 0 is one per CPU", NULL },
	{ "instance", CONFIG_STRING, 1, 32, "racerd", OFF(instance),
	  "names the shared-memory registry and the pid file",
	  config_check_instance },
	{ "run-dir", CONFIG_STRING, 1, PATH_MAX - 1, "/run/racerd",
	  OFF(run_dir), "pid file and the embedded store's socket",
	  config_check_path },
	{ "state-dir", CONFIG_STRING, 1, PATH_MAX - 1, "/var/lib/racerd",
	  OFF(state_dir), "the embedded store's data", config_check_path },
	{ "pid-file", CONFIG_STRING, 0, PATH_MAX - 1, "", OFF(pid_file),
	  "pid file; empty is RUN-DIR/INSTANCE.pid", config_check_path },
	{ "log-file", CONFIG_STRING, 0, PATH_MAX - 1, "", OFF(log_file),
	  "log file; empty is syslog, or stderr in the foreground",
	  config_check_path },
	{ "log-level", CONFIG_LEVEL, LOG_LEVEL_ERROR, LOG_LEVEL_DEBUG, "info",
	  OFF(log_level), "error, warn, info or debug", NULL },
	{ "shutdown-timeout", CONFIG_INT, 1, 3600, "10", OFF(shutdown_timeout),
	  "seconds a graceful shutdown may take", NULL },
	{ "max-chats", CONFIG_INT, 1, 16777216, "65536", OFF(max_chats),
	  "chats the registry holds at once", NULL },
	{ "redis", CONFIG_STRING, 1, PATH_MAX - 1, "embedded", OFF(redis),
	  "the store: embedded, or one or more (comma-separated shards) of "
	  "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB] and unix:/PATH[?db=N]",
	  config_check_redis },
	{ "store-max-memory", CONFIG_STRING, 0, 32, "", OFF(store_max_memory),
	  "memory the embedded store may use (bytes, or with kb, mb, gb); "
	  "empty: a quarter of RAM", config_check_memory },
	{ "max-connections", CONFIG_INT, 0, 16777216, "0",
	  OFF(max_connections),
	  "WebSocket connections on this host at once; 0: no limit", NULL },
	{ "max-connections-per-ip", CONFIG_INT, 0, 16777216, "0",
	  OFF(max_conns_per_ip),
	  "connections from one address (IPv6: /64) at once; 0: no limit",
	  NULL },
	{ "max-request-rate", CONFIG_INT, 0, 1000000, "0",
	  OFF(max_request_rate),
	  "HTTP requests a second from one address; 0: no limit", NULL },
	{ "max-message-rate", CONFIG_INT, 0, 1000000, "1000",
	  OFF(max_message_rate),
	  "messages a second one connection may send; 0: no limit", NULL },
	{ "allowed-origins", CONFIG_STRING, 0, 4096, "", OFF(allowed_origins),
	  "Origin values allowed to connect, separated by spaces; empty: any",
	  config_check_origins },
	{ "api-key-file", CONFIG_STRING, 0, PATH_MAX - 1, "", OFF(api_key_file),
	  "file of API keys for POST /chats/{chat}/messages; empty: none",
	  config_check_path },
	{ "webroot", CONFIG_STRING, 0, PATH_MAX - 1, RACERD_WEBROOT,
	  OFF(webroot), "directory of the web client and other static "
	  "files; empty: none", config_check_path },
	{ "max-message-size", CONFIG_INT, 16, 16777216, "65536", OFF(max_message_size),
	  "bytes of one client message; larger closes with 1009", NULL },
	{ "max-outbound-bytes", CONFIG_INT, 4096, 1073741824, "1048576", OFF(max_outbound_bytes),
	  "bytes queued to one client before it is closed with 4208", NULL },
	{ "header-timeout", CONFIG_INT, 1, 3600, "10", OFF(header_timeout),
	  "seconds a client has to send a request header", NULL },
	{ "ping-interval", CONFIG_INT, 1, 3600, "30", OFF(ping_interval),
	  "seconds of silence before the server pings a WebSocket client", NULL },
	{ "idle-timeout", CONFIG_INT, 1, 86400, "75", OFF(idle_timeout),
	  "seconds of silence after which a WebSocket connection is dropped", NULL },
	{ "history-size", CONFIG_INT, 1, 100000000, "10000", OFF(history_size),
	  "messages kept per chat", NULL },
	{ "history-ttl", CONFIG_INT, 0, 315360000, "2592000", OFF(history_ttl),
	  "seconds a message is kept; 0: no age limit", NULL },
	{ "dedup-window", CONFIG_INT, 1, 604800, "300", OFF(dedup_window),
	  "seconds a message id is remembered for idempotent sends", NULL },
	{ "store-sync-replicas", CONFIG_INT, 0, 16, "0",
	  OFF(store_sync_replicas), "replicas a message must reach (WAIT) "
	  "before it is delivered and acknowledged; 0: do not wait", NULL },
	{ "recovery-max", CONFIG_INT, 1, 1000000, "1000", OFF(recovery_max),
	  "most missed messages replayed on a resume", NULL },
	{ "presence-events-max", CONFIG_INT, 0, 16777216, "100",
	  OFF(presence_events_max),
	  "members a chat may have for presence events to be sent; 0: any",
	  NULL },
	{ "presence-interval", CONFIG_INT, 0, 10000, "100",
	  OFF(presence_interval), "least milliseconds between two presence "
	  "writes to a chat's members; 0: each event at once", NULL },
	{ "session-lease", CONFIG_INT, 3, 3600, "30", OFF(session_lease),
	  "seconds a connected session outlives its host's silence", NULL },
	{ "reconnect-window", CONFIG_INT, 1, 86400, "120", OFF(reconnect_window),
	  "seconds a dropped client's session stays resumable", NULL },
	{ "auth", CONFIG_STRING, 1, 16, "none", OFF(auth),
	  "none, or token: joins and reads need a signed token",
	  config_check_auth },
	{ "auth-hmac-key-file", CONFIG_STRING, 0, PATH_MAX - 1, "",
	  OFF(auth_hmac_key_file),
	  "file of \"KID BASE64KEY\" lines: HS256 token keys; empty: none",
	  config_check_path },
	{ "auth-ed25519-key-file", CONFIG_STRING, 0, PATH_MAX - 1, "",
	  OFF(auth_ed25519_key_file),
	  "file of \"KID BASE64KEY\" lines: EdDSA public keys; empty: none",
	  config_check_path },
	{ "storage-key-file", CONFIG_STRING, 0, PATH_MAX - 1, "",
	  OFF(storage_key_file),
	  "file of \"KID BASE64KEY\" lines: 32-byte keys sealing message "
	  "bodies in the store, the first seals; empty: bodies in clear",
	  config_check_path },
};
const size_t config_table_size = nitems(config_table);

/* State of one config_load. */
struct config_parse {
	struct config	*cfg;
	const char	*path;
	FILE		*f;
	char		*buf;		/* getline buffer */
	size_t		 bufsize;
	int		 line;		/* line inih is looking at */
	int		*seen;		/* per option: line it was set on */
	int		 error_line;	/* first error of ours, or 0 */
	char		*error;		/* its message, without file:line */
	int		 read_errno;	/* reading the file failed */
};

/*
 * Parses s as a decimal number in [min, max] into *out.  Returns 0, or -1
 * if s is anything else.
 */
static int
config_number(const char *s, long long min, long long max, long long *out)
{
	long long	 ll;
	char		*end;

	if (!isdigit((u_char)*s) && !(*s == '-' && isdigit((u_char)s[1])))
		return (-1);
	errno = 0;
	ll = strtoll(s, &end, 10);
	if (errno != 0 || *end != '\0' || ll < min || ll > max)
		return (-1);
	*out = ll;
	return (0);
}

/* Returns the value of the len digits at s if it is at most max, or -1. */
static long long
config_digits(const char *s, size_t len, long long max)
{
	long long	 ll = 0;
	size_t		 i;

	if (len == 0 || len > 10)
		return (-1);
	for (i = 0; i < len; i++) {
		if (!isdigit((u_char)s[i]))
			return (-1);
		ll = ll * 10 + (s[i] - '0');
	}
	return (ll <= max ? ll : -1);
}

/*
 * Returns 1 if the len bytes at s are a host name (labels of letters,
 * digits and inner hyphens) or a dotted IPv4 address, or 0.
 */
static int
config_is_hostname(const char *s, size_t len)
{
	char		 addr[INET_ADDRSTRLEN];
	struct in_addr	 in;
	size_t		 i, label = 0;
	int		 numeric = 1;

	if (len == 0 || len > 253)
		return (0);
	for (i = 0; i < len; i++) {
		if (s[i] == '.') {
			if (label == 0 || s[i - 1] == '-')
				return (0);
			label = 0;
			continue;
		}
		if (!isalnum((u_char)s[i]) && s[i] != '-')
			return (0);
		if (s[i] == '-' && label == 0)
			return (0);
		if (!isdigit((u_char)s[i]))
			numeric = 0;
		if (++label > 63)
			return (0);
	}
	if (label == 0 || s[len - 1] == '-')
		return (0);
	if (!numeric)
		return (1);
	/* All digits and dots: it must be an address, not a name. */
	if (len >= sizeof addr)
		return (0);
	memcpy(addr, s, len);
	addr[len] = '\0';
	return (inet_pton(AF_INET, addr, &in) == 1);
}

/*
 * Measures the host at the start of s: a host name, an IPv4 address or an
 * IPv6 address in brackets, ending at ':', '/', '?' or the end.  Returns
 * its length, or 0 if there is no valid host there.
 */
static size_t
config_host_len(const char *s)
{
	char		 addr[INET6_ADDRSTRLEN];
	struct in6_addr	 in6;
	const char	*end;
	size_t		 len;

	if (*s == '[') {
		if ((end = strchr(s, ']')) == NULL)
			return (0);
		len = end - s - 1;
		if (len == 0 || len >= sizeof addr)
			return (0);
		memcpy(addr, s + 1, len);
		addr[len] = '\0';
		if (inet_pton(AF_INET6, addr, &in6) != 1)
			return (0);
		return (len + 2);
	}
	len = strcspn(s, ":/?");
	return (config_is_hostname(s, len) ? len : 0);
}

/* listen: HOST:PORT or [V6]:PORT; port 0 lets the kernel choose. */
static const char *
config_check_listen(const char *s)
{
	size_t	 n;

	if ((n = config_host_len(s)) == 0 || s[n] != ':' ||
	    config_digits(s + n + 1, strlen(s + n + 1), 65535) == -1)
		return (CONFIG_BAD_LISTEN);
	return (NULL);
}

/* instance: it goes into a shm_open(3) name and a file name. */
static const char *
config_check_instance(const char *s)
{
	if (s[strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
	    "0123456789_-")] != '\0')
		return ("has characters other than A-Z, a-z, 0-9, _ and -");
	return (NULL);
}

/* Paths: absolute, since the daemon changes directory to /. */
static const char *
config_check_path(const char *s)
{
	if (*s != '/')
		return ("is not an absolute path");
	return (NULL);
}

/* store-max-memory: empty, or a size in bytes, optionally kb, mb or gb. */
static const char *
config_check_memory(const char *s)
{
	size_t	 n = strspn(s, "0123456789");

	if (*s == '\0')
		return (NULL);
	if (n == 0 || (s[n] != '\0' && strcasecmp(s + n, "kb") != 0 &&
	    strcasecmp(s + n, "mb") != 0 && strcasecmp(s + n, "gb") != 0))
		return ("is not a size in bytes (optionally with kb, mb or gb)");
	if (strspn(s, "0") == n)
		return ("must be more than 0");
	return (NULL);
}

/* Origins: http(s)://HOST[:PORT] words separated by blanks, or "*". */
static const char *
config_check_origins(const char *s)
{
	const char	*p, *h, *end;

	for (p = s; *p != '\0'; p = end) {
		p += strspn(p, " \t");
		if (*p == '\0')
			break;
		end = p + strcspn(p, " \t");
		if (end - p == 1 && *p == '*')
			continue;
		if (strncmp(p, "http://", 7) == 0)
			h = p + 7;
		else if (strncmp(p, "https://", 8) == 0)
			h = p + 8;
		else
			h = NULL;
		if (h == NULL || h >= end || memchr(h, '/', end - h) != NULL)
			return ("is not a list of http(s)://HOST[:PORT] or *");
	}
	return (NULL);
}

/* auth: none or token. */
static const char *
config_check_auth(const char *s)
{
	if (strcmp(s, "none") != 0 && strcmp(s, "token") != 0)
		return ("is not none or token");
	return (NULL);
}

/* tls-protocols: TLSv1.2 and TLSv1.3, one or both. */
static const char *
config_check_protocols(const char *s)
{
	const char	*end;
	size_t		 n, words = 0;

	for (; *s != '\0'; s = end) {
		s += strspn(s, " \t,");
		if (*s == '\0')
			break;
		end = s + strcspn(s, " \t,");
		n = end - s;
		if (n != 7 || (strncmp(s, "TLSv1.2", n) != 0 &&
		    strncmp(s, "TLSv1.3", n) != 0))
			return ("is not TLSv1.2, TLSv1.3 or both");
		words++;
	}
	return (words == 0 ? "names no protocol" : NULL);
}

/* unix:/PATH[?db=N], s pointing after "unix:". */
static const char *
config_check_redis_unix(const char *s)
{
	struct sockaddr_un	 sun;
	size_t			 n;

	n = strcspn(s, "?");
	if (*s != '/' || n < 2)
		return (CONFIG_BAD_REDIS);
	if (n >= sizeof sun.sun_path)
		return ("has a socket path longer than 107 bytes");
	s += n;
	if (*s == '\0')
		return (NULL);
	if (strncmp(s, "?db=", 4) != 0 ||
	    config_digits(s + 4, strlen(s + 4), INT_MAX) == -1)
		return (CONFIG_BAD_REDIS);
	return (NULL);
}

/*
 * The credentials of a store URL: the len bytes at s, "USER:PASSWORD" or
 * ":PASSWORD", percent-escapes allowed (RFC 3986 userinfo).  Returns NULL
 * if good, else why not; with out, fills in the decoded user and password.
 */
static const char *
config_store_userinfo(const char *s, size_t len, struct config_store *out)
{
	const char	*colon;
	char		*dst, *end, hex[3];
	size_t		 i;

	if ((colon = memchr(s, ':', len)) == NULL)
		return ("has a user but no password (redis://USER:PASSWORD@"
		    "HOST or redis://:PASSWORD@HOST)");
	for (i = 0; i < len; i++) {
		if ((u_char)s[i] <= 0x20 || s[i] == 0x7f)
			return ("has a space or control character in its "
			    "credentials");
		if (s[i] == '%' && (i + 2 >= len ||
		    !isxdigit((u_char)s[i + 1]) ||
		    !isxdigit((u_char)s[i + 2]) ||
		    (s[i + 1] == '0' && s[i + 2] == '0')))
			return ("has a bad %-escape in its credentials");
	}
	if ((size_t)(colon - s) == len - 1)
		return ("has an empty password");
	if (out == NULL)
		return (NULL);
	dst = out->user;
	end = out->user + sizeof out->user - 1;
	for (i = 0; i < len; i++) {
		if (s + i == colon) {
			*dst = '\0';
			dst = out->password;
			end = out->password + sizeof out->password - 1;
			continue;
		}
		if (dst == end)
			return ("has a user or password longer than 255 bytes");
		if (s[i] == '%') {
			hex[0] = s[i + 1];
			hex[1] = s[i + 2];
			hex[2] = '\0';
			*dst++ = (char)strtoul(hex, NULL, 16);
			i += 2;
		} else
			*dst++ = s[i];
	}
	*dst = '\0';
	return (NULL);
}

/*
 * Where the credentials of a redis:// URL end: the '@' before the host,
 * or NULL if there are none.  s points after "redis://".
 */
static const char *
config_store_at(const char *s)
{
	const char	*p, *at = NULL;

	for (p = s; *p != '\0' && *p != '/'; p++) {
		if (*p == '@')
			at = p;
	}
	return (at);
}

/*
 * The shards of a redis value: addresses separated by commas or newlines,
 * blanks around them dropped.  Returns a NULL-terminated array of
 * allocated strings, for config_store_list_free, with their number in *n.
 */
char **
config_store_list(const char *s, u_int *n)
{
	char		**list = NULL;
	const char	 *end, *slash;
	size_t		  len;

	*n = 0;
	for (;;) {
		s += strspn(s, " \t\r\n");
		end = s + strcspn(s, ",\n");
		/* A sentinel:// address holds commas up to its '/'. */
		if (strncmp(s, "sentinel://", 11) == 0 &&
		    (slash = strchr(s + 11, '/')) != NULL &&
		    (size_t)(slash - s) < strcspn(s, "\n"))
			end = slash + strcspn(slash, ",\n");
		len = end - s;
		while (len > 0 && strchr(" \t\r", s[len - 1]) != NULL)
			len--;
		list = xreallocarray(list, *n + 2, sizeof *list);
		list[(*n)++] = xstrndup(s, len);
		list[*n] = NULL;
		if (*end == '\0')
			break;
		s = end + 1;
	}
	return (list);
}

void
config_store_list_free(char **list)
{
	char	**p;

	if (list == NULL)
		return;
	for (p = list; *p != NULL; p++) {
		sodium_memzero(*p, strlen(*p));	/* may hold a password */
		free(*p);
	}
	free(list);
}

/*
 * redis: embedded, or shards, each redis://[[USER]:PASSWORD@]HOST[:PORT]
 * [/DB] or unix:/PATH[?db=N], none twice.
 */
static const char *
config_check_redis(const char *s)
{
	static char	  buf[512];
	char		**list, *shown;
	const char	 *why = NULL;
	u_int		  n, i, j;

	if (strcmp(s, "embedded") == 0)
		return (NULL);
	list = config_store_list(s, &n);
	for (i = 0; i < n && why == NULL; i++) {
		shown = config_store_redact(list[i]);
		if (*list[i] == '\0')
			why = "has an empty shard address";
		else if (strcmp(list[i], "embedded") == 0)
			why = "names embedded among other shards; embedded "
			    "stands alone";
		else if (n > 1 && (why = config_check_store(list[i])) != NULL) {
			snprintf(buf, sizeof buf, "has shard %u \"%s\", which "
			    "%s", i, shown, why);
			why = buf;
		} else if (n == 1)
			why = config_check_store(list[i]);
		for (j = 0; j < i && why == NULL; j++) {
			if (strcmp(list[i], list[j]) == 0) {
				snprintf(buf, sizeof buf, "names \"%s\" twice",
				    shown);
				why = buf;
			}
		}
		free(shown);
	}
	config_store_list_free(list);
	return (why);
}

/*
 * sentinel://HOST[:PORT][,HOST[:PORT]...]/NAME, s pointing after the
 * scheme; with out, fills in the sentinels and the name.
 */
static const char *
config_check_sentinel(const char *s, struct config_store *out)
{
	char	 one[300];
	size_t	 n, h;
	int	 port, count = 0;

	for (;;) {
		/* One HOST[:PORT], up to the next ',' or '/'. */
		if ((n = strcspn(s, ",/")) == 0 || n >= sizeof one)
			return (CONFIG_BAD_REDIS);
		memcpy(one, s, n);
		one[n] = '\0';
		if ((h = config_host_len(one)) == 0)
			return (CONFIG_BAD_REDIS);
		port = 26379;
		if (one[h] == ':' &&
		    (port = config_digits(one + h + 1, n - h - 1, 65535)) < 1)
			return (CONFIG_BAD_REDIS);
		if (one[h] != ':' && one[h] != '\0')
			return (CONFIG_BAD_REDIS);
		if (count == CONFIG_SENTINELS_MAX)
			return ("names more than 8 sentinels");
		if (out != NULL) {
			if (*one == '[')
				memcpy(out->sentinel_host[count], one + 1,
				    h - 2);
			else
				memcpy(out->sentinel_host[count], one, h);
			out->sentinel_port[count] = port;
		}
		count++;
		s += n;
		if (*s != ',')
			break;
		s++;
	}
	if (*s != '/' || (n = strlen(s + 1)) == 0 ||
	    n >= sizeof out->master || strspn(s + 1, "abcdefghijklmnopqrstuvwxyz"
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-") != n)
		return ("is not sentinel://HOST[:PORT][,HOST[:PORT]...]/NAME "
		    "with a NAME of letters, digits, '.', '_' or '-'");
	if (out != NULL) {
		out->nsentinels = count;
		memcpy(out->master, s + 1, n + 1);
	}
	return (NULL);
}

/*
 * One store: redis://[[USER]:PASSWORD@]HOST[:PORT][/DB],
 * unix:/PATH[?db=N] or sentinel://HOST[:PORT][,HOST[:PORT]...]/NAME.
 */
static const char *
config_check_store(const char *s)
{
	struct config_store	 st;
	const char		*at, *why;
	size_t			 n;

	if (strncmp(s, "sentinel://", 11) == 0)
		return (config_check_sentinel(s + 11, NULL));
	if (strncmp(s, "unix:", 5) == 0)
		return (config_check_redis_unix(s + 5));
	if (strncmp(s, "redis://", 8) != 0)
		return (CONFIG_BAD_REDIS);
	s += 8;
	if ((at = config_store_at(s)) != NULL) {
		if ((why = config_store_userinfo(s, at - s, &st)) != NULL)
			return (why);
		s = at + 1;
	}
	if ((n = config_host_len(s)) == 0)
		return (CONFIG_BAD_REDIS);
	s += n;
	if (*s == ':') {
		n = strcspn(++s, "/");
		if (config_digits(s, n, 65535) < 1)
			return (CONFIG_BAD_REDIS);
		s += n;
	}
	if (*s == '/' && config_digits(s + 1, strlen(s + 1), INT_MAX) != -1)
		return (NULL);
	return (*s == '\0' ? NULL : CONFIG_BAD_REDIS);
}

/*
 * Split a store address ("unix:/PATH[?db=N]" or
 * "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB]", HOST possibly "[V6]") into
 * out, the credentials percent-decoded.  Returns 0, or -1 if it is not one.
 */
int
config_store_parse(const char *s, struct config_store *out)
{
	const char	*at;
	size_t		 n;

	memset(out, 0, sizeof *out);
	out->port = 6379;
	if (config_check_store(s) != NULL)
		return (-1);
	if (strncmp(s, "sentinel://", 11) == 0)
		return (config_check_sentinel(s + 11, out) == NULL ? 0 : -1);
	if (strncmp(s, "unix:", 5) == 0) {
		s += 5;
		n = strcspn(s, "?");
		memcpy(out->path, s, n);
		if (s[n] != '\0')
			out->db = atoi(s + n + 4);
		return (0);
	}
	s += 8;
	if ((at = config_store_at(s)) != NULL) {
		if (config_store_userinfo(s, at - s, out) != NULL)
			return (-1);
		s = at + 1;
	}
	n = config_host_len(s);
	if (*s == '[')
		memcpy(out->host, s + 1, n - 2);
	else
		memcpy(out->host, s, n);
	s += n;
	if (*s == ':')
		out->port = atoi(++s);
	s += strcspn(s, "/");
	if (*s == '/')
		out->db = atoi(s + 1);
	return (0);
}

/*
 * A store address fit for logs and messages: the password of a redis://
 * URL replaced by "***" (the user stays).  Returns an allocated string.
 */
char *
config_store_redact(const char *s)
{
	const char	*at, *colon;
	char		*out, *one, *joined, **list;
	u_int		 n, i;

	if (strpbrk(s, ",\n") != NULL &&
	    (list = config_store_list(s, &n)) != NULL && n == 1)
		config_store_list_free(list);
	else if (strpbrk(s, ",\n") != NULL) {
		/* Shards: each one redacted, joined again. */
		out = xstrdup("");
		for (i = 0; i < n; i++) {
			one = config_store_redact(list[i]);
			xasprintf(&joined, "%s%s%s", out, i > 0 ? ", " : "",
			    one);
			free(one);
			free(out);
			out = joined;
		}
		config_store_list_free(list);
		return (out);
	}
	if (strncmp(s, "redis://", 8) != 0 ||
	    (at = config_store_at(s + 8)) == NULL)
		return (xstrdup(s));
	/* Without a colon it may all be a password: hide all of it. */
	if ((colon = memchr(s + 8, ':', at - (s + 8))) == NULL)
		xasprintf(&out, "redis://***%s", at);
	else
		xasprintf(&out, "%.*s:***%s", (int)(colon - s), s, at);
	return (out);
}

/*
 * Sets option o of cfg from the string value.  Returns 0, or -1 with
 * "KEY: "VALUE" REASON" in *cause (the caller adds where it came from).
 */
static int
config_set(struct config *cfg, const struct config_option *o,
    const char *value, char **cause)
{
	void		*field = (char *)cfg + o->offset;
	const char	*why = NULL;
	char		*shown;
	long long	 ll, len;
	size_t		 i;

	switch (o->type) {
	case CONFIG_INT:
		if (config_number(value, o->min, o->max, &ll) != 0) {
			xasprintf(cause, "%s: \"%s\" is not a number between "
			    "%lld and %lld", o->name, value, o->min, o->max);
			return (-1);
		}
		*(int *)field = (int)ll;
		return (0);
	case CONFIG_LEVEL:
		for (i = 0; i < nitems(config_levels); i++) {
			if (strcmp(value, config_levels[i]) == 0) {
				*(int *)field = (int)i;
				return (0);
			}
		}
		xasprintf(cause, "%s: \"%s\" is not one of error, warn, info, "
		    "debug", o->name, value);
		return (-1);
	case CONFIG_STRING:
		len = (long long)strlen(value);
		if (len < o->min)
			why = (len == 0) ? "is empty" : "is too short";
		else if (len > o->max)
			why = "is too long";
		else if (len != 0 && o->check != NULL)
			why = o->check(value);
		if (why != NULL) {
			/* A store URL may hold a password: never show it. */
			shown = o->check == config_check_redis ?
			    config_store_redact(value) : xstrdup(value);
			if (len > o->max)
				xasprintf(cause, "%s: \"%s\" is longer than "
				    "%lld characters", o->name, shown, o->max);
			else
				xasprintf(cause, "%s: \"%s\" %s", o->name,
				    shown, why);
			free(shown);
			return (-1);
		}
		free(*(char **)field);
		*(char **)field = xstrdup(value);
		return (0);
	}
	fatalx("config_set: %s: bad type %d", o->name, (int)o->type);
}

/* Returns the option called name, or NULL. */
static const struct config_option *
config_find(const char *name)
{
	size_t	 i;

	for (i = 0; i < config_table_size; i++) {
		if (strcmp(config_table[i].name, name) == 0)
			return (&config_table[i]);
	}
	return (NULL);
}

/* Records an error on the current line, unless there is one already. */
static void
config_parse_error(struct config_parse *cp, const char *fmt, ...)
{
	va_list	 ap;

	if (cp->error != NULL)
		return;
	va_start(ap, fmt);
	xvasprintf(&cp->error, fmt, ap);
	va_end(ap);
	cp->error_line = cp->line;
}

/*
 * inih's reader: hands over the next line in line (size bytes), counting
 * lines exactly as inih does.  Lines we refuse are passed on empty, which
 * inih skips.  Returns line, or NULL at the end, on a read error or after
 * the first error.
 */
static char *
config_read(char *line, int size, void *arg)
{
	struct config_parse	*cp = arg;
	ssize_t			 n;
	size_t			 len;
	char			*s;

	if (cp->error != NULL)
		return (NULL);
	if ((n = getline(&cp->buf, &cp->bufsize, cp->f)) == -1) {
		if (!feof(cp->f))
			cp->read_errno = errno;
		return (NULL);
	}
	cp->line++;
	s = cp->buf;
	len = n;
	if (cp->line == 1 && strncmp(s, "\xef\xbb\xbf", 3) == 0)
		s += 3;
	s += strspn(s, " \t");
	len -= s - cp->buf;
	if (memchr(s, '\0', len) != NULL)
		config_parse_error(cp, "line contains a NUL byte");
	else if (size < 2 || len > (size_t)size - 1)
		config_parse_error(cp, "line is longer than %d characters",
		    size - 2);
	else if (*s == '[') {
		s[strcspn(s, "\r\n")] = '\0';
		config_parse_error(cp, "unexpected section header \"%s\": "
		    "options have no sections", s);
	}
	if (cp->error != NULL)
		len = 0;
	memcpy(line, s, len);
	line[len] = '\0';
	return (line);
}

/* inih's handler: sets one option.  Returns 1, or 0 on error. */
static int
config_handler(void *arg, __unused const char *section, const char *name,
    const char *value)
{
	struct config_parse		*cp = arg;
	const struct config_option	*o;
	char				*cause, *joined;
	size_t				 i;
	int				 rc;

	if ((o = config_find(name)) == NULL) {
		config_parse_error(cp, "unknown option \"%s\"", name);
		return (0);
	}
	i = o - config_table;
	if (cp->seen[i] != 0 && o->check == config_check_redis &&
	    value != NULL && *value != '\0') {
		/* redis on several lines: one shard per line. */
		xasprintf(&joined, "%s, %s", cp->cfg->redis, value);
		rc = config_set(cp->cfg, o, joined, &cause);
		sodium_memzero(joined, strlen(joined));
		free(joined);
		if (rc != 0) {
			config_parse_error(cp, "%s", cause);
			free(cause);
			return (0);
		}
		return (1);
	}
	if (cp->seen[i] != 0) {
		config_parse_error(cp, "%s: given twice, first on line %d",
		    name, cp->seen[i]);
		return (0);
	}
	cp->seen[i] = cp->line;
	if (config_set(cp->cfg, o, value != NULL ? value : "", &cause) != 0) {
		config_parse_error(cp, "%s", cause);
		free(cause);
		return (0);
	}
	return (1);
}

/*
 * Returns a new config with every default applied; pid-file is still
 * empty until config_resolve.  The caller frees it with config_free.
 */
struct config *
config_default(void)
{
	struct config	*cfg;
	char		*cause;
	size_t		 i;

	cfg = xcalloc(1, sizeof *cfg);
	for (i = 0; i < config_table_size; i++) {
		if (config_set(cfg, &config_table[i], config_table[i].dflt,
		    &cause) != 0)
			fatalx("config_default: %s", cause);
	}
	return (cfg);
}

/*
 * Loads the defaults, then the file at path over them.  Returns a new
 * config for config_free, or NULL with a message in *cause, such as
 * "FILE:LINE: unknown option "foo"", for the caller to free.
 */
struct config *
config_load(const char *path, char **cause)
{
	struct config_parse	 cp;
	int			 n;

	memset(&cp, 0, sizeof cp);
	if ((cp.f = fopen(path, "re")) == NULL) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return (NULL);
	}
	cp.path = path;
	cp.cfg = config_default();
	cp.seen = xcalloc(config_table_size, sizeof *cp.seen);

	n = ini_parse_stream(config_read, &cp, config_handler, &cp);
	if (cp.read_errno != 0)
		xasprintf(cause, "%s: %s", path, strerror(cp.read_errno));
	else if (n > 0 && (cp.error == NULL || n < cp.error_line)) {
		xasprintf(cause, "%s:%d: syntax error: expected \"key = "
		    "value\"", path, n);
	} else if (cp.error != NULL)
		xasprintf(cause, "%s:%d: %s", path, cp.error_line, cp.error);
	else if (n != 0)
		xasprintf(cause, "%s: cannot parse (inih error %d)", path, n);
	else
		cp.cfg->path = xstrdup(path);

	fclose(cp.f);
	free(cp.buf);
	free(cp.seen);
	free(cp.error);
	if (cp.cfg->path == NULL) {
		config_free(cp.cfg);
		return (NULL);
	}
	return (cp.cfg);
}

/* Frees cfg and everything it holds; cfg may be NULL. */
void
config_free(struct config *cfg)
{
	size_t	 i;

	if (cfg == NULL)
		return;
	for (i = 0; i < config_table_size; i++) {
		if (config_table[i].type == CONFIG_STRING)
			free(*(char **)((char *)cfg + config_table[i].offset));
	}
	free(cfg->path);
	free(cfg);
}

/* The listening keys and the TLS keys go together. */
static int
config_resolve_tls(const struct config *cfg, const char *file, char **cause)
{
	int	 tls = (*cfg->tls_listen != '\0');

	if (*cfg->listen == '\0' && !tls) {
		xasprintf(cause, "%s: listen and tls-listen are both empty: "
		    "clients could not connect", file);
		return (-1);
	}
	if (tls && (*cfg->tls_certificate == '\0' || *cfg->tls_key == '\0')) {
		xasprintf(cause, "%s: tls-listen needs tls-certificate and "
		    "tls-key", file);
		return (-1);
	}
	if (!tls && (*cfg->tls_certificate != '\0' || *cfg->tls_key != '\0')) {
		xasprintf(cause, "%s: tls-certificate and tls-key are for "
		    "tls-listen, which is not set", file);
		return (-1);
	}
	if (tls && strcmp(cfg->listen, cfg->tls_listen) == 0) {
		xasprintf(cause, "%s: listen and tls-listen are both \"%s\"",
		    file, cfg->listen);
		return (-1);
	}
	return (0);
}

/*
 * Returns 1 if a and b set every option alike (the files they name may
 * still differ in content), else 0.
 */
int
config_same(const struct config *a, const struct config *b)
{
	const struct config_option	*o;
	size_t				 i;

	for (i = 0; i < config_table_size; i++) {
		o = &config_table[i];
		if (o->type == CONFIG_STRING) {
			if (strcmp(*(char **)((char *)a + o->offset),
			    *(char **)((char *)b + o->offset)) != 0)
				return (0);
		} else if (*(int *)((char *)a + o->offset) !=
		    *(int *)((char *)b + o->offset))
			return (0);
	}
	return (1);
}

/*
 * Fills in derived values (an empty pid-file becomes RUN-DIR/INSTANCE.pid)
 * and checks what involves more than one key.  Returns 0, or -1 with a
 * message in *cause for the caller to free.  Calling it again is harmless.
 */
int
config_resolve(struct config *cfg, char **cause)
{
	const char	*file = cfg->path != NULL ? cfg->path : "defaults";

	if (*cfg->pid_file == '\0') {
		free(cfg->pid_file);
		xasprintf(&cfg->pid_file, "%s/%s.pid", cfg->run_dir,
		    cfg->instance);
		if (strlen(cfg->pid_file) >= PATH_MAX) {
			xasprintf(cause, "%s: run-dir: \"%s\" is too long to "
			    "hold the pid file", file, cfg->run_dir);
			return (-1);
		}
	}
	if (strcmp(cfg->log_file, cfg->pid_file) == 0) {
		xasprintf(cause, "%s: log-file and pid-file are both \"%s\"",
		    file, cfg->pid_file);
		return (-1);
	}
	if (config_resolve_tls(cfg, file, cause) != 0)
		return (-1);
	if (strcmp(cfg->redis, "embedded") == 0 &&
	    strlen(cfg->run_dir) > CONFIG_RUN_DIR_MAX) {
		xasprintf(cause, "%s: run-dir: \"%s\" is longer than %d "
		    "characters, too long for the socket of redis = embedded",
		    file, cfg->run_dir, CONFIG_RUN_DIR_MAX);
		return (-1);
	}
	return (0);
}

/*
 * Returns the number of workers to run: the workers option, or with 0 the
 * CPUs this process may run on (sysconf, narrowed by the affinity mask of
 * taskset or a container's cpuset), from 1 to CONFIG_WORKERS_MAX.
 */
int
config_workers(const struct config *cfg)
{
	cpu_set_t	 set;
	long		 n;

	if (cfg->workers > 0)
		return (cfg->workers);
	n = sysconf(_SC_NPROCESSORS_ONLN);
	if (sched_getaffinity(0, sizeof set, &set) == 0 &&
	    CPU_COUNT(&set) < n)
		n = CPU_COUNT(&set);
	if (n < 1)
		return (1);
	return (n > CONFIG_WORKERS_MAX ? CONFIG_WORKERS_MAX : (int)n);
}

/* Returns the name of a log level ("info"), or NULL if it is not one. */
const char *
config_level_name(int level)
{
	if (level < 0 || (size_t)level >= nitems(config_levels))
		return (NULL);
	return (config_levels[level]);
}
