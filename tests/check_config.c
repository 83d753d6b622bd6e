/* SPDX-License-Identifier: ISC */
/* racerd: unit tests for config.c. */
/*
 * Each test writes a configuration into a private temporary directory
 * (made by main, removed at the end) and loads it.  Errors are compared
 * whole, "FILE:LINE: message", so that a wrong line number fails.  The
 * man page and the example file are read from $top_srcdir (default ".").
 */
#include <sys/stat.h>

#include <check.h>
#include <errno.h>
#include <ftw.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "racerd.h"
#include "testutil.h"

Suite		*config_suite(void);

static char	 test_dir[PATH_MAX];

/* Removes one entry of the temporary directory (nftw callback). */
static int
test_remove(const char *path, __unused const struct stat *sb,
    __unused int flag, __unused struct FTW *ftw)
{
	return (remove(path));
}

/* Returns a new file in the test directory holding len bytes of text. */
static char *
conf_write_len(const char *text, size_t len)
{
	static int	 n;
	char		*path;
	FILE		*f;

	xasprintf(&path, "%s/%ld-%d.conf", test_dir, (long)getpid(), n++);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	ck_assert_int_eq(fclose(f), 0);
	return (path);
}

static char *
conf_write(const char *text)
{
	return (conf_write_len(text, strlen(text)));
}

/* Loads text, which must parse. */
static struct config *
conf_load(const char *text)
{
	struct config	*cfg;
	char		*path, *cause = NULL;

	path = conf_write(text);
	cfg = config_load(path, &cause);
	if (cfg == NULL)
		ck_abort_msg("config_load failed: %s", cause);
	ck_assert_str_eq(cfg->path, path);
	free(path);
	return (cfg);
}

/* Loads len bytes of text, which must fail with "FILE:LINE: msg". */
static void
conf_fails_len(const char *text, size_t len, int line, const char *msg)
{
	struct config	*cfg;
	char		*path, *cause = NULL, *want;

	path = conf_write_len(text, len);
	cfg = config_load(path, &cause);
	ck_assert_ptr_null(cfg);
	ck_assert_ptr_nonnull(cause);
	xasprintf(&want, "%s:%d: %s", path, line, msg);
	ck_assert_str_eq(cause, want);
	free(want);
	free(cause);
	free(path);
}

static void
conf_fails(const char *text, int line, const char *msg)
{
	conf_fails_len(text, strlen(text), line, msg);
}

/* Sets one key to value on line 2, which must fail with "KEY: "VALUE" why". */
static void
conf_bad_value(const char *key, const char *value, const char *why)
{
	char	*text, *msg;

	xasprintf(&text, "# comment\n%s = %s\n", key, value);
	xasprintf(&msg, "%s: \"%s\" %s", key, value, why);
	conf_fails(text, 2, msg);
	free(msg);
	free(text);
}

/* Sets one key to value, which must parse and read back the same. */
static void
conf_good_string(const char *key, const char *value, size_t offset)
{
	struct config	*cfg;
	char		*text;

	xasprintf(&text, "%s = %s\n", key, value);
	cfg = conf_load(text);
	ck_assert_str_eq(*(char **)((char *)cfg + offset), value);
	config_free(cfg);
	free(text);
}

/* Returns the whole file $top_srcdir/name, or fails. */
static char *
read_srcdir_file(const char *name)
{
	const char	*top;
	char		*path, *buf;
	FILE		*f;
	long		 len;

	if ((top = getenv("top_srcdir")) == NULL)
		top = ".";
	xasprintf(&path, "%s/%s", top, name);
	if ((f = fopen(path, "r")) == NULL)
		ck_abort_msg("%s: %s", path, strerror(errno));
	ck_assert_int_eq(fseek(f, 0, SEEK_END), 0);
	len = ftell(f);
	ck_assert_int_ge(len, 0);
	rewind(f);
	buf = xmalloc(len + 1);
	ck_assert_uint_eq(fread(buf, 1, len, f), (size_t)len);
	buf[len] = '\0';
	fclose(f);
	free(path);
	return (buf);
}

/* Returns 1 if a line of text starts with ".It Ic KEY" and a blank or end. */
static int
man_has_key(const char *text, const char *key)
{
	const char	*line, *s;
	size_t		 n = strlen(key);

	for (line = text; line != NULL; line = strchr(line, '\n')) {
		if (*line == '\n')
			line++;
		if (strncmp(line, ".It Ic ", 7) != 0)
			continue;
		s = line + 7;
		if (strncmp(s, key, n) == 0 &&
		    (s[n] == ' ' || s[n] == '\n' || s[n] == '\0'))
			return (1);
	}
	return (0);
}

START_TEST(test_defaults)
{
	struct config	*cfg;
	char		*cause = NULL;

	cfg = config_default();
	ck_assert_ptr_null(cfg->path);
	ck_assert_str_eq(cfg->listen, "127.0.0.1:8080");
	ck_assert_int_eq(cfg->workers, 0);
	ck_assert_str_eq(cfg->instance, "racerd");
	ck_assert_str_eq(cfg->run_dir, "/run/racerd");
	ck_assert_str_eq(cfg->state_dir, "/var/lib/racerd");
	ck_assert_str_eq(cfg->pid_file, "");
	ck_assert_str_eq(cfg->log_file, "");
	ck_assert_int_eq(cfg->log_level, LOG_LEVEL_INFO);
	ck_assert_int_eq(cfg->shutdown_timeout, 10);
	ck_assert_int_eq(cfg->max_chats, 65536);
	ck_assert_int_eq(cfg->max_message_size, 65536);
	ck_assert_int_eq(cfg->max_outbound_bytes, 1048576);
	ck_assert_int_eq(cfg->history_size, 10000);
	ck_assert_int_eq(cfg->reconnect_window, 120);
	ck_assert_str_eq(cfg->redis, "embedded");

	ck_assert_int_eq(config_resolve(cfg, &cause), 0);
	ck_assert_ptr_null(cause);
	ck_assert_str_eq(cfg->pid_file, "/run/racerd/racerd.pid");
	config_free(cfg);
	config_free(NULL);
}
END_TEST

START_TEST(test_store_parse)
{
	struct config_store	 st;

	ck_assert_int_eq(config_store_parse("unix:/run/r.sock?db=3", &st), 0);
	ck_assert_str_eq(st.path, "/run/r.sock");
	ck_assert_str_eq(st.host, "");
	ck_assert_int_eq(st.db, 3);
	ck_assert_int_eq(config_store_parse("unix:/run/r.sock", &st), 0);
	ck_assert_int_eq(st.db, 0);
	ck_assert_int_eq(config_store_parse("redis://cache.lan", &st), 0);
	ck_assert_str_eq(st.host, "cache.lan");
	ck_assert_int_eq(st.port, 6379);
	ck_assert_int_eq(st.db, 0);
	ck_assert_int_eq(config_store_parse("redis://10.0.0.2:6380/4", &st),
	    0);
	ck_assert_str_eq(st.host, "10.0.0.2");
	ck_assert_int_eq(st.port, 6380);
	ck_assert_int_eq(st.db, 4);
	ck_assert_int_eq(config_store_parse("redis://[::1]:7000/2", &st), 0);
	ck_assert_str_eq(st.host, "::1");
	ck_assert_int_eq(st.port, 7000);
	ck_assert_int_eq(st.db, 2);
	ck_assert_int_eq(config_store_parse("redis://h/9", &st), 0);
	ck_assert_str_eq(st.host, "h");
	ck_assert_int_eq(st.db, 9);
	ck_assert_int_eq(config_store_parse("embedded", &st), -1);
	ck_assert_int_eq(config_store_parse("redis://", &st), -1);
	ck_assert_int_eq(config_store_parse("http://h", &st), -1);
}
END_TEST

START_TEST(test_table)
{
	const struct config_option	*o, *p;
	struct config			*cfg;
	size_t				 i, j;
	long long			 dflt;
	char				*text;

	ck_assert_uint_eq(config_table_size, 42);
	for (i = 0; i < config_table_size; i++) {
		o = &config_table[i];
		ck_assert_ptr_nonnull(o->name);
		ck_assert_uint_gt(strlen(o->name), 0);
		ck_assert_uint_eq(strspn(o->name,
		    "abcdefghijklmnopqrstuvwxyz0123456789-"), strlen(o->name));
		ck_assert_ptr_nonnull(o->dflt);
		ck_assert_ptr_nonnull(o->help);
		ck_assert_int_le(o->min, o->max);
		ck_assert_uint_lt(o->offset, sizeof (struct config));
		ck_assert_uint_ne(o->offset, offsetof(struct config, path));
		for (j = 0; j < i; j++) {
			p = &config_table[j];
			ck_assert_str_ne(o->name, p->name);
			ck_assert_uint_ne(o->offset, p->offset);
		}
		switch (o->type) {
		case CONFIG_INT:
			dflt = strtoll(o->dflt, NULL, 10);
			ck_assert_int_ge(dflt, o->min);
			ck_assert_int_le(dflt, o->max);
			ck_assert_ptr_null(o->check);
			break;
		case CONFIG_LEVEL:
			ck_assert_ptr_null(o->check);
			break;
		case CONFIG_STRING:
			ck_assert_int_ge((long long)strlen(o->dflt), o->min);
			ck_assert_int_le((long long)strlen(o->dflt), o->max);
			break;
		default:
			ck_abort_msg("%s: bad type", o->name);
		}

		/* Its default, given in a file, is accepted too. */
		xasprintf(&text, "%s = %s\n", o->name, o->dflt);
		cfg = conf_load(text);
		config_free(cfg);
		free(text);
	}
}
END_TEST

START_TEST(test_level_names)
{
	ck_assert_str_eq(config_level_name(LOG_LEVEL_ERROR), "error");
	ck_assert_str_eq(config_level_name(LOG_LEVEL_WARN), "warn");
	ck_assert_str_eq(config_level_name(LOG_LEVEL_INFO), "info");
	ck_assert_str_eq(config_level_name(LOG_LEVEL_DEBUG), "debug");
	ck_assert_ptr_null(config_level_name(-1));
	ck_assert_ptr_null(config_level_name(LOG_LEVEL_DEBUG + 1));
}
END_TEST

START_TEST(test_every_key)
{
	struct config	*cfg;

	cfg = conf_load(
	    "listen = [::1]:0\n"
	    "workers = 256\n"
	    "instance = chat_2-b\n"
	    "run-dir = /tmp/r\n"
	    "state-dir = /tmp/s\n"
	    "pid-file = /tmp/r/x.pid\n"
	    "log-file = /tmp/r/x.log\n"
	    "log-level = debug\n"
	    "shutdown-timeout = 3600\n"
	    "max-chats = 16777216\n"
	    "redis = redis://db.example.org:6380/3\n");
	ck_assert_str_eq(cfg->listen, "[::1]:0");
	ck_assert_int_eq(cfg->workers, 256);
	ck_assert_int_eq(config_workers(cfg), 256);
	ck_assert_str_eq(cfg->instance, "chat_2-b");
	ck_assert_str_eq(cfg->run_dir, "/tmp/r");
	ck_assert_str_eq(cfg->state_dir, "/tmp/s");
	ck_assert_str_eq(cfg->pid_file, "/tmp/r/x.pid");
	ck_assert_str_eq(cfg->log_file, "/tmp/r/x.log");
	ck_assert_int_eq(cfg->log_level, LOG_LEVEL_DEBUG);
	ck_assert_int_eq(cfg->shutdown_timeout, 3600);
	ck_assert_int_eq(cfg->max_chats, 16777216);
	ck_assert_str_eq(cfg->redis, "redis://db.example.org:6380/3");
	config_free(cfg);

	cfg = conf_load("workers = 1\nlog-level = error\n"
	    "shutdown-timeout = 1\nmax-chats = 1\n");
	ck_assert_int_eq(cfg->workers, 1);
	ck_assert_int_eq(cfg->log_level, LOG_LEVEL_ERROR);
	ck_assert_int_eq(cfg->shutdown_timeout, 1);
	ck_assert_int_eq(cfg->max_chats, 1);
	config_free(cfg);

	cfg = conf_load("log-level = warn\n");
	ck_assert_int_eq(cfg->log_level, LOG_LEVEL_WARN);
	config_free(cfg);
	cfg = conf_load("log-level = info\n");
	ck_assert_int_eq(cfg->log_level, LOG_LEVEL_INFO);
	config_free(cfg);
}
END_TEST

START_TEST(test_layout)
{
	struct config	*cfg;

	/* Comments, blank lines, blanks around and in front of keys. */
	cfg = conf_load(
	    "# racerd.conf\n"
	    "\n"
	    "; another comment\n"
	    "   # indented comment\n"
	    "\t\n"
	    "workers=3\n"
	    "   listen   =   0.0.0.0:9000   \n"
	    "\tinstance = two\n"
	    "log-level = warn");
	ck_assert_int_eq(cfg->workers, 3);
	ck_assert_str_eq(cfg->listen, "0.0.0.0:9000");
	ck_assert_str_eq(cfg->instance, "two");
	ck_assert_int_eq(cfg->log_level, LOG_LEVEL_WARN);
	ck_assert_str_eq(cfg->redis, "embedded");
	config_free(cfg);

	/* An indented line is a key of its own, not a continuation. */
	cfg = conf_load("listen = 10.0.0.1:80\n    workers = 4\n");
	ck_assert_str_eq(cfg->listen, "10.0.0.1:80");
	ck_assert_int_eq(cfg->workers, 4);
	config_free(cfg);

	/* CRLF line ends and a UTF-8 byte order mark. */
	cfg = conf_load("\xef\xbb\xbfworkers = 5\r\n# x\r\nmax-chats = 7\r\n");
	ck_assert_int_eq(cfg->workers, 5);
	ck_assert_int_eq(cfg->max_chats, 7);
	config_free(cfg);

	/* An empty file and a file of comments give the defaults. */
	cfg = conf_load("");
	ck_assert_str_eq(cfg->listen, "127.0.0.1:8080");
	config_free(cfg);
	cfg = conf_load("# nothing\n\n");
	ck_assert_int_eq(cfg->shutdown_timeout, 10);
	config_free(cfg);

	/* Empty values where empty means "derive it". */
	cfg = conf_load("pid-file =\nlog-file =\n");
	ck_assert_str_eq(cfg->pid_file, "");
	ck_assert_str_eq(cfg->log_file, "");
	config_free(cfg);
}
END_TEST

START_TEST(test_numbers)
{
	const char	*w = "is not a number between 0 and 256";
	const char	*t = "is not a number between 1 and 3600";
	const char	*m = "is not a number between 1 and 16777216";

	conf_bad_value("workers", "x", w);
	conf_bad_value("workers", "4x", w);
	conf_bad_value("workers", "0x10", w);
	conf_bad_value("workers", "+4", w);
	conf_bad_value("workers", "-1", w);
	conf_bad_value("workers", "257", w);
	conf_bad_value("workers", "99999999999999999999999", w);
	conf_bad_value("workers", "4 # four", w);
	conf_bad_value("shutdown-timeout", "0", t);
	conf_bad_value("shutdown-timeout", "3601", t);
	conf_bad_value("shutdown-timeout", "1.5", t);
	conf_bad_value("max-chats", "0", m);
	conf_bad_value("max-chats", "16777217", m);
	conf_fails("workers =\n", 1,
	    "workers: \"\" is not a number between 0 and 256");
	conf_bad_value("log-level", "verbose",
	    "is not one of error, warn, info, debug");
	conf_bad_value("log-level", "INFO",
	    "is not one of error, warn, info, debug");
}
END_TEST

START_TEST(test_errors)
{
	static const char	 nul[] = "workers = 2\nlisten = 1.2\0.3.4:5\n";
	char			*path, *cause = NULL, *want, line[300];

	conf_fails("workers = 2\n\n# x\nfoo = 1\n", 4,
	    "unknown option \"foo\"");
	conf_fails("Workers = 2\n", 1, "unknown option \"Workers\"");
	conf_fails("workers = 2\nlisten = 1.2.3.4:5\n\nworkers = 3\n", 4,
	    "workers: given twice, first on line 1");
	conf_fails("# x\n[racerd]\nworkers = 2\n", 2,
	    "unexpected section header \"[racerd]\": options have no sections");
	conf_fails("workers = 2\n  [main]\r\n", 2,
	    "unexpected section header \"[main]\": options have no sections");
	conf_fails("\xef\xbb\xbf[main]\nworkers = 2\n", 1,
	    "unexpected section header \"[main]\": options have no sections");
	conf_fails("workers = 2\nlisten\nfoo = 1\n", 2,
	    "syntax error: expected \"key = value\"");
	conf_fails("= 1\n", 1, "unknown option \"\"");
	conf_fails_len(nul, sizeof nul - 1, 2, "line contains a NUL byte");

	/* The first error wins, whoever found it. */
	conf_fails("workers = 2\nnonsense\nfoo = 1\n", 2,
	    "syntax error: expected \"key = value\"");
	conf_fails("foo = 1\nnonsense\n", 1, "unknown option \"foo\"");
	conf_fails("workers = x\n[s]\nnonsense\n", 1,
	    "workers: \"x\" is not a number between 0 and 256");

	/* inih reads at most 198 characters a line. */
	memset(line, 'a', sizeof line);
	memcpy(line, "# ", 2);
	line[198] = '\n';
	line[199] = '\0';
	config_free(conf_load(line));
	line[198] = 'a';
	line[199] = '\n';
	line[200] = '\0';
	conf_fails(line, 1, "line is longer than 198 characters");

	/* Files that cannot be read. */
	xasprintf(&path, "%s/missing.conf", test_dir);
	ck_assert_ptr_null(config_load(path, &cause));
	xasprintf(&want, "%s: %s", path, strerror(ENOENT));
	ck_assert_str_eq(cause, want);
	free(want);
	free(cause);
	free(path);
	ck_assert_ptr_null(config_load(test_dir, &cause));
	xasprintf(&want, "%s: %s", test_dir, strerror(EISDIR));
	ck_assert_str_eq(cause, want);
	free(want);
	free(cause);
}
END_TEST

START_TEST(test_listen)
{
	const char	*good[] = { "127.0.0.1:8080", "0.0.0.0:1", "[::]:443",
	    "[::1]:65535", "[2001:db8::1]:80", "localhost:0",
	    "chat-1.example.org:8080", "[::ffff:10.0.0.1]:80", "host:08080" };
	const char	*bad[] = { "8080", ":8080", "127.0.0.1", "127.0.0.1:",
	    "127.0.0.1:65536", "127.0.0.1:-1", "127.0.0.1:80x",
	    "127.0.0.1:99999999999", "::1:80", "[::1]80", "[::1]", "[]:80",
	    "[::1:80", "[fe80::1%eth0]:80", "[1.2.3.4]:80", "1.2.3:80",
	    "256.0.0.1:80", "-host:80", "host-:80", "a..b:80", ".a:80",
	    "a.:80", "ho st:80", "host_x:80", "*:80", "http://host:80",
	    "host:80/", "\"127.0.0.1:8080\"" };
	size_t		 i;

	for (i = 0; i < nitems(good); i++)
		conf_good_string("listen", good[i], offsetof(struct config,
		    listen));
	for (i = 0; i < nitems(bad); i++) {
		conf_bad_value("listen", bad[i], "is not HOST:PORT or "
		    "[IPV6]:PORT with a port from 0 to 65535");
	}
	/* Empty turns the plain port off, if there is a TLS one. */
	conf_good_string("listen", "", offsetof(struct config, listen));
}
END_TEST

/* Resolves text, which must fail with "FILE: msg". */
static void
conf_resolve_fails(const char *text, const char *msg)
{
	struct config	*cfg;
	char		*cause = NULL, *want;

	cfg = conf_load(text);
	ck_assert_int_eq(config_resolve(cfg, &cause), -1);
	xasprintf(&want, "%s: %s", cfg->path, msg);
	ck_assert_str_eq(cause, want);
	free(want);
	free(cause);
	config_free(cfg);
}

START_TEST(test_tls)
{
	struct config	*cfg;
	char		*cause = NULL;

	conf_resolve_fails("listen =\n", "listen and tls-listen are both "
	    "empty: clients could not connect");
	conf_resolve_fails("tls-listen = 127.0.0.1:8443\n", "tls-listen "
	    "needs tls-certificate and tls-key");
	conf_resolve_fails("tls-listen = 127.0.0.1:8443\n"
	    "tls-certificate = /c.pem\n", "tls-listen needs tls-certificate "
	    "and tls-key");
	conf_resolve_fails("tls-certificate = /c.pem\ntls-key = /k.pem\n",
	    "tls-certificate and tls-key are for tls-listen, which is not "
	    "set");
	conf_resolve_fails("tls-listen = 127.0.0.1:8080\n"
	    "tls-certificate = /c.pem\ntls-key = /k.pem\n",
	    "listen and tls-listen are both \"127.0.0.1:8080\"");
	cfg = conf_load("listen =\ntls-listen = [::]:443\n"
	    "tls-certificate = /c.pem\ntls-key = /k.pem\n");
	ck_assert_int_eq(config_resolve(cfg, &cause), 0);
	ck_assert_str_eq(cfg->tls_protocols, "TLSv1.2 TLSv1.3");
	config_free(cfg);

	conf_good_string("tls-protocols", "TLSv1.3", offsetof(struct config,
	    tls_protocols));
	conf_good_string("tls-protocols", "TLSv1.2,TLSv1.3",
	    offsetof(struct config, tls_protocols));
	conf_bad_value("tls-protocols", "TLSv1.1 TLSv1.2",
	    "is not TLSv1.2, TLSv1.3 or both");
	conf_bad_value("tls-protocols", "TLSv1", "is not TLSv1.2, TLSv1.3 "
	    "or both");
	conf_bad_value("tls-protocols", ",", "names no protocol");
	conf_bad_value("tls-listen", "8443", "is not HOST:PORT or "
	    "[IPV6]:PORT with a port from 0 to 65535");
	conf_bad_value("tls-key", "key.pem", "is not an absolute path");
}
END_TEST

START_TEST(test_store_credentials)
{
	struct config_store	 st;
	char			*s;

	ck_assert_int_eq(config_store_parse("redis://:s3cret@h:6380/2", &st),
	    0);
	ck_assert_str_eq(st.user, "");
	ck_assert_str_eq(st.password, "s3cret");
	ck_assert_str_eq(st.host, "h");
	ck_assert_int_eq(st.port, 6380);
	ck_assert_int_eq(st.db, 2);
	ck_assert_int_eq(config_store_parse("redis://racerd:p%40ss%3Aw0rd%2F"
	    "@[::1]", &st), 0);
	ck_assert_str_eq(st.user, "racerd");
	ck_assert_str_eq(st.password, "p@ss:w0rd/");
	ck_assert_str_eq(st.host, "::1");
	/* The last '@' before the path ends the credentials. */
	ck_assert_int_eq(config_store_parse("redis://u:a@b@h/1", &st), 0);
	ck_assert_str_eq(st.password, "a@b");
	ck_assert_str_eq(st.host, "h");
	ck_assert_int_eq(config_store_parse("redis://h", &st), 0);
	ck_assert_str_eq(st.password, "");

	conf_good_string("redis", "redis://u:p@h:1/0", offsetof(struct config,
	    redis));
	/* Errors never show the password. */
	conf_fails("redis = redis://s3cret@h\n", 1, "redis: \"redis://***@h\" "
	    "has a user but no password (redis://USER:PASSWORD@HOST or "
	    "redis://:PASSWORD@HOST)");
	conf_fails("redis = redis://user:@h\n", 1, "redis: \"redis://user:***@h\" "
	    "has an empty password");
	conf_fails("redis = redis://u:p%zz@h\n", 1, "redis: \"redis://u:***@h\" "
	    "has a bad %-escape in its credentials");
	conf_fails("redis = redis://u:s3cret@h/x\n", 1, "redis: "
	    "\"redis://u:***@h/x\" is not embedded, redis://[[USER]:PASSWORD@]"
	    "HOST[:PORT][/DB], unix:/PATH[?db=N] or "
	    "sentinel://HOST[:PORT][,HOST[:PORT]...]/NAME");

	s = config_store_redact("redis://u:s3cret@h:1/0");
	ck_assert_str_eq(s, "redis://u:***@h:1/0");
	free(s);
	s = config_store_redact("redis://:s3cret@h");
	ck_assert_str_eq(s, "redis://:***@h");
	free(s);
	s = config_store_redact("redis://s3cret@h");
	ck_assert_str_eq(s, "redis://***@h");
	free(s);
	s = config_store_redact("redis://h:1/0");
	ck_assert_str_eq(s, "redis://h:1/0");
	free(s);
	s = config_store_redact("unix:/r.sock");
	ck_assert_str_eq(s, "unix:/r.sock");
	free(s);
}
END_TEST

/* Shards: a comma-separated list, or one redis line per shard. */
START_TEST(test_store_shards)
{
	struct config_store st;
	struct config	*cfg;
	char		**list, *s;
	u_int		  n;

	list = config_store_list(" redis://a:1 ,unix:/r.sock,\nredis://b ", &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(list[0], "redis://a:1");
	ck_assert_str_eq(list[1], "unix:/r.sock");
	ck_assert_str_eq(list[2], "redis://b");
	ck_assert_ptr_null(list[3]);
	config_store_list_free(list);

	cfg = conf_load("redis = redis://a:1, redis://b:2\n");
	ck_assert_str_eq(cfg->redis, "redis://a:1, redis://b:2");
	config_free(cfg);
	cfg = conf_load("redis = redis://a:1\nworkers = 1\nredis = unix:/s\n");
	ck_assert_str_eq(cfg->redis, "redis://a:1, unix:/s");
	config_free(cfg);

	/* A sentinel address holds commas. */
	list = config_store_list("sentinel://h1,h2:26380/m, redis://b,"
	    "sentinel://[::1]:1/x.y", &n);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(list[0], "sentinel://h1,h2:26380/m");
	ck_assert_str_eq(list[1], "redis://b");
	ck_assert_str_eq(list[2], "sentinel://[::1]:1/x.y");
	config_store_list_free(list);
	ck_assert_int_eq(config_store_parse("sentinel://h1,h2:26380/m", &st),
	    0);
	ck_assert_int_eq(st.nsentinels, 2);
	ck_assert_str_eq(st.sentinel_host[0], "h1");
	ck_assert_int_eq(st.sentinel_port[0], 26379);
	ck_assert_str_eq(st.sentinel_host[1], "h2");
	ck_assert_int_eq(st.sentinel_port[1], 26380);
	ck_assert_str_eq(st.master, "m");
	ck_assert_int_eq(config_store_parse("sentinel://[::1]:1/x.y", &st), 0);
	ck_assert_str_eq(st.sentinel_host[0], "::1");
	ck_assert_int_eq(config_store_parse("sentinel://h1/", &st), -1);
	ck_assert_int_eq(config_store_parse("sentinel://h1:0/m", &st), -1);
	ck_assert_int_eq(config_store_parse("sentinel://h1,/m", &st), -1);
	ck_assert_int_eq(config_store_parse("sentinel://h/m y", &st), -1);
	cfg = conf_load("redis = sentinel://h1:1,h2:2/m, redis://b\n");
	ck_assert_str_eq(cfg->redis, "sentinel://h1:1,h2:2/m, redis://b");
	config_free(cfg);

	s = config_store_redact("redis://:pw@a,redis://u:pw@b:2/1");
	ck_assert_str_eq(s, "redis://:***@a, redis://u:***@b:2/1");
	free(s);

	conf_fails("redis = redis://a, redis://a\n", 1,
	    "redis: \"redis://a, redis://a\" names \"redis://a\" twice");
	conf_fails("redis = redis://a,,redis://b\n", 1,
	    "redis: \"redis://a, , redis://b\" has an empty shard address");
	conf_fails("redis = embedded, redis://b\n", 1,
	    "redis: \"embedded, redis://b\" names embedded among other "
	    "shards; embedded stands alone");
	conf_fails("redis = redis://a, redis://:pw@b/x\n", 1,
	    "redis: \"redis://a, redis://:***@b/x\" has shard 1 "
	    "\"redis://:***@b/x\", which is not embedded, "
	    "redis://[[USER]:PASSWORD@]HOST[:PORT][/DB], unix:/PATH[?db=N] or "
	    "sentinel://HOST[:PORT][,HOST[:PORT]...]/NAME");
}
END_TEST

START_TEST(test_same)
{
	struct config	*a, *b;

	a = config_default();
	b = config_default();
	ck_assert_int_eq(config_same(a, b), 1);
	b->max_chats++;
	ck_assert_int_eq(config_same(a, b), 0);
	b->max_chats--;
	free(b->tls_key);
	b->tls_key = xstrdup("/k.pem");
	ck_assert_int_eq(config_same(a, b), 0);
	config_free(a);
	config_free(b);
}
END_TEST

START_TEST(test_redis)
{
	const char	*why = "is not embedded, redis://[[USER]:PASSWORD@]"
	    "HOST[:PORT][/DB], unix:/PATH[?db=N] or "
	    "sentinel://HOST[:PORT][,HOST[:PORT]...]/NAME";
	const char	*good[] = { "embedded", "redis://localhost",
	    "redis://127.0.0.1:6379", "redis://r.example.org/0",
	    "redis://[::1]:6379/15", "redis://host:1/2147483647",
	    "unix:/run/redis/redis.sock", "unix:/tmp/r.sock?db=3" };
	const char	*bad[] = { "Embedded", "redis", "redis://",
	    "redis://:6379", "redis://host:", "redis://host:0",
	    "redis://host:65536", "redis://host:x", "redis://host/",
	    "redis://host/x", "redis://host/1/2", "redis://host/2147483648",
	    "redis://[::1", "redis://host?db=1",
	    "rediss://host", "tcp://host:6379", "host:6379", "unix:",
	    "unix:/", "unix:run/redis.sock", "unix:/r.sock?db=",
	    "unix:/r.sock?db=x", "unix:/r.sock?x=1", "unix:/r.sock?db=1&x" };
	char		 path[120];
	size_t		 i;

	for (i = 0; i < nitems(good); i++)
		conf_good_string("redis", good[i], offsetof(struct config,
		    redis));
	for (i = 0; i < nitems(bad); i++)
		conf_bad_value("redis", bad[i], why);

	/* sun_path holds 107 bytes and a NUL. */
	memcpy(path, "unix:/", 6);
	memset(path + 6, 'a', sizeof path - 6);
	path[5 + 108] = '\0';
	conf_bad_value("redis", path,
	    "has a socket path longer than 107 bytes");
	path[5 + 107] = '\0';
	conf_good_string("redis", path, offsetof(struct config, redis));
}
END_TEST

START_TEST(test_instance)
{
	const char	*why =
	    "has characters other than A-Z, a-z, 0-9, _ and -";

	conf_good_string("instance", "a", offsetof(struct config, instance));
	conf_good_string("instance", "Chat_01-eu", offsetof(struct config,
	    instance));
	conf_good_string("instance", "abcdefghijklmnopqrstuvwxyz012345",
	    offsetof(struct config, instance));
	conf_bad_value("instance", "abcdefghijklmnopqrstuvwxyz0123456",
	    "is longer than 32 characters");
	conf_bad_value("instance", "a/b", why);
	conf_bad_value("instance", "a.b", why);
	conf_bad_value("instance", "a b", why);
	conf_bad_value("instance", "caf\xc3\xa9", why);
	conf_fails("instance =\n", 1, "instance: \"\" is empty");
}
END_TEST

START_TEST(test_paths)
{
	const char	*keys[] = { "run-dir", "state-dir", "pid-file",
	    "log-file" };
	size_t		 i;

	for (i = 0; i < nitems(keys); i++) {
		conf_bad_value(keys[i], "racerd", "is not an absolute path");
		conf_bad_value(keys[i], "./racerd", "is not an absolute path");
		conf_bad_value(keys[i], "~/racerd", "is not an absolute path");
	}
	conf_fails("run-dir =\n", 1, "run-dir: \"\" is empty");
	conf_fails("state-dir =\n", 1, "state-dir: \"\" is empty");
}
END_TEST

START_TEST(test_store_max_memory)
{
	const char	*why = "is not a size in bytes (optionally with kb, "
	    "mb or gb)";
	const char	*good[] = { "", "1", "1048576", "512mb", "512MB",
	    "2gb", "64kb" };
	struct config	*cfg;
	char		*text;
	size_t		 i;

	conf_bad_value("store-max-memory", "x", why);
	conf_bad_value("store-max-memory", "mb", why);
	conf_bad_value("store-max-memory", "-1", why);
	conf_bad_value("store-max-memory", "1tb", why);
	conf_bad_value("store-max-memory", "1 mb", why);
	conf_bad_value("store-max-memory", "0", "must be more than 0");
	conf_bad_value("store-max-memory", "0gb", "must be more than 0");
	for (i = 0; i < nitems(good); i++) {
		xasprintf(&text, "store-max-memory = %s\n", good[i]);
		cfg = conf_load(text);
		ck_assert_str_eq(cfg->store_max_memory, good[i]);
		config_free(cfg);
		free(text);
	}
}
END_TEST

START_TEST(test_resolve)
{
	struct config	*cfg;
	char		*cause = NULL, *want, *text, dir[80];

	/* The pid file follows run-dir and instance; resolving twice is ok. */
	cfg = conf_load("run-dir = /tmp/rd\ninstance = eu1\n");
	ck_assert_int_eq(config_resolve(cfg, &cause), 0);
	ck_assert_str_eq(cfg->pid_file, "/tmp/rd/eu1.pid");
	ck_assert_int_eq(config_resolve(cfg, &cause), 0);
	ck_assert_str_eq(cfg->pid_file, "/tmp/rd/eu1.pid");
	config_free(cfg);

	/* An explicit one is kept. */
	cfg = conf_load("pid-file = /tmp/p.pid\n");
	ck_assert_int_eq(config_resolve(cfg, &cause), 0);
	ck_assert_str_eq(cfg->pid_file, "/tmp/p.pid");
	config_free(cfg);

	/* The log file cannot be the pid file. */
	cfg = conf_load("run-dir = /tmp\nlog-file = /tmp/racerd.pid\n");
	ck_assert_int_eq(config_resolve(cfg, &cause), -1);
	xasprintf(&want, "%s: log-file and pid-file are both "
	    "\"/tmp/racerd.pid\"", cfg->path);
	ck_assert_str_eq(cause, want);
	free(want);
	free(cause);
	config_free(cfg);

	/* The embedded store's socket must fit in run-dir. */
	memset(dir, 'd', sizeof dir);
	dir[0] = '/';
	dir[64] = '\0';
	xasprintf(&text, "run-dir = %s\n", dir);
	cfg = conf_load(text);
	ck_assert_int_eq(config_resolve(cfg, &cause), 0);
	config_free(cfg);
	free(text);
	dir[64] = 'd';
	dir[65] = '\0';
	xasprintf(&text, "run-dir = %s\n", dir);
	cfg = conf_load(text);
	ck_assert_int_eq(config_resolve(cfg, &cause), -1);
	xasprintf(&want, "%s: run-dir: \"%s\" is longer than 64 characters, "
	    "too long for the socket of redis = embedded", cfg->path, dir);
	ck_assert_str_eq(cause, want);
	free(want);
	free(cause);
	config_free(cfg);
	free(text);
	xasprintf(&text, "run-dir = %s\nredis = redis://db\n", dir);
	cfg = conf_load(text);
	ck_assert_int_eq(config_resolve(cfg, &cause), 0);
	config_free(cfg);
	free(text);
}
END_TEST

START_TEST(test_workers)
{
	struct config	*cfg;
	long		 ncpu;
	int		 n;

	cfg = config_default();
	n = config_workers(cfg);
	ncpu = sysconf(_SC_NPROCESSORS_ONLN);
	ck_assert_int_ge(n, 1);
	ck_assert_int_le(n, CONFIG_WORKERS_MAX);
	if (ncpu >= 1)
		ck_assert_int_le(n, ncpu);
	cfg->workers = 7;
	ck_assert_int_eq(config_workers(cfg), 7);
	config_free(cfg);
}
END_TEST

START_TEST(test_man_page)
{
	char	*text;
	size_t	 i;

	/* The matcher itself: whole keys at the start of .It Ic lines. */
	ck_assert_int_eq(man_has_key(".It Ic workers Ar n\n", "workers"), 1);
	ck_assert_int_eq(man_has_key(".Pp\n.It Ic workers\n", "workers"), 1);
	ck_assert_int_eq(man_has_key(".It Ic workers-x Ar n\n", "workers"), 0);
	ck_assert_int_eq(man_has_key("x .It Ic workers\n", "workers"), 0);
	ck_assert_int_eq(man_has_key(".Ic workers\n", "workers"), 0);

	text = read_srcdir_file("man/racerd.conf.5");
	for (i = 0; i < config_table_size; i++) {
		if (!man_has_key(text, config_table[i].name))
			ck_abort_msg("man/racerd.conf.5 has no \".It Ic %s\"",
			    config_table[i].name);
	}
	free(text);
}
END_TEST

START_TEST(test_contrib)
{
	const struct config_option	*o;
	struct config			*cfg, *dflt;
	char				*text, *want, *path, *cause = NULL;
	char				*line, *next;
	size_t				 i, n;
	const char			*top;

	/* As shipped, all commented out: it parses. */
	if ((top = getenv("top_srcdir")) == NULL)
		top = ".";
	xasprintf(&path, "%s/contrib/racerd.conf", top);
	cfg = config_load(path, &cause);
	if (cfg == NULL)
		ck_abort_msg("%s", cause);
	config_free(cfg);
	free(path);

	/* Every key is there as "# KEY = DEFAULT". */
	text = read_srcdir_file("contrib/racerd.conf");
	for (i = 0; i < config_table_size; i++) {
		o = &config_table[i];
		/* webroot's default follows the install prefix. */
		if (strcmp(o->name, "webroot") == 0)
			xasprintf(&want, "\n# %s = /", o->name);
		else
			xasprintf(&want, "\n# %s =%s%s\n", o->name,
			    *o->dflt != '\0' ? " " : "", o->dflt);
		if (strstr(text, want) == NULL)
			ck_abort_msg("contrib/racerd.conf has no \"%.*s\"",
			    (int)strlen(want) - 2, want + 1);
		free(want);
	}

	/* With those lines uncommented, it still gives the defaults. */
	for (line = text; *line != '\0'; line = next) {
		n = strcspn(line, "\n");
		next = line[n] == '\n' ? line + n + 1 : line + n;
		for (i = 0; i < config_table_size; i++) {
			o = &config_table[i];
			if (strncmp(line, "# ", 2) == 0 &&
			    strncmp(line + 2, o->name, strlen(o->name)) == 0 &&
			    strncmp(line + 2 + strlen(o->name), " =", 2) == 0)
				memset(line, ' ', 2);
		}
	}
	cfg = conf_load(text);
	dflt = config_default();
	for (i = 0; i < config_table_size; i++) {
		o = &config_table[i];
		if (strcmp(o->name, "webroot") == 0)
			continue;
		if (o->type == CONFIG_STRING)
			ck_assert_str_eq(*(char **)((char *)cfg + o->offset),
			    *(char **)((char *)dflt + o->offset));
		else
			ck_assert_int_eq(*(int *)((char *)cfg + o->offset),
			    *(int *)((char *)dflt + o->offset));
	}
	config_free(dflt);
	config_free(cfg);
	free(text);
}
END_TEST

Suite *
config_suite(void)
{
	Suite	*s;
	TCase	*tc;

	s = suite_create("config");

	tc = tcase_create("defaults");
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_level_names);
	tcase_add_test(tc, test_workers);
	suite_add_tcase(s, tc);

	tc = tcase_create("table");
	tcase_add_test(tc, test_table);
	tcase_add_test(tc, test_store_parse);
	tcase_add_test(tc, test_store_credentials);
	tcase_add_test(tc, test_store_shards);
	tcase_add_test(tc, test_same);
	suite_add_tcase(s, tc);

	tc = tcase_create("parse");
	tcase_add_test(tc, test_every_key);
	tcase_add_test(tc, test_layout);
	tcase_add_test(tc, test_errors);
	suite_add_tcase(s, tc);

	tc = tcase_create("values");
	tcase_add_test(tc, test_numbers);
	tcase_add_test(tc, test_listen);
	tcase_add_test(tc, test_tls);
	tcase_add_test(tc, test_redis);
	tcase_add_test(tc, test_instance);
	tcase_add_test(tc, test_paths);
	tcase_add_test(tc, test_store_max_memory);
	tcase_set_timeout(tc, 10);
	suite_add_tcase(s, tc);

	tc = tcase_create("resolve");
	tcase_add_test(tc, test_resolve);
	suite_add_tcase(s, tc);

	tc = tcase_create("files");
	tcase_add_test(tc, test_man_page);
	tcase_add_test(tc, test_contrib);
	suite_add_tcase(s, tc);

	return (s);
}

int
main(void)
{
	const char	*tmp;
	int		 rc;

	if ((tmp = getenv("TMPDIR")) == NULL || *tmp == '\0')
		tmp = "/tmp";
	if ((size_t)snprintf(test_dir, sizeof test_dir,
	    "%s/check_config.XXXXXX", tmp) >= sizeof test_dir ||
	    mkdtemp(test_dir) == NULL) {
		perror("check_config: mkdtemp");
		return (EXIT_FAILURE);
	}

	rc = testutil_run(config_suite());
	nftw(test_dir, test_remove, 16, FTW_DEPTH | FTW_PHYS);
	return (rc);
}
