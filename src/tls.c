/* SPDX-License-Identifier: ISC */
/* racerd: TLS on the client port (OpenSSL through libevent). */
/*
 * Owns the server's SSL_CTX: TLS 1.2 and 1.3 only (or what tls-protocols
 * narrows that to), ALPN "http/1.1", no renegotiation, buffers released
 * while a connection is idle.  The master builds the context at start,
 * before it forks, so that a bad certificate or key stops racerd on the
 * terminal and every worker inherits a checked context; racerd -t builds
 * one and throws it away.
 *
 * Reload (SIGHUP): tls_configure builds a new context from the files and
 * swaps it in only if that worked; a bad pair keeps the old context and
 * the caller logs why.  An open connection holds its own reference to
 * the context it was accepted with (OpenSSL counts them), so it goes on
 * untouched; new connections get the new certificate.
 *
 * Connections are libevent OpenSSL bufferevents on the accepted socket;
 * conn.c decides when they write (tls_* keeps OpenSSL out of conn.c).
 */
#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include "racerd.h"

static SSL_CTX	*tls_ctx;

/* The last error OpenSSL queued, as text; clears the queue. */
static const char *
tls_last_error(void)
{
	static char	 buf[256];
	unsigned long	 e;

	e = ERR_peek_last_error();
	if (e == 0)
		snprintf(buf, sizeof buf, "unknown error");
	else
		ERR_error_string_n(e, buf, sizeof buf);
	ERR_clear_error();
	return (buf);
}

/*
 * ALPN (RFC 7301): we speak HTTP/1.1 only.  A client offering protocols
 * without it gets the no_application_protocol alert (§3.2).
 */
static int
tls_alpn_cb(__unused SSL *ssl, const u_char **out, u_char *outlen,
    const u_char *in, u_int inlen, __unused void *arg)
{
	static const u_char	 ours[] = "\x08http/1.1";
	u_char			*sel;

	if (SSL_select_next_proto(&sel, outlen, ours, sizeof ours - 1, in,
	    inlen) != OPENSSL_NPN_NEGOTIATED)
		return (SSL_TLSEXT_ERR_ALERT_FATAL);
	*out = sel;
	return (SSL_TLSEXT_ERR_OK);
}

/*
 * Parse tls-protocols ("TLSv1.2 TLSv1.3", either alone) into the lowest
 * and highest version.  Returns 0, or -1 if it names anything else.
 */
static int
tls_parse_protocols(const char *s, int *min, int *max)
{
	const char	*end;
	size_t		 n;
	int		 v;

	*min = *max = 0;
	for (; *s != '\0'; s = end) {
		s += strspn(s, " \t,");
		if (*s == '\0')
			break;
		end = s + strcspn(s, " \t,");
		n = end - s;
		if (n == 7 && strncmp(s, "TLSv1.2", n) == 0)
			v = TLS1_2_VERSION;
		else if (n == 7 && strncmp(s, "TLSv1.3", n) == 0)
			v = TLS1_3_VERSION;
		else
			return (-1);
		if (*min == 0 || v < *min)
			*min = v;
		if (v > *max)
			*max = v;
	}
	return (*min == 0 ? -1 : 0);
}

/* Build a context from cfg's files.  Returns it, or NULL with *cause. */
static SSL_CTX *
tls_ctx_new(const struct config *cfg, char **cause)
{
	SSL_CTX		*ctx;
	unsigned long	 e;
	int		 min, max;

	ERR_clear_error();
	if ((ctx = SSL_CTX_new(TLS_server_method())) == NULL) {
		xasprintf(cause, "TLS: %s", tls_last_error());
		return (NULL);
	}
	if (tls_parse_protocols(cfg->tls_protocols, &min, &max) != 0 ||
	    SSL_CTX_set_min_proto_version(ctx, min) != 1 ||
	    SSL_CTX_set_max_proto_version(ctx, max) != 1) {
		xasprintf(cause, "tls-protocols: \"%s\": %s",
		    cfg->tls_protocols, tls_last_error());
		goto fail;
	}
	if (*cfg->tls_ciphers != '\0' &&
	    SSL_CTX_set_cipher_list(ctx, cfg->tls_ciphers) != 1) {
		xasprintf(cause, "tls-ciphers: \"%s\": %s", cfg->tls_ciphers,
		    tls_last_error());
		goto fail;
	}
	if (SSL_CTX_use_certificate_chain_file(ctx,
	    cfg->tls_certificate) != 1) {
		xasprintf(cause, "tls-certificate %s: %s", cfg->tls_certificate,
		    tls_last_error());
		goto fail;
	}
	if (SSL_CTX_use_PrivateKey_file(ctx, cfg->tls_key,
	    SSL_FILETYPE_PEM) != 1) {
		e = ERR_peek_last_error();
		if (ERR_GET_LIB(e) == ERR_LIB_X509 &&
		    ERR_GET_REASON(e) == X509_R_KEY_VALUES_MISMATCH)
			goto mismatch;
		xasprintf(cause, "tls-key %s: %s", cfg->tls_key,
		    tls_last_error());
		goto fail;
	}
	if (SSL_CTX_check_private_key(ctx) != 1) {
mismatch:
		ERR_clear_error();
		xasprintf(cause, "tls-key %s does not match the certificate "
		    "in tls-certificate %s", cfg->tls_key,
		    cfg->tls_certificate);
		goto fail;
	}
	SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION |
	    SSL_OP_CIPHER_SERVER_PREFERENCE | SSL_OP_NO_COMPRESSION);
	/* Idle connections are most of them: keep no buffers for those. */
	SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
	SSL_CTX_set_alpn_select_cb(ctx, tls_alpn_cb, NULL);
	return (ctx);
fail:
	SSL_CTX_free(ctx);
	return (NULL);
}

/* Returns 1 if cfg asks for TLS (tls-listen is set), else 0. */
int
tls_enabled(const struct config *cfg)
{
	return (*cfg->tls_listen != '\0');
}

/*
 * Load cfg's certificate and key into a new context and use it for new
 * connections.  Returns 0 (also when cfg has no TLS), or -1 with a message
 * naming the file in *cause; then the context in use stays.
 */
int
tls_configure(const struct config *cfg, char **cause)
{
	SSL_CTX	*ctx;

	if (!tls_enabled(cfg))
		return (0);
	if ((ctx = tls_ctx_new(cfg, cause)) == NULL)
		return (-1);
	SSL_CTX_free(tls_ctx);		/* open connections hold their own */
	tls_ctx = ctx;
	return (0);
}

/* Check cfg's TLS files without using them.  Returns 0, or -1 and *cause. */
int
tls_check(const struct config *cfg, char **cause)
{
	SSL_CTX	*ctx;

	if (!tls_enabled(cfg))
		return (0);
	if ((ctx = tls_ctx_new(cfg, cause)) == NULL)
		return (-1);
	SSL_CTX_free(ctx);
	return (0);
}

/*
 * A bufferevent for a freshly accepted socket that is to speak TLS; it
 * owns fd (and closes it when freed).  Returns NULL if that fails.
 */
struct bufferevent *
tls_accept(struct event_base *base, int fd)
{
	struct bufferevent	*bev;
	SSL			*ssl;

	if (tls_ctx == NULL || (ssl = SSL_new(tls_ctx)) == NULL)
		return (NULL);
	bev = bufferevent_openssl_socket_new(base, fd, ssl,
	    BUFFEREVENT_SSL_ACCEPTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL)
		SSL_free(ssl);
	return (bev);
}

/*
 * Why a TLS connection failed, for a debug log line: OpenSSL's first
 * error on it, or errno's message.
 */
const char *
tls_strerror(struct bufferevent *bev)
{
	static char	 buf[256];
	unsigned long	 e;

	if ((e = bufferevent_get_openssl_error(bev)) == 0)
		return (errno != 0 ? strerror(errno) : "closed");
	ERR_error_string_n(e, buf, sizeof buf);
	while (bufferevent_get_openssl_error(bev) != 0)
		/* Drain the rest. */;
	return (buf);
}

/*
 * Tell the peer we are done (close_notify) before the socket is closed,
 * if the handshake had finished; a failed connection gets nothing.
 */
void
tls_shutdown(struct bufferevent *bev)
{
	SSL	*ssl;

	if ((ssl = bufferevent_openssl_get_ssl(bev)) == NULL)
		return;
	if (SSL_is_init_finished(ssl) &&
	    (SSL_get_shutdown(ssl) & SSL_SENT_SHUTDOWN) == 0)
		SSL_shutdown(ssl);
	ERR_clear_error();
}

/* Free the context at exit. */
void
tls_free(void)
{
	SSL_CTX_free(tls_ctx);
	tls_ctx = NULL;
}
