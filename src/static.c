/* SPDX-License-Identifier: ISC */
/* racerd: static files -- the web client under webroot. */
/*
 * Serves GET and HEAD of the regular files under the configured webroot
 * (racerd.conf(5)), for every path that no other route claims; conn.c
 * calls static_serve() from its default case.  An empty webroot answers
 * 404 for everything, as before.
 *
 * Invariants: nothing outside webroot is ever opened.  static_map() turns
 * a raw request path into a relative path with no "." or ".." segment,
 * no dot file, no NUL and no encoded slash; the file is then opened with
 * openat2(RESOLVE_BENEATH), so that a symbolic link that leads out of the
 * root is refused by the kernel (links inside it are followed).  Where
 * openat2 is missing the open falls back to openat and checks the opened
 * file's real path against the root's.  A directory is never listed: "/"
 * and "dir/" serve the index.html inside them, "dir" without its slash is
 * a 404.  Every refusal is a 404 that says no more than "not found".
 */
#include <sys/types.h>
#include <sys/stat.h>
#include <sys/syscall.h>

#include <linux/openat2.h>

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include <event2/buffer.h>
#include <event2/bufferevent.h>

#include "racerd.h"
#include "http.h"

#define STATIC_ETAG_MAX		64
#define STATIC_INDEX		"index.html"
#define STATIC_VENDOR		"vendor/"	/* third-party, versioned */
#define STATIC_LONG_CACHE	"public, max-age=86400"
#define STATIC_SHORT_CACHE	"no-cache"

static const struct {
	const char	*ext;
	const char	*type;
} static_types[] = {
	{ "html", "text/html; charset=utf-8" },
	{ "htm", "text/html; charset=utf-8" },
	{ "js", "text/javascript; charset=utf-8" },
	{ "mjs", "text/javascript; charset=utf-8" },
	{ "css", "text/css; charset=utf-8" },
	{ "json", "application/json" },
	{ "map", "application/json" },
	{ "txt", "text/plain; charset=utf-8" },
	{ "svg", "image/svg+xml" },
	{ "png", "image/png" },
	{ "ico", "image/x-icon" },
	{ "webmanifest", "application/manifest+json" },
	{ "wasm", "application/wasm" },
	{ "woff2", "font/woff2" }
};

/* Returns the Content-Type for a file name, by its extension. */
const char *
static_type(const char *name)
{
	const char	*dot, *slash;
	size_t		 i;

	dot = strrchr(name, '.');
	slash = strrchr(name, '/');
	if (dot == NULL || (slash != NULL && dot < slash))
		return ("application/octet-stream");
	for (i = 0; i < nitems(static_types); i++) {
		if (strcasecmp(dot + 1, static_types[i].ext) == 0)
			return (static_types[i].type);
	}
	return ("application/octet-stream");
}

/*
 * Map the raw (undecoded) request path onto a path relative to webroot
 * in out (outlen bytes): percent-decoded, "index.html" added after a
 * trailing slash. Returns 0, or -1 if the path is not one that may be
 * served: malformed escapes, an encoded '/' or '\' (%2f, %5c), a NUL,
 * a backslash, or any segment that is empty or starts with '.' (which
 * covers "." and ".." in any spelling, and dot files).
 */
int
static_map(const char *path, char *out, size_t outlen)
{
	char	 dec[PATH_MAX];
	size_t	 len, dlen, i, seg;

	if (path == NULL || path[0] != '/')
		return (-1);
	len = strlen(path);
	for (i = 0; i + 2 < len; i++) {
		if (path[i] != '%')
			continue;
		if ((path[i + 1] == '2' && (path[i + 2] == 'f' ||
		    path[i + 2] == 'F')) || (path[i + 1] == '5' &&
		    (path[i + 2] == 'c' || path[i + 2] == 'C')))
			return (-1);
	}
	if (http_decode(path + 1, len - 1, 0, dec, sizeof dec, &dlen) != 0 ||
	    memchr(dec, '\0', dlen) != NULL || memchr(dec, '\\', dlen) != NULL)
		return (-1);

	/* Every segment but a last empty one: non-empty, no leading dot. */
	seg = 0;
	for (i = 0; i <= dlen; i++) {
		if (i < dlen && dec[i] != '/')
			continue;
		if (i == seg && i != dlen)
			return (-1);
		if (i > seg && dec[seg] == '.')
			return (-1);
		seg = i + 1;
	}
	if (dlen == 0 || dec[dlen - 1] == '/') {
		if (snprintf(out, outlen, "%s%s", dec, STATIC_INDEX) >=
		    (int)outlen)
			return (-1);
	} else if (snprintf(out, outlen, "%s", dec) >= (int)outlen)
		return (-1);
	return (0);
}

/*
 * Returns 1 if an If-None-Match value (a list of entity tags, or "*")
 * names etag, compared weakly as RFC 7232 §3.2 asks, or 0.
 */
int
static_etag_match(const char *inm, const char *etag)
{
	const char	*p = inm, *start;
	size_t		 elen = strlen(etag);

	if (inm == NULL)
		return (0);
	while (*p != '\0') {
		while (*p == ' ' || *p == '\t' || *p == ',')
			p++;
		if (*p == '\0')
			break;
		if (*p == '*')
			return (1);
		if (p[0] == 'W' && p[1] == '/')
			p += 2;
		start = p;
		if (*p == '"') {
			p = strchr(p + 1, '"');
			if (p == NULL)
				return (0);
			p++;
		} else {
			while (*p != '\0' && *p != ',' && *p != ' ')
				p++;
		}
		if ((size_t)(p - start) == elen && memcmp(start, etag,
		    elen) == 0)
			return (1);
	}
	return (0);
}

/*
 * Open rel beneath the directory rootfd, read-only. Returns the file
 * descriptor, or -1 if it does not exist or would leave the root.
 */
static int
static_open(int rootfd, const char *root, const char *rel)
{
	struct open_how	 how;
	char		 link[64], real[PATH_MAX], rroot[PATH_MAX];
	ssize_t		 n;
	size_t		 rlen;
	long		 fd;

	memset(&how, 0, sizeof how);
	how.flags = O_RDONLY|O_CLOEXEC|O_NOCTTY|O_NONBLOCK;
	how.resolve = RESOLVE_BENEATH|RESOLVE_NO_MAGICLINKS;
	fd = syscall(SYS_openat2, rootfd, rel, &how, sizeof how);
	if (fd >= 0 || (errno != ENOSYS && errno != EPERM))
		return ((int)fd);

	/* No openat2 (old kernel or a filter): check where it landed. */
	fd = openat(rootfd, rel, O_RDONLY|O_CLOEXEC|O_NOCTTY|O_NONBLOCK);
	if (fd == -1)
		return (-1);
	snprintf(link, sizeof link, "/proc/self/fd/%ld", fd);
	if ((n = readlink(link, real, sizeof real - 1)) == -1 ||
	    realpath(root, rroot) == NULL)
		goto refuse;
	real[n] = '\0';
	rlen = strlen(rroot);
	if (strncmp(real, rroot, rlen) != 0 ||
	    (real[rlen] != '/' && !(rlen == 1 && rroot[0] == '/')))
		goto refuse;
	return ((int)fd);

refuse:
	close((int)fd);
	errno = EACCES;
	return (-1);
}

/*
 * Answer 200 or 304 for an open regular file; takes ownership of fd.
 * Returns 0, or -1 if the answer could not be queued (out of memory):
 * the connection must then close, its output is incomplete.
 */
static int
static_send(struct evbuffer *out, const struct http_req *req, int fd,
    const struct stat *st, const char *rel, int keep)
{
	char		 etag[STATIC_ETAG_MAX];
	const char	*cache;
	int		 head = (req->method == HTTP_HEAD);

	snprintf(etag, sizeof etag, "\"%jx-%jx-%jx%09ld\"",
	    (uintmax_t)st->st_ino, (uintmax_t)st->st_size,
	    (uintmax_t)st->st_mtim.tv_sec, (long)st->st_mtim.tv_nsec);
	cache = strncmp(rel, STATIC_VENDOR, strlen(STATIC_VENDOR)) == 0 ?
	    STATIC_LONG_CACHE : STATIC_SHORT_CACHE;

	if (static_etag_match(req->if_none_match, etag)) {
		close(fd);
		if (evbuffer_add_printf(out, "HTTP/1.1 304 Not Modified\r\n"
		    "ETag: %s\r\nCache-Control: %s\r\nConnection: %s\r\n\r\n",
		    etag, cache, keep ? "keep-alive" : "close") < 0)
			return (-1);
		return (0);
	}
	if (evbuffer_add_printf(out, "HTTP/1.1 200 OK\r\n"
	    "Content-Type: %s\r\nContent-Length: %jd\r\nETag: %s\r\n"
	    "Cache-Control: %s\r\nX-Content-Type-Options: nosniff\r\n"
	    "Referrer-Policy: no-referrer\r\nConnection: %s\r\n\r\n",
	    static_type(rel), (intmax_t)st->st_size, etag, cache,
	    keep ? "keep-alive" : "close") < 0) {
		close(fd);
		return (-1);
	}
	if (head || st->st_size == 0) {
		close(fd);
		return (0);
	}
	/* The buffer owns fd from here, even when this fails. */
	if (evbuffer_add_file(out, fd, 0, st->st_size) != 0)
		return (-1);
	return (0);
}

/*
 * Answer a request for a static file on c: 200 (or 304) with the file,
 * 404 if there is none to serve, 405 for a method other than GET or HEAD
 * on a file that exists. Returns 0, or -1 if the answer could not be
 * queued whole (the caller closes the connection).
 */
int
static_serve(struct conn *c, const struct http_req *req, int keep)
{
	struct evbuffer	*out = conn_output(c);
	struct stat	 st;
	char		 rel[PATH_MAX];
	const char	*root = wk.cfg->webroot;
	int		 rootfd = -1, fd = -1;

	if (root == NULL || *root == '\0' ||
	    static_map(req->path, rel, sizeof rel) != 0)
		goto notfound;
	rootfd = open(root, O_PATH|O_DIRECTORY|O_CLOEXEC);
	if (rootfd == -1) {
		log_debug("static: webroot %s: %s", root, strerror(errno));
		goto notfound;
	}
	if ((fd = static_open(rootfd, root, rel)) == -1 || fstat(fd, &st) != 0)
		goto notfound;
	if (!S_ISREG(st.st_mode))
		goto notfound;
	close(rootfd);
	if (req->method != HTTP_GET && req->method != HTTP_HEAD) {
		close(fd);
		http_error(out, 405, "method not allowed",
		    "Allow: GET, HEAD\r\n", keep);
		return (0);
	}
	if (static_send(out, req, fd, &st, rel, keep) != 0) {
		log_warnx("static: cannot queue %s", rel);
		return (-1);
	}
	return (0);

notfound:
	if (fd != -1)
		close(fd);
	if (rootfd != -1)
		close(rootfd);
	http_error(out, 404, "not found", NULL, keep);
	return (0);
}
