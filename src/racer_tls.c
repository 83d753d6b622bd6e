/* SPDX-License-Identifier: ISC */
/* racer: TLS for wss:// URLs (OpenSSL through libevent). */
/*
 * One client context for the life of racer: TLS 1.2 or 1.3, ALPN
 * http/1.1, the server's certificate verified against the system's trust
 * store (or only the CA file of --cacert) and matched against the URL's
 * host name or IP address; --insecure verifies nothing.  racer_ws.c opens
 * the TCP connection and then stacks an OpenSSL filter bufferevent on it
 * (racer_tls_wrap); when the handshake fails, racer_tls_why says why in
 * one line and whether it was the certificate.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include <event2/bufferevent.h>
#include <event2/bufferevent_ssl.h>
#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <openssl/x509v3.h>

#include "racerd.h"
#include "racer.h"

static SSL_CTX	*racer_tls_ctx;

/* OpenSSL's last error as text, and the queue cleared. */
static const char *
racer_tls_error(void)
{
	static char	 buf[256];
	unsigned long	 e;

	if ((e = ERR_peek_last_error()) == 0)
		snprintf(buf, sizeof buf, "unknown error");
	else
		ERR_error_string_n(e, buf, sizeof buf);
	ERR_clear_error();
	return (buf);
}

/*
 * Make the client context: verify against cacert only when given, else
 * the system's store; nothing with insecure.  Returns 0, or -1 with
 * *cause.
 */
int
racer_tls_init(const char *cacert, int insecure, char **cause)
{
	SSL_CTX		*ctx;
	static const u_char alpn[] = "\x08http/1.1";

	if ((ctx = SSL_CTX_new(TLS_client_method())) == NULL) {
		xasprintf(cause, "TLS: %s", racer_tls_error());
		return (-1);
	}
	if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
	    SSL_CTX_set_alpn_protos(ctx, alpn, sizeof alpn - 1) != 0) {
		xasprintf(cause, "TLS: %s", racer_tls_error());
		goto fail;
	}
	if (cacert != NULL) {
		if (access(cacert, R_OK) != 0) {
			xasprintf(cause, "--cacert %s: %s", cacert,
			    strerror(errno));
			goto fail;
		}
		if (SSL_CTX_load_verify_locations(ctx, cacert, NULL) != 1) {
			xasprintf(cause, "--cacert %s: %s", cacert,
			    racer_tls_error());
			goto fail;
		}
	} else if (!insecure && SSL_CTX_set_default_verify_paths(ctx) != 1) {
		xasprintf(cause, "the system's certificates: %s",
		    racer_tls_error());
		goto fail;
	}
	SSL_CTX_set_verify(ctx, insecure ? SSL_VERIFY_NONE : SSL_VERIFY_PEER,
	    NULL);
	racer_tls_ctx = ctx;
	return (0);
fail:
	SSL_CTX_free(ctx);
	return (-1);
}

/* Returns 1 if host is an IPv4 or IPv6 address, else 0. */
static int
racer_tls_is_ip(const char *host)
{
	struct in6_addr	 a6;
	struct in_addr	 a4;

	return (inet_pton(AF_INET, host, &a4) == 1 ||
	    inet_pton(AF_INET6, host, &a6) == 1);
}

/*
 * Start TLS on the connected bufferevent under, for host (a name or an
 * address, without brackets).  Returns the bufferevent to use from now
 * on, which owns under, or NULL with why filled in.
 */
struct bufferevent *
racer_tls_wrap(struct event_base *base, struct bufferevent *under,
    const char *host, char *why, size_t len)
{
	struct bufferevent	*bev;
	SSL			*ssl;
	int			 ok;

	if ((ssl = SSL_new(racer_tls_ctx)) == NULL) {
		snprintf(why, len, "TLS: %s", racer_tls_error());
		return (NULL);
	}
	/* RFC 6066 §3: no SNI for an address; check what the URL says. */
	if (racer_tls_is_ip(host))
		ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host);
	else
		ok = SSL_set_tlsext_host_name(ssl, host) == 1 &&
		    SSL_set1_host(ssl, host) == 1;
	if (!ok) {
		snprintf(why, len, "TLS: %s: %s", host, racer_tls_error());
		SSL_free(ssl);
		return (NULL);
	}
	bev = bufferevent_openssl_filter_new(base, under, ssl,
	    BUFFEREVENT_SSL_CONNECTING, BEV_OPT_CLOSE_ON_FREE);
	if (bev == NULL) {
		snprintf(why, len, "TLS: cannot make a bufferevent");
		SSL_free(ssl);
		return (NULL);
	}
	/* An end without close_notify is an end, as on a plain socket. */
	bufferevent_openssl_set_allow_dirty_shutdown(bev, 1);
	return (bev);
}

/*
 * Why the TLS bufferevent bev failed, in why.  Returns 1 if the server's
 * certificate did not verify, else 0.
 */
int
racer_tls_why(struct bufferevent *bev, char *why, size_t len)
{
	SSL		*ssl = bufferevent_openssl_get_ssl(bev);
	unsigned long	 e;
	long		 v;

	ERR_clear_error();
	if (ssl != NULL && (v = SSL_get_verify_result(ssl)) != X509_V_OK) {
		snprintf(why, len, "certificate verification failed: %s",
		    X509_verify_cert_error_string(v));
		while (bufferevent_get_openssl_error(bev) != 0)
			/* Drain. */;
		return (1);
	}
	if ((e = bufferevent_get_openssl_error(bev)) != 0) {
		snprintf(why, len, "TLS handshake failed: ");
		ERR_error_string_n(e, why + strlen(why), len - strlen(why));
		while (bufferevent_get_openssl_error(bev) != 0)
			/* Drain. */;
	} else
		snprintf(why, len, "TLS handshake failed: connection closed");
	return (0);
}
