/* SPDX-License-Identifier: ISC */
/* racerd: WebSocket load generator for benchmarks (not a test). */
/*
 * loadgen opens many WebSocket connections to racerd, or to the nginx +
 * nchan baseline, from one process and one libevent loop, makes some of
 * them send, and measures what every connection receives: deliveries per
 * second, latency from send to each delivery, and loss.  It speaks just
 * enough RFC 6455 as a client, on raw non-blocking sockets: the opening
 * handshake with Sec-WebSocket-Accept checked (§4.1), masked client frames
 * with a fresh mask per frame (§5.3), unmasked server frames of any length,
 * split across reads or packed several to a read, fragmented messages
 * (§5.4), ping answered by pong (§5.5.2) and the closing handshake (§5.5.1).
 *
 * Every payload starts with "RUN:SENDER:SEQ:TIME:" and is padded with 'x'
 * to --size bytes.  RUN names this process, so stale traffic is told
 * apart; TIME is the sender's CLOCK_MONOTONIC in ns (in --rate mode, the
 * time the message was due, so a late sender shows as latency); SEQ counts
 * from 1 per sender, so a receiver sees a gap as loss.  In racerd mode the
 * payload is the "body" of a {"type":"msg"} frame, and the server's own
 * "seq" must also grow by exactly 1 per connection.
 *
 * Client i is in chat i % chats and clients 0 .. senders-1 send.  Clients
 * live in one array for the whole run and are never freed before exit: a
 * callback may drop its client (close the socket, free its buffers, state
 * LG_IDLE) and simply return.  Phase changes run from their own events,
 * never inside a client's callback.
 *
 * usage: loadgen --url ws[s]://HOST:PORT/PATH [options]; see lg_usage().
 * With wss:// every connection speaks TLS (OpenSSL, no certificate
 * check: it measures the server, it does not guard a secret).
 */
#define _GNU_SOURCE

#include <sys/types.h>
#include <sys/random.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>

#include <err.h>
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <netdb.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

#include <event2/event.h>
#include <openssl/err.h>
#include <openssl/ssl.h>

#ifndef __unused
#define __unused __attribute__((__unused__))
#endif

#define LG_MSG_MAX	(16 * 1024 * 1024)	/* largest message accepted */
#define LG_HDR_MAX	8192		/* largest handshake response */
#define LG_RBUF_SIZE	(256 * 1024)	/* one read() */
#define LG_OUT_KEEP	16384		/* output buffer kept between writes */
#define LG_PATH_MAX	1024
#define LG_PREFIX_MAX	80		/* "RUN:SENDER:SEQ:TIME:" */
#define LG_WS_GUID	"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define LG_TICK_NS	100000000ULL	/* phase checks every 100 ms */
#define LG_CLOSE_WAIT	2		/* seconds for closing handshakes */

/* Latency histogram: 128 linear sub-buckets per power of two of ns. */
#define LG_HIST_SUB	128
#define LG_HIST_SIZE	(58 * LG_HIST_SUB)

/* Opcodes, RFC 6455 §5.2. */
#define LG_OP_CONT	0x0
#define LG_OP_TEXT	0x1
#define LG_OP_BINARY	0x2
#define LG_OP_CLOSE	0x8
#define LG_OP_PING	0x9
#define LG_OP_PONG	0xa

enum lg_mode {
	LG_MODE_RACERD,
	LG_MODE_NCHAN
};

enum lg_state {
	LG_IDLE,		/* no socket */
	LG_CONNECTING,		/* TCP connect in progress */
	LG_HANDSHAKE,		/* upgrade request sent, waiting for 101 */
	LG_WELCOME,		/* racerd: upgraded, waiting for "welcome" */
	LG_OPEN,		/* ready: counted in stats.ready */
	LG_CLOSING		/* our close frame sent, awaiting the reply */
};

enum lg_phase {
	LG_PH_CONNECT,		/* opening --clients connections */
	LG_PH_RUN,		/* sending (or holding, or cycling) */
	LG_PH_DRAIN,		/* sending stopped, waiting for deliveries */
	LG_PH_CLOSE		/* closing every connection, then exit */
};

struct lg_client {
	int		 fd;
	SSL		*ssl;		/* wss://, else NULL */
	int		 tls_hs;	/* TLS handshake in progress */
	u_int		 idx;
	u_int		 chat;
	enum lg_state	 state;
	int		 pending;	/* counted in lg.connecting */
	int		 ready;		/* counted in stats.ready */
	struct event	*rev;
	struct event	*wev;		/* connect done, or output pending */
	struct event	*timer;		/* --rate: next message due */
	uint64_t	 t_connect;	/* ns when connect() was called */

	char		*in;		/* partial frame kept between reads */
	size_t		 inlen;
	size_t		 insize;
	char		*out;		/* bytes not yet written */
	size_t		 outoff;
	size_t		 outlen;
	size_t		 outsize;
	char		*frag;		/* fragmented message so far */
	size_t		 fraglen;
	size_t		 fragsize;
	int		 fragop;	/* first fragment's opcode, 0: none */
	char		 accept[32];	/* expected Sec-WebSocket-Accept */

	int64_t		 seq;		/* racerd: last server seq, -1: none */
	uint32_t	*next;		/* next SEQ expected, per chat sender */
	u_int		 nnext;

	uint64_t	 sent;		/* sender: messages sent */
	uint64_t	 echoed;	/* sender: own messages received back */
	uint64_t	 t0;		/* --rate: when message 0 was due */
	int		 done;		/* sender: reached --messages */
};

struct lg_opts {
	char		*host;
	char		*port;
	char		*hostport;	/* for the Host header */
	char		*path;		/* template, %d is the chat */
	u_int		 clients;
	u_int		 chats;
	u_int		 senders;
	u_int		 inflight;
	double		 rate;
	uint64_t	 messages;
	double		 duration;
	size_t		 size;
	u_int		 concurrency;
	double		 connect_rate;	/* connects started per second, or 0 */
	double		 drain;
	double		 connect_timeout;
	int		 connect_only;
	int		 idle;
	int		 quickack;
	enum lg_mode	 mode;
	const char	*cpu_pids;
	const char	*cpu_pids_extra;
};

struct lg_stats {
	uint64_t	 ready;		/* connections established now */
	uint64_t	 connect_errors;
	uint64_t	 handshakes;	/* successful upgrades */
	uint64_t	 cycles;	/* --connect-only: clean closes */
	uint64_t	 sent;
	uint64_t	 expected;	/* deliveries the sends call for */
	uint64_t	 deliveries;	/* payloads of this run received */
	uint64_t	 unique;	/* ... in order, no repeat */
	uint64_t	 gaps;		/* times a SEQ jumped ahead */
	uint64_t	 reordered;	/* SEQ behind: repeat or late */
	uint64_t	 foreign;	/* not a payload of this run */
	uint64_t	 misrouted;	/* a sender from another chat */
	uint64_t	 seq_errors;	/* racerd seq not last + 1 */
	uint64_t	 server_errors;	/* racerd {"type":"error"} */
	uint64_t	 server_closes;	/* close frames the server began */
	uint64_t	 proto_errors;
	uint64_t	 drops;		/* ready connections lost abruptly */
	uint64_t	 pings;
	uint64_t	 hist[LG_HIST_SIZE];
	uint64_t	 hist_n;
	uint64_t	 lat_max;
	uint64_t	 hs_hist[LG_HIST_SIZE];	/* connect to welcome */
	uint64_t	 hs_n;
	uint64_t	 hs_max;
	uint64_t	 presence;	/* presence frames received */
	uint64_t	 idle_msgs;	/* --idle: msg frames received */
	uint64_t	 t_msg_last;	/* ... ns (CLOCK_MONOTONIC) of the last */
	uint64_t	 t_first;	/* ns of the first connect() */
	uint64_t	 t_ready;	/* ... of the last welcome, connecting */
};

struct lg {
	struct lg_opts		 opt;
	struct lg_stats		 st;
	struct event_base	*base;
	struct event		*tick;
	struct lg_client	*clients;
	u_int			 nclients;	/* slots */
	struct sockaddr_storage	 addr;
	socklen_t		 addrlen;
	struct sockaddr_storage	*srcs;
	u_int			 nsrcs;
	u_int			 src_next;
	uint32_t		 run;
	uint64_t		 rng;
	char			*sbuf;		/* message being built */
	size_t			 sbufsize;
	char			*rbuf;		/* one read */
	uint32_t		*members;	/* ready clients per chat */
	u_int			 senders_active;
	u_int			 senders_done;

	enum lg_phase		 phase;
	u_int			 next_client;	/* next to connect */
	u_int			 connecting;	/* connects in progress */
	int			 in_connect_more;
	int			 pace_armed;	/* lg_pace_cb is due */
	int			 phase_queued;
	uint64_t		 ready_end;	/* ready when sending ended */
	uint64_t		 live;		/* sockets open */
	uint64_t		 now;		/* ns, refreshed per read */
	uint64_t		 t_phase;	/* when the phase began */
	uint64_t		 t_start;	/* when sending began */
	uint64_t		 t_stop;	/* when sending stopped */
	uint64_t		 t_last;	/* last delivery */
	uint64_t		 t_end;
	uint64_t		 cpu0[2];	/* server ticks at t_start */
	uint64_t		 cpu1[2];	/* ... at the end */
	int			 cpu_ok;
	double			 ucpu;		/* our CPU seconds in the run */
	struct timeval		 ru0;
	char			 first_error[160];
};

static struct lg lg;

static void	lg_client_drop(struct lg_client *, int, const char *);
static void	lg_client_connect(struct lg_client *);
static int	lg_client_flush(struct lg_client *);
static void	lg_client_handshake(struct lg_client *);
static int	lg_client_feed(struct lg_client *, const char *, size_t);
static void	lg_sender_pump(struct lg_client *);
static void	lg_connect_more(void);
static void	lg_phase_queue(void);
static void	lg_slot_restart(struct lg_client *, int);

/* Returns CLOCK_MONOTONIC in nanoseconds. */
static uint64_t
lg_now_ns(void)
{
	struct timespec	ts;

	if (clock_gettime(CLOCK_MONOTONIC, &ts) == -1)
		err(1, "clock_gettime");
	return ((uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec);
}

/* xorshift64*: masks and keys need to vary, not to be secret here. */
static uint64_t
lg_rand(void)
{
	lg.rng ^= lg.rng >> 12;
	lg.rng ^= lg.rng << 25;
	lg.rng ^= lg.rng >> 27;
	return (lg.rng * 2685821657736338717ULL);
}

static void
lg_rand_init(void)
{
	if (getrandom(&lg.rng, sizeof lg.rng, 0) != sizeof lg.rng)
		err(1, "getrandom");
	if (lg.rng == 0)
		lg.rng = 0x9e3779b97f4a7c15ULL;
	lg.run = (uint32_t)lg_rand();
}

static void
lg_event_add(struct event *ev, uint64_t ns)
{
	struct timeval	tv;

	tv.tv_sec = ns / 1000000000ULL;
	tv.tv_usec = (ns % 1000000000ULL) / 1000;
	if (event_add(ev, &tv) == -1)
		errx(1, "event_add failed");
}

static void *
lg_realloc(void *p, size_t n)
{
	if ((p = realloc(p, n)) == NULL)
		err(1, "realloc");
	return (p);
}

/* Appends n bytes to a growable buffer. */
static void
lg_buf_add(char **buf, size_t *len, size_t *size, const void *p, size_t n)
{
	size_t	want;

	if (*len + n > *size) {
		want = *size == 0 ? 512 : *size;
		while (want < *len + n)
			want *= 2;
		*buf = lg_realloc(*buf, want);
		*size = want;
	}
	memcpy(*buf + *len, p, n);
	*len += n;
}

/* SHA-1 (FIPS 180-4), only for Sec-WebSocket-Accept. */
static uint32_t
lg_rol(uint32_t x, int n)
{
	return (x << n | x >> (32 - n));
}

static void
lg_sha1_block(uint32_t h[5], const u_char *p)
{
	uint32_t	w[80], a, b, c, d, e, f, k, t;
	int		i;

	for (i = 0; i < 16; i++)
		w[i] = (uint32_t)p[4 * i] << 24 | (uint32_t)p[4 * i + 1] << 16 |
		    (uint32_t)p[4 * i + 2] << 8 | p[4 * i + 3];
	for (; i < 80; i++)
		w[i] = lg_rol(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
	a = h[0], b = h[1], c = h[2], d = h[3], e = h[4];
	for (i = 0; i < 80; i++) {
		if (i < 20) {
			f = (b & c) | (~b & d);
			k = 0x5a827999;
		} else if (i < 40) {
			f = b ^ c ^ d;
			k = 0x6ed9eba1;
		} else if (i < 60) {
			f = (b & c) | (b & d) | (c & d);
			k = 0x8f1bbcdc;
		} else {
			f = b ^ c ^ d;
			k = 0xca62c1d6;
		}
		t = lg_rol(a, 5) + f + e + k + w[i];
		e = d, d = c, c = lg_rol(b, 30), b = a, a = t;
	}
	h[0] += a, h[1] += b, h[2] += c, h[3] += d, h[4] += e;
}

static void
lg_sha1(const void *data, size_t n, u_char out[20])
{
	const u_char	*p = data;
	u_char		 tail[128];
	uint32_t	 h[5] = { 0x67452301, 0xefcdab89, 0x98badcfe,
			     0x10325476, 0xc3d2e1f0 };
	uint64_t	 bits = (uint64_t)n * 8;
	size_t		 rest, tlen, i;

	for (; n >= 64; n -= 64, p += 64)
		lg_sha1_block(h, p);
	rest = n;
	memset(tail, 0, sizeof tail);
	memcpy(tail, p, rest);
	tail[rest] = 0x80;
	tlen = rest + 9 <= 64 ? 64 : 128;
	for (i = 0; i < 8; i++)
		tail[tlen - 1 - i] = (u_char)(bits >> (8 * i));
	lg_sha1_block(h, tail);
	if (tlen == 128)
		lg_sha1_block(h, tail + 64);
	for (i = 0; i < 20; i++)
		out[i] = (u_char)(h[i / 4] >> (24 - 8 * (i % 4)));
}

/* Base64 of n bytes into out, NUL-terminated (4 * ceil(n / 3) + 1). */
static void
lg_base64(const u_char *in, size_t n, char *out)
{
	static const char	 tab[] =
	    "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
	uint32_t		 v;
	size_t			 i;

	for (i = 0; i + 2 < n; i += 3) {
		v = (uint32_t)in[i] << 16 | (uint32_t)in[i + 1] << 8 |
		    in[i + 2];
		*out++ = tab[v >> 18];
		*out++ = tab[(v >> 12) & 63];
		*out++ = tab[(v >> 6) & 63];
		*out++ = tab[v & 63];
	}
	if (i < n) {
		v = (uint32_t)in[i] << 16;
		if (i + 1 < n)
			v |= (uint32_t)in[i + 1] << 8;
		*out++ = tab[v >> 18];
		*out++ = tab[(v >> 12) & 63];
		*out++ = i + 1 < n ? tab[(v >> 6) & 63] : '=';
		*out++ = '=';
	}
	*out = '\0';
}

/* The Sec-WebSocket-Accept a server must answer to key (§4.2.2). */
static void
lg_ws_accept(const char *key, char out[32])
{
	char	buf[128];
	u_char	dig[20];
	int	n;

	n = snprintf(buf, sizeof buf, "%s%s", key, LG_WS_GUID);
	lg_sha1(buf, (size_t)n, dig);
	lg_base64(dig, sizeof dig, out);
}

/* Latency histogram index of v ns; values < 128 ns are exact. */
static u_int
lg_hist_index(uint64_t v)
{
	int	k;

	if (v < LG_HIST_SUB)
		return ((u_int)v);
	k = 63 - __builtin_clzll(v);
	return ((u_int)(k - 6) * LG_HIST_SUB + (u_int)(v >> (k - 7)) -
	    LG_HIST_SUB);
}

/* Middle of the values bucket i holds. */
static double
lg_hist_value(u_int i)
{
	uint64_t	m, lo;
	int		k;

	if (i < LG_HIST_SUB)
		return (i);
	k = (int)(i / LG_HIST_SUB) + 6;
	m = i % LG_HIST_SUB + LG_HIST_SUB;
	lo = m << (k - 7);
	return ((double)lo + (double)(1ULL << (k - 7)) / 2);
}

static void
lg_hist_add(uint64_t ns)
{
	lg.st.hist[lg_hist_index(ns)]++;
	lg.st.hist_n++;
	if (ns > lg.st.lat_max)
		lg.st.lat_max = ns;
}

/* The p-quantile (0 < p <= 1) in ms of hist, or 0 with no samples. */
static double
lg_hist_ms_of(const uint64_t *hist, uint64_t n, uint64_t max, double p)
{
	uint64_t	want, sum = 0;
	double		v;
	u_int		i;

	if (n == 0)
		return (0);
	want = (uint64_t)ceil(p * (double)n);
	if (want == 0)
		want = 1;
	for (i = 0; i < LG_HIST_SIZE; i++) {
		sum += hist[i];
		if (sum >= want)
			break;
	}
	if (i == LG_HIST_SIZE)
		i--;
	v = lg_hist_value(i);
	return ((v < (double)max ? v : (double)max) / 1e6);
}

/* ... of the message (or W4 handshake) latencies. */
static double
lg_hist_ms(double p)
{
	return (lg_hist_ms_of(lg.st.hist, lg.st.hist_n, lg.st.lat_max, p));
}

/* ... of the handshakes of the connect phase. */
static double
lg_hs_ms(double p)
{
	return (lg_hist_ms_of(lg.st.hs_hist, lg.st.hs_n, lg.st.hs_max, p));
}

/* Keeps the first error's text for the summary. */
static void __attribute__((__format__(__printf__, 1, 2)))
lg_note_error(const char *fmt, ...)
{
	va_list	ap;

	if (lg.first_error[0] != '\0')
		return;
	va_start(ap, fmt);
	vsnprintf(lg.first_error, sizeof lg.first_error, fmt, ap);
	va_end(ap);
}

/*
 * Makes room for n more bytes of output and returns where they go; the
 * caller adds n to outlen.
 */
static char *
lg_client_reserve(struct lg_client *cl, size_t n)
{
	size_t	want;

	if (cl->outoff > 0 && cl->outoff + cl->outlen + n > cl->outsize) {
		memmove(cl->out, cl->out + cl->outoff, cl->outlen);
		cl->outoff = 0;
	}
	if (cl->outlen + n > cl->outsize) {
		want = cl->outsize < 512 ? 512 : 2 * cl->outsize;
		if (want < cl->outlen + n)
			want = cl->outlen + n;
		cl->out = lg_realloc(cl->out, want);
		cl->outsize = want;
	}
	return (cl->out + cl->outoff + cl->outlen);
}

/*
 * Appends one frame to the client's output: FIN set, masked with a fresh
 * key (RFC 6455 §5.3).  Nothing is written yet.
 */
static void
lg_client_send(struct lg_client *cl, int op, const void *data, size_t n)
{
	const u_char	*p = data;
	u_char		 hdr[14], mask[4], *dst;
	uint64_t	 r;
	size_t		 h = 2, i;

	hdr[0] = 0x80 | (u_char)op;
	if (n < 126)
		hdr[1] = 0x80 | (u_char)n;
	else if (n <= 0xffff) {
		hdr[1] = 0x80 | 126;
		hdr[2] = (u_char)(n >> 8);
		hdr[3] = (u_char)n;
		h = 4;
	} else {
		hdr[1] = 0x80 | 127;
		for (i = 0; i < 8; i++)
			hdr[2 + i] = (u_char)((uint64_t)n >> (56 - 8 * i));
		h = 10;
	}
	r = lg_rand();
	memcpy(mask, &r, 4);
	memcpy(hdr + h, mask, 4);
	h += 4;

	dst = (u_char *)lg_client_reserve(cl, h + n);
	memcpy(dst, hdr, h);
	for (i = 0; i < n; i++)
		dst[h + i] = p[i] ^ mask[i & 3];
	cl->outlen += h + n;
}

static void
lg_client_send_close(struct lg_client *cl, u_int code)
{
	u_char	p[2];

	p[0] = (u_char)(code >> 8);
	p[1] = (u_char)code;
	lg_client_send(cl, LG_OP_CLOSE, p, sizeof p);
}

static SSL_CTX	*lg_tls_ctx;		/* wss:// */

/*
 * One SSL_write of what is queued.  Returns the bytes taken, 0 if it
 * must wait (the write event is armed when the socket is full), or -1 if
 * the client was dropped.
 */
static ssize_t
lg_tls_write(struct lg_client *cl)
{
	int	n;

	ERR_clear_error();
	n = SSL_write(cl->ssl, cl->out + cl->outoff, (int)cl->outlen);
	if (n > 0)
		return (n);
	switch (SSL_get_error(cl->ssl, n)) {
	case SSL_ERROR_WANT_WRITE:
		if (event_add(cl->wev, NULL) == -1)
			errx(1, "event_add failed");
		return (0);
	case SSL_ERROR_WANT_READ:
		return (0);	/* the read event goes on */
	default:
		lg_client_drop(cl, EPROTO, "TLS write");
		return (-1);
	}
}

/* Drives the TLS handshake; once it is over, the WebSocket one starts. */
static void
lg_tls_step(struct lg_client *cl)
{
	int	r;

	ERR_clear_error();
	if ((r = SSL_do_handshake(cl->ssl)) == 1) {
		cl->tls_hs = 0;
		lg_client_handshake(cl);
		return;
	}
	switch (SSL_get_error(cl->ssl, r)) {
	case SSL_ERROR_WANT_READ:
		break;
	case SSL_ERROR_WANT_WRITE:
		if (event_add(cl->wev, NULL) == -1)
			errx(1, "event_add failed");
		break;
	default:
		lg_client_drop(cl, EPROTO, "TLS handshake");
	}
}

/* TCP is up: TLS first with wss://, then the WebSocket handshake. */
static void
lg_client_connected(struct lg_client *cl)
{
	if (lg_tls_ctx == NULL) {
		lg_client_handshake(cl);
		return;
	}
	if ((cl->ssl = SSL_new(lg_tls_ctx)) == NULL ||
	    SSL_set_fd(cl->ssl, cl->fd) != 1)
		errx(1, "SSL_new failed");
	SSL_set_connect_state(cl->ssl);
	cl->tls_hs = 1;
	lg_tls_step(cl);
}

/*
 * TLS input: everything OpenSSL can decrypt now (it may hold more than
 * the socket says), fed like plain reads.
 */
static void
lg_tls_read(struct lg_client *cl)
{
	int	n;

	if (cl->tls_hs) {
		lg_tls_step(cl);
		return;
	}
	for (;;) {
		ERR_clear_error();
		n = SSL_read(cl->ssl, lg.rbuf, LG_RBUF_SIZE);
		if (n > 0) {
			lg.now = lg_now_ns();
			if (lg_client_feed(cl, lg.rbuf, (size_t)n) != 0)
				return;
			continue;
		}
		switch (SSL_get_error(cl->ssl, n)) {
		case SSL_ERROR_WANT_READ:
			lg_client_flush(cl);
			return;
		case SSL_ERROR_WANT_WRITE:
			if (event_add(cl->wev, NULL) == -1)
				errx(1, "event_add failed");
			return;
		case SSL_ERROR_ZERO_RETURN:
		case SSL_ERROR_SYSCALL:
			if (cl->state == LG_CLOSING)
				lg_client_drop(cl, 0, NULL);
			else
				lg_client_drop(cl, ECONNRESET, "EOF");
			return;
		default:
			lg_client_drop(cl, EPROTO, "TLS read");
			return;
		}
	}
}

/*
 * Writes what is queued.  Returns 0, or -1 if the write failed and the
 * client was dropped.
 */
static int
lg_client_flush(struct lg_client *cl)
{
	ssize_t	n;

	if (cl->fd == -1 || cl->state == LG_CONNECTING)
		return (0);
	while (cl->outlen > 0) {
		if (cl->ssl != NULL) {
			n = lg_tls_write(cl);
			if (n == 0)
				return (0);
			if (n == -1)
				return (-1);
			cl->outoff += (size_t)n;
			cl->outlen -= (size_t)n;
			continue;
		}
		n = send(cl->fd, cl->out + cl->outoff, cl->outlen,
		    MSG_NOSIGNAL);
		if (n == -1) {
			if (errno == EINTR)
				continue;
			if (errno == EAGAIN || errno == EWOULDBLOCK) {
				if (event_add(cl->wev, NULL) == -1)
					errx(1, "event_add failed");
				return (0);
			}
			lg_client_drop(cl, errno, "write");
			return (-1);
		}
		cl->outoff += (size_t)n;
		cl->outlen -= (size_t)n;
	}
	cl->outoff = 0;
	if (cl->outsize > LG_OUT_KEEP) {
		free(cl->out);
		cl->out = NULL;
		cl->outsize = 0;
	}
	return (0);
}

/* Builds the request path of a client: %d is its chat. */
static void
lg_client_path(struct lg_client *cl, char *buf, size_t size)
{
	const char	*t = lg.opt.path, *d;
	int		 n, m;

	if ((d = strstr(t, "%d")) != NULL)
		n = snprintf(buf, size, "%.*s%u%s", (int)(d - t), t, cl->chat,
		    d + 2);
	else
		n = snprintf(buf, size, "%s", t);
	if (n < 0 || (size_t)n >= size)
		errx(1, "path too long");
	if (lg.opt.mode != LG_MODE_RACERD || strstr(t, "user=") != NULL)
		return;
	m = snprintf(buf + n, size - (size_t)n, "%cuser=lg%08xu%u",
	    strchr(buf, '?') != NULL ? '&' : '?', lg.run, cl->idx);
	if (m < 0 || (size_t)m >= size - (size_t)n)
		errx(1, "path too long");
}

/* Sends the opening handshake (RFC 6455 §4.1). */
static void
lg_client_handshake(struct lg_client *cl)
{
	u_char	raw[16];
	char	key[32], path[LG_PATH_MAX], req[LG_PATH_MAX + 512];
	u_int	i;
	int	n;

	for (i = 0; i < sizeof raw; i++)
		raw[i] = (u_char)lg_rand();
	lg_base64(raw, sizeof raw, key);
	lg_ws_accept(key, cl->accept);
	lg_client_path(cl, path, sizeof path);
	n = snprintf(req, sizeof req, "GET %s HTTP/1.1\r\n"
	    "Host: %s\r\n"
	    "Upgrade: websocket\r\n"
	    "Connection: Upgrade\r\n"
	    "Sec-WebSocket-Key: %s\r\n"
	    "Sec-WebSocket-Version: 13\r\n"
	    "\r\n", path, lg.opt.hostport, key);
	if (n < 0 || (size_t)n >= sizeof req)
		errx(1, "request too long");
	memcpy(lg_client_reserve(cl, (size_t)n), req, (size_t)n);
	cl->outlen += (size_t)n;
	cl->state = LG_HANDSHAKE;
	lg_client_flush(cl);
}

/*
 * Parses the handshake response at buf.  Returns its length, 0 if it is
 * not complete yet, or -1 if it is not a valid 101 for our key (§4.1).
 */
static ssize_t
lg_client_upgrade(struct lg_client *cl, const char *buf, size_t len)
{
	const char	*end, *line, *eol, *v;
	size_t		 vlen;
	int		 ok = 0;

	if ((end = memmem(buf, len, "\r\n\r\n", 4)) == NULL)
		return (len > LG_HDR_MAX ? -1 : 0);
	if (end - buf < 12 || memcmp(buf, "HTTP/1.1 101", 12) != 0) {
		eol = memchr(buf, '\r', (size_t)(end - buf) + 1);
		lg_note_error("upgrade refused: %.*s", (int)(eol - buf), buf);
		return (-1);
	}
	line = (const char *)memchr(buf, '\n', (size_t)(end - buf) + 2) + 1;
	for (; line < end + 2; line = eol + 2) {
		eol = memmem(line, (size_t)(end + 2 - line), "\r\n", 2);
		if (eol - line < 21 ||
		    strncasecmp(line, "Sec-WebSocket-Accept:", 21) != 0)
			continue;
		v = line + 21;
		while (v < eol && (*v == ' ' || *v == '\t'))
			v++;
		vlen = (size_t)(eol - v);
		while (vlen > 0 && (v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
			vlen--;
		ok = vlen == strlen(cl->accept) &&
		    memcmp(v, cl->accept, vlen) == 0;
	}
	if (!ok) {
		lg_note_error("bad Sec-WebSocket-Accept");
		return (-1);
	}
	return (end + 4 - buf);
}

/* The connection is up (101, and in racerd mode the welcome). */
static void
lg_client_ready(struct lg_client *cl)
{
	uint64_t	now, ns;

	if (lg.phase == LG_PH_CONNECT) {
		now = lg_now_ns();
		ns = now - cl->t_connect;
		lg.st.hs_hist[lg_hist_index(ns)]++;
		lg.st.hs_n++;
		if (ns > lg.st.hs_max)
			lg.st.hs_max = ns;
		lg.st.t_ready = now;
	}
	cl->state = LG_OPEN;
	cl->ready = 1;
	lg.st.ready++;
	lg.st.handshakes++;
	if (cl->pending) {
		cl->pending = 0;
		lg.connecting--;
	}
	if (lg.phase == LG_PH_CONNECT)
		lg_connect_more();
}

static void
lg_client_upgraded(struct lg_client *cl)
{
	if (lg.opt.connect_only) {
		/* W4: the upgrade is done, close at once (§7.1.2). */
		lg_hist_add(lg_now_ns() - cl->t_connect);
		lg.st.handshakes++;
		lg_client_send_close(cl, 1000);
		cl->state = LG_CLOSING;
		return;
	}
	if (lg.opt.mode == LG_MODE_RACERD)
		cl->state = LG_WELCOME;
	else
		lg_client_ready(cl);
}

/*
 * Reads an unsigned number in base 10 or 16 ending at sep.  Returns 0 and
 * moves *pp past sep, or -1.
 */
static int
lg_parse_u64(const char **pp, const char *end, int base, int sep,
    uint64_t *out)
{
	const char	*p = *pp;
	uint64_t	 v = 0;
	int		 d;

	for (; p < end && *p != sep; p++) {
		if (*p >= '0' && *p <= '9')
			d = *p - '0';
		else if (base == 16 && *p >= 'a' && *p <= 'f')
			d = *p - 'a' + 10;
		else
			return (-1);
		v = v * (uint64_t)base + (uint64_t)d;
	}
	if (p == *pp || p == end)
		return (-1);
	*pp = p + 1;
	*out = v;
	return (0);
}

/* A payload "RUN:SENDER:SEQ:TIME:..." arrived at cl. */
static void
lg_payload(struct lg_client *cl, const char *p, size_t n)
{
	const char	*end = p + n;
	uint64_t	 run, s, q, ts, lat;
	uint32_t	*e;

	if (lg_parse_u64(&p, end, 16, ':', &run) == -1 || run != lg.run ||
	    lg_parse_u64(&p, end, 10, ':', &s) == -1 ||
	    lg_parse_u64(&p, end, 10, ':', &q) == -1 ||
	    lg_parse_u64(&p, end, 10, ':', &ts) == -1) {
		lg.st.foreign++;
		return;
	}
	if (s >= lg.opt.senders || s % lg.opt.chats != cl->chat ||
	    s / lg.opt.chats >= cl->nnext) {
		lg.st.misrouted++;
		return;
	}
	lg.st.deliveries++;
	lat = lg.now > ts ? lg.now - ts : 0;
	lg_hist_add(lat);
	lg.t_last = lg.now;

	e = &cl->next[s / lg.opt.chats];
	if (q >= *e) {
		lg.st.unique++;
		if (q > *e)
			lg.st.gaps++;
		*e = (uint32_t)q + 1;
	} else
		lg.st.reordered++;
	if (s == cl->idx) {
		cl->echoed++;
		if (lg.opt.rate == 0)
			lg_sender_pump(cl);
	}
	if (lg.phase == LG_PH_DRAIN && lg.st.unique >= lg.st.expected)
		lg_phase_queue();
}

/*
 * Finds "key": in a JSON object and returns its value, or NULL.  Our
 * payloads hold no quotes, so a match inside a string is not a concern.
 */
static const char *
lg_json_value(const char *p, size_t n, const char *key)
{
	const char	*start = p, *end = p + n, *k;
	size_t		 klen = strlen(key);

	while ((k = memmem(p, (size_t)(end - p), key, klen)) != NULL) {
		p = k + klen;
		if (k == start || k[-1] != '"' || p >= end || *p != '"')
			continue;
		p++;
		while (p < end && (*p == ' ' || *p == '\t' || *p == '\n'))
			p++;
		if (p >= end || *p != ':')
			continue;
		p++;
		while (p < end && (*p == ' ' || *p == '\t' || *p == '\n'))
			p++;
		return (p < end ? p : NULL);
	}
	return (NULL);
}

/* Returns 1 if the JSON value at v is the string s. */
static int
lg_json_is(const char *v, const char *end, const char *s)
{
	size_t	n = strlen(s);

	return ((size_t)(end - v) >= n + 2 && v[0] == '"' &&
	    memcmp(v + 1, s, n) == 0 && v[n + 1] == '"');
}

/* Reads the integer "seq" of a racerd frame; returns 0, or -1. */
static int
lg_json_seq(const char *p, size_t n, int64_t *seq)
{
	const char	*v, *end = p + n;
	uint64_t	 u;

	if ((v = lg_json_value(p, n, "seq")) == NULL)
		return (-1);
	for (u = 0; v < end && *v >= '0' && *v <= '9'; v++)
		u = u * 10 + (uint64_t)(*v - '0');
	if (v < end && *v != ',' && *v != '}' && *v != ' ')
		return (-1);
	*seq = (int64_t)u;
	return (0);
}

static void
lg_racerd_msg(struct lg_client *cl, const char *p, size_t n)
{
	const char	*v, *end = p + n, *q;
	int64_t		 seq;

	if (lg_json_seq(p, n, &seq) == -1)
		lg.st.seq_errors++;
	else {
		if (cl->seq >= 0 && seq != cl->seq + 1)
			lg.st.seq_errors++;
		cl->seq = seq;
	}
	if ((v = lg_json_value(p, n, "body")) == NULL || *v != '"' ||
	    (q = memchr(v + 1, '"', (size_t)(end - v - 1))) == NULL) {
		lg.st.foreign++;
		return;
	}
	lg_payload(cl, v + 1, (size_t)(q - v - 1));
}

/* A racerd text message: welcome, msg, error; others are ignored. */
static void
lg_racerd_frame(struct lg_client *cl, const char *p, size_t n)
{
	const char	*v, *end = p + n;

	if ((v = lg_json_value(p, n, "type")) == NULL)
		return;
	if (lg_json_is(v, end, "msg")) {
		if (lg.opt.idle) {
			/* W3 and the scale run: a message from elsewhere. */
			lg.st.idle_msgs++;
			lg.st.t_msg_last = lg_now_ns();
		} else if (cl->state == LG_OPEN)
			lg_racerd_msg(cl, p, n);
	} else if (lg_json_is(v, end, "welcome")) {
		if (cl->state != LG_WELCOME)
			return;
		if (lg_json_seq(p, n, &cl->seq) == -1)
			cl->seq = -1;
		lg_client_ready(cl);
	} else if (lg_json_is(v, end, "presence")) {
		lg.st.presence++;
	} else if (lg_json_is(v, end, "error")) {
		lg.st.server_errors++;
		lg_note_error("server: %.*s", (int)(n < 120 ? n : 120), p);
	}
}

static void
lg_client_message(struct lg_client *cl, int op, const char *p, size_t n)
{
	if (op != LG_OP_TEXT)
		return;
	if (lg.opt.mode == LG_MODE_RACERD)
		lg_racerd_frame(cl, p, n);
	else if (cl->state == LG_OPEN)
		lg_payload(cl, p, n);
}

/* A protocol error: count it and drop the connection.  Returns -1. */
static int
lg_client_fail(struct lg_client *cl, const char *why)
{
	lg.st.proto_errors++;
	lg_note_error("protocol error: %s", why);
	lg_client_drop(cl, EPROTO, why);
	return (-1);
}

/* A close frame arrived.  Returns -1: the client is dropped. */
static int
lg_client_closed(struct lg_client *cl, const u_char *p, size_t n)
{
	u_int	code = n >= 2 ? (u_int)p[0] << 8 | p[1] : 1005;

	if (cl->state != LG_CLOSING) {
		/* The server began: echo its code (§5.5.1). */
		lg.st.server_closes++;
		lg_note_error("server closed with %u", code);
		lg_client_send_close(cl, code == 1005 ? 1000 : code);
		cl->state = LG_CLOSING;	/* a failed echo is no drop */
		if (lg_client_flush(cl) == -1)
			return (-1);
	}
	lg_client_drop(cl, 0, NULL);
	return (-1);
}

/* Handles one complete frame; returns 0, or -1 if cl was dropped. */
static int
lg_client_opcode(struct lg_client *cl, int fin, int op, const u_char *p,
    size_t n)
{
	switch (op) {
	case LG_OP_CONT:
		if (cl->fragop == 0)
			return (lg_client_fail(cl, "stray continuation"));
		if (cl->fraglen + n > LG_MSG_MAX)
			return (lg_client_fail(cl, "message too big"));
		lg_buf_add(&cl->frag, &cl->fraglen, &cl->fragsize, p, n);
		if (fin) {
			lg_client_message(cl, cl->fragop, cl->frag,
			    cl->fraglen);
			if (cl->state == LG_IDLE)
				return (-1);
			cl->fragop = 0;
			cl->fraglen = 0;
		}
		return (0);
	case LG_OP_TEXT:
	case LG_OP_BINARY:
		if (cl->fragop != 0)	/* §5.4: no interleaved messages */
			return (lg_client_fail(cl, "message inside message"));
		if (fin)
			lg_client_message(cl, op, (const char *)p, n);
		else {
			cl->fragop = op;
			cl->fraglen = 0;
			lg_buf_add(&cl->frag, &cl->fraglen, &cl->fragsize, p,
			    n);
		}
		return (cl->state == LG_IDLE ? -1 : 0);
	case LG_OP_CLOSE:
		return (lg_client_closed(cl, p, n));
	case LG_OP_PING:
		lg.st.pings++;
		lg_client_send(cl, LG_OP_PONG, p, n);
		return (0);
	case LG_OP_PONG:
		return (0);
	}
	return (lg_client_fail(cl, "unknown opcode"));
}

/*
 * Parses one server frame at buf.  Returns its length, 0 if it is not
 * complete yet, or -1 if the client was dropped.
 */
static ssize_t
lg_client_frame(struct lg_client *cl, const u_char *buf, size_t len)
{
	uint64_t	plen;
	size_t		hdr = 2;
	int		fin, op, i;

	if (len < 2)
		return (0);
	fin = buf[0] & 0x80;
	op = buf[0] & 0x0f;
	if (buf[0] & 0x70)	/* §5.2: no extension was negotiated */
		return (lg_client_fail(cl, "reserved bit set"));
	if (buf[1] & 0x80)	/* §5.1: a server must not mask */
		return (lg_client_fail(cl, "masked server frame"));
	plen = buf[1] & 0x7f;
	if (plen == 126) {
		if (len < 4)
			return (0);
		plen = (uint64_t)buf[2] << 8 | buf[3];
		hdr = 4;
	} else if (plen == 127) {
		if (len < 10)
			return (0);
		for (plen = 0, i = 0; i < 8; i++)
			plen = plen << 8 | buf[2 + i];
		hdr = 10;
	}
	if (plen > LG_MSG_MAX)
		return (lg_client_fail(cl, "frame too big"));
	if ((op & 0x8) && (!fin || plen > 125))	/* §5.5 */
		return (lg_client_fail(cl, "bad control frame"));
	if (len - hdr < plen)
		return (0);
	if (lg_client_opcode(cl, fin, op, buf + hdr, (size_t)plen) == -1)
		return (-1);
	return ((ssize_t)(hdr + plen));
}

/* Consumes the response header or one frame; as lg_client_frame(). */
static ssize_t
lg_client_consume(struct lg_client *cl, const char *buf, size_t len)
{
	ssize_t	n;

	if (cl->state != LG_HANDSHAKE)
		return (lg_client_frame(cl, (const u_char *)buf, len));
	if ((n = lg_client_upgrade(cl, buf, len)) == -1) {
		lg_client_drop(cl, EPROTO, NULL);
		return (-1);
	}
	if (n > 0)
		lg_client_upgraded(cl);
	return (n);
}

/*
 * Processes n bytes from the server, keeping an incomplete frame for the
 * next read.  Returns 0, or -1 if the client was dropped.
 */
static int
lg_client_feed(struct lg_client *cl, const char *data, size_t n)
{
	const char	*buf = data;
	size_t		 len = n, off = 0;
	ssize_t		 used;

	if (cl->inlen > 0) {
		lg_buf_add(&cl->in, &cl->inlen, &cl->insize, data, n);
		buf = cl->in;
		len = cl->inlen;
	}
	while (off < len) {
		if ((used = lg_client_consume(cl, buf + off, len - off)) == -1)
			return (-1);
		if (used == 0)
			break;
		off += (size_t)used;
	}
	if (buf == cl->in) {
		memmove(cl->in, cl->in + off, len - off);
		cl->inlen = len - off;
		if (cl->inlen == 0 && cl->insize > LG_OUT_KEEP) {
			free(cl->in);
			cl->in = NULL;
			cl->insize = 0;
		}
	} else if (off < len)
		lg_buf_add(&cl->in, &cl->inlen, &cl->insize, buf + off,
		    len - off);
	return (0);
}

static void
lg_client_read_cb(int fd, __unused short events, void *arg)
{
	struct lg_client	*cl = arg;
	ssize_t			 n;

	if (cl->ssl != NULL) {
		lg_tls_read(cl);
		return;
	}
	n = read(fd, lg.rbuf, LG_RBUF_SIZE);
	if (n == -1) {
		if (errno != EAGAIN && errno != EINTR)
			lg_client_drop(cl, errno, "read");
		return;
	}
	if (n == 0) {
		/* EOF: clean only after our close frame. */
		if (cl->state == LG_CLOSING)
			lg_client_drop(cl, 0, NULL);
		else
			lg_client_drop(cl, ECONNRESET, "EOF");
		return;
	}
	lg.now = lg_now_ns();
	if (lg.opt.quickack && setsockopt(fd, IPPROTO_TCP, TCP_QUICKACK,
	    &lg.opt.quickack, sizeof lg.opt.quickack) == -1)
		lg_note_error("TCP_QUICKACK: %s", strerror(errno));
	if (lg_client_feed(cl, lg.rbuf, (size_t)n) == 0)
		lg_client_flush(cl);
}

static void
lg_client_write_cb(int fd, __unused short events, void *arg)
{
	struct lg_client	*cl = arg;
	socklen_t		 len = sizeof(int);
	int			 error = 0;

	if (cl->tls_hs) {
		lg_tls_step(cl);
		return;
	}
	if (cl->state != LG_CONNECTING) {
		lg_client_flush(cl);
		return;
	}
	if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &error, &len) == -1)
		error = errno;
	if (error != 0) {
		lg_client_drop(cl, error, "connect");
		return;
	}
	lg_client_connected(cl);
}

/*
 * Closes the client's socket and frees its buffers; the slot stays.
 * error is 0 for a clean close, else an errno value; what is a counted
 * as an error depends on how far the connection had got.
 */
static void
lg_client_drop(struct lg_client *cl, int error, const char *what)
{
	enum lg_state	was = cl->state;

	if (cl->rev != NULL)
		event_free(cl->rev);
	if (cl->wev != NULL)
		event_free(cl->wev);
	if (cl->timer != NULL)
		event_free(cl->timer);
	cl->rev = cl->wev = cl->timer = NULL;
	if (cl->ssl != NULL)
		SSL_free(cl->ssl);
	cl->ssl = NULL;
	cl->tls_hs = 0;
	if (cl->fd != -1) {
		close(cl->fd);
		lg.live--;
	}
	cl->fd = -1;
	free(cl->in);
	free(cl->out);
	free(cl->frag);
	cl->in = cl->out = cl->frag = NULL;
	cl->inlen = cl->insize = cl->outoff = cl->outlen = cl->outsize = 0;
	cl->fraglen = cl->fragsize = 0;
	cl->fragop = 0;
	cl->state = LG_IDLE;

	if (cl->ready) {
		cl->ready = 0;
		lg.st.ready--;
		if (error != 0 && was != LG_CLOSING && lg.phase != LG_PH_CLOSE)
			lg.st.drops++;
	} else if (lg.phase == LG_PH_CLOSE)
		;	/* we are closing it */
	else if (lg.opt.connect_only && was == LG_CLOSING && error == 0) {
		if (lg.phase == LG_PH_RUN)
			lg.st.cycles++;
	} else {
		lg.st.connect_errors++;
		if (what != NULL)
			lg_note_error("%s: %s", what, strerror(error));
	}
	if (cl->pending) {
		cl->pending = 0;
		lg.connecting--;
		if (lg.phase == LG_PH_CONNECT)
			lg_connect_more();
	}
	if (lg.phase == LG_PH_CLOSE && lg.live == 0)
		event_base_loopexit(lg.base, NULL);
	if (lg.opt.connect_only && lg.phase == LG_PH_RUN)
		lg_slot_restart(cl, error != 0);
}

static void
lg_slot_cb(__unused int fd, __unused short events, void *arg)
{
	struct lg_client	*cl = arg;

	if (lg.phase == LG_PH_RUN && cl->state == LG_IDLE)
		lg_client_connect(cl);
}

/*
 * --connect-only: start the slot's next cycle from the loop, not from
 * the callback that ended the last one; after an error, 10 ms later.
 */
static void
lg_slot_restart(struct lg_client *cl, int error)
{
	struct timeval	tv = { 0, error ? 10000 : 0 };

	if (event_base_once(lg.base, -1, EV_TIMEOUT, lg_slot_cb, cl,
	    &tv) == -1)
		errx(1, "event_base_once failed");
}

/* Returns a socket bound to the next --source-ips address, or -1. */
static int
lg_socket(void)
{
	struct sockaddr_storage	*src;
	int			 fd, one = 1;

	fd = socket(lg.addr.ss_family, SOCK_STREAM | SOCK_NONBLOCK |
	    SOCK_CLOEXEC, 0);
	if (fd == -1)
		return (-1);
	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one) == -1)
		goto fail;
	if (lg.nsrcs > 0) {
		/* Let connect() pick the port: a port per 4-tuple. */
#ifdef IP_BIND_ADDRESS_NO_PORT
		if (setsockopt(fd, IPPROTO_IP, IP_BIND_ADDRESS_NO_PORT, &one,
		    sizeof one) == -1)
			goto fail;
#endif
		src = &lg.srcs[lg.src_next++ % lg.nsrcs];
		if (bind(fd, (struct sockaddr *)src, lg.addrlen) == -1)
			goto fail;
	}
	return (fd);

fail:
	one = errno;
	close(fd);
	errno = one;
	return (-1);
}

/* Starts a connection in an idle slot. */
static void
lg_client_connect(struct lg_client *cl)
{
	int	fd;

	cl->seq = -1;
	cl->t_connect = lg_now_ns();
	if ((fd = lg_socket()) == -1) {
		lg.st.connect_errors++;
		lg_note_error("socket: %s", strerror(errno));
		if (lg.opt.connect_only)
			lg_slot_restart(cl, 1);
		return;
	}
	cl->fd = fd;
	lg.live++;
	cl->rev = event_new(lg.base, fd, EV_READ | EV_PERSIST,
	    lg_client_read_cb, cl);
	cl->wev = event_new(lg.base, fd, EV_WRITE, lg_client_write_cb, cl);
	if (cl->rev == NULL || cl->wev == NULL ||
	    event_add(cl->rev, NULL) == -1)
		errx(1, "event_new failed");
	cl->state = LG_CONNECTING;
	if (connect(fd, (struct sockaddr *)&lg.addr, lg.addrlen) == 0)
		lg_client_connected(cl);
	else if (errno == EINPROGRESS) {
		if (event_add(cl->wev, NULL) == -1)
			errx(1, "event_add failed");
	} else
		lg_client_drop(cl, errno, "connect");
}

static void	lg_connect_more(void);

static void
lg_pace_cb(__unused int fd, __unused short events, __unused void *arg)
{
	lg.pace_armed = 0;
	lg_connect_more();
}

/*
 * With --connect-rate: 0 if connection number next may start now, else
 * the wait is armed (and 1 returned).
 */
static int
lg_connect_paced(u_int next)
{
	struct timeval	tv;
	uint64_t	now, due;

	if (lg.opt.connect_rate == 0)
		return (0);
	now = lg_now_ns();
	if (lg.st.t_first == 0)
		lg.st.t_first = now;
	due = lg.st.t_first + (uint64_t)((double)next * 1e9 /
	    lg.opt.connect_rate);
	if (due <= now)
		return (0);
	if (!lg.pace_armed) {
		lg.pace_armed = 1;
		tv.tv_sec = (due - now) / 1000000000ULL;
		tv.tv_usec = ((due - now) % 1000000000ULL) / 1000;
		if (event_base_once(lg.base, -1, EV_TIMEOUT, lg_pace_cb, NULL,
		    &tv) == -1)
			errx(1, "event_base_once failed");
	}
	return (1);
}

/*
 * Opens more connections while the --concurrency window (and the
 * --connect-rate pace) allows.
 */
static void
lg_connect_more(void)
{
	struct lg_client	*cl;

	if (lg.in_connect_more)
		return;
	lg.in_connect_more = 1;
	while (lg.next_client < lg.nclients &&
	    lg.connecting < lg.opt.concurrency &&
	    !lg_connect_paced(lg.next_client)) {
		if (lg.st.t_first == 0)
			lg.st.t_first = lg_now_ns();
		cl = &lg.clients[lg.next_client++];
		cl->pending = 1;
		lg.connecting++;
		lg_client_connect(cl);
		if (cl->fd == -1 && cl->pending) {
			cl->pending = 0;
			lg.connecting--;
		}
	}
	lg.in_connect_more = 0;
	if (lg.next_client == lg.nclients && lg.connecting == 0)
		lg_phase_queue();
}

/* Builds and queues the next message of a sender, stamped ts. */
static void
lg_sender_send(struct lg_client *cl, uint64_t ts)
{
	size_t	n, pad;
	int	h;

	cl->sent++;
	n = 0;
	if (lg.opt.mode == LG_MODE_RACERD) {
		memcpy(lg.sbuf, "{\"type\":\"msg\",\"body\":\"", 22);
		n = 22;
	}
	h = snprintf(lg.sbuf + n, LG_PREFIX_MAX, "%08x:%u:%" PRIu64 ":%"
	    PRIu64 ":", lg.run, cl->idx, cl->sent, ts);
	n += (size_t)h;
	pad = lg.opt.size > (size_t)h ? lg.opt.size - (size_t)h : 0;
	memset(lg.sbuf + n, 'x', pad);
	n += pad;
	if (lg.opt.mode == LG_MODE_RACERD) {
		h = snprintf(lg.sbuf + n, LG_PREFIX_MAX, "\",\"id\":\"%08x-%u-%"
		    PRIu64 "\"}", lg.run, cl->idx, cl->sent);
		n += (size_t)h;
	}
	lg_client_send(cl, LG_OP_TEXT, lg.sbuf, n);
	lg.st.sent++;
	lg.st.expected += lg.members[cl->chat];
}

static void
lg_sender_done(struct lg_client *cl)
{
	if (cl->done)
		return;
	cl->done = 1;
	if (++lg.senders_done == lg.senders_active && lg.phase == LG_PH_RUN)
		lg_phase_queue();
}

/* Inflight mode: keep --inflight of this sender's messages unanswered. */
static void
lg_sender_pump(struct lg_client *cl)
{
	uint64_t	now;

	if (lg.phase != LG_PH_RUN || cl->state != LG_OPEN)
		return;
	now = lg_now_ns();
	while (cl->sent - cl->echoed < lg.opt.inflight) {
		if (lg.opt.messages != 0 && cl->sent >= lg.opt.messages) {
			lg_sender_done(cl);
			break;
		}
		lg_sender_send(cl, now);
	}
}

/* Rate mode: send what is due, stamped with when it was due. */
static void
lg_rate_cb(__unused int fd, __unused short events, void *arg)
{
	struct lg_client	*cl = arg;
	uint64_t		 now = lg_now_ns(), due;

	if (lg.phase != LG_PH_RUN || cl->state != LG_OPEN)
		return;
	for (;;) {
		if (lg.opt.messages != 0 && cl->sent >= lg.opt.messages) {
			lg_sender_done(cl);
			break;
		}
		due = cl->t0 + (uint64_t)((double)cl->sent * 1e9 /
		    lg.opt.rate);
		if (due > now) {
			lg_event_add(cl->timer, due - now);
			break;
		}
		lg_sender_send(cl, due);
	}
	lg_client_flush(cl);
}

/* Sums utime + stime (clock ticks) of a comma-separated pid list. */
static int
lg_cpu_ticks(const char *list, uint64_t *out)
{
	char		 path[64], buf[1024], *copy, *s, *tok, *p;
	FILE		*f;
	unsigned long	 ut, st;
	size_t		 n;

	*out = 0;
	if ((copy = strdup(list)) == NULL)
		err(1, "strdup");
	for (s = copy; (tok = strsep(&s, ",")) != NULL;) {
		if (*tok == '\0')
			continue;
		snprintf(path, sizeof path, "/proc/%s/stat", tok);
		if ((f = fopen(path, "r")) == NULL)
			goto fail;
		n = fread(buf, 1, sizeof buf - 1, f);
		fclose(f);
		buf[n] = '\0';
		/* Fields 14 and 15, counted after the ")" ending comm. */
		if ((p = strrchr(buf, ')')) == NULL || sscanf(p + 2,
		    "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %lu %lu",
		    &ut, &st) != 2)
			goto fail;
		*out += ut + st;
	}
	free(copy);
	return (0);

fail:
	warnx("cannot read %s", path);
	free(copy);
	return (-1);
}

static void
lg_cpu_sample(uint64_t t[2])
{
	lg.cpu_ok = 1;
	if (lg.opt.cpu_pids != NULL && lg_cpu_ticks(lg.opt.cpu_pids, &t[0]))
		lg.cpu_ok = 0;
	if (lg.opt.cpu_pids_extra != NULL &&
	    lg_cpu_ticks(lg.opt.cpu_pids_extra, &t[1]))
		lg.cpu_ok = 0;
}

static double
lg_self_cpu(void)
{
	struct rusage	ru;

	if (getrusage(RUSAGE_SELF, &ru) == -1)
		err(1, "getrusage");
	return ((double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 +
	    (double)ru.ru_stime.tv_sec + ru.ru_stime.tv_usec / 1e6);
}

/* Connections are up: count chat members, start the senders. */
static void
lg_run_start(void)
{
	struct lg_client	*cl;
	uint64_t		 gap;
	u_int			 i, c;

	fprintf(stderr, "loadgen: ready %" PRIu64 " of %u connections\n",
	    lg.st.ready, lg.opt.clients);
	fflush(stderr);
	for (i = 0; i < lg.nclients; i++)
		if (lg.clients[i].ready)
			lg.members[lg.clients[i].chat]++;
	for (i = 0; i < lg.nclients; i++) {
		cl = &lg.clients[i];
		c = cl->chat;
		cl->nnext = lg.opt.senders > c ?
		    (lg.opt.senders - c - 1) / lg.opt.chats + 1 : 0;
		cl->next = calloc(cl->nnext + 1, sizeof *cl->next);
		if (cl->next == NULL)
			err(1, "calloc");
		for (c = 0; c < cl->nnext; c++)
			cl->next[c] = 1;
	}
	lg.t_start = lg_now_ns();
	lg.t_last = lg.t_start;
	lg_cpu_sample(lg.cpu0);
	lg.ucpu = lg_self_cpu();
	lg.phase = LG_PH_RUN;
	for (i = 0; i < lg.opt.senders && !lg.opt.idle; i++) {
		cl = &lg.clients[i];
		if (!cl->ready)
			continue;
		lg.senders_active++;
		if (lg.opt.rate == 0) {
			lg_sender_pump(cl);
			lg_client_flush(cl);
			continue;
		}
		gap = (uint64_t)(1e9 / lg.opt.rate);
		cl->t0 = lg.t_start + lg_rand() % (gap > 0 ? gap : 1);
		if ((cl->timer = evtimer_new(lg.base, lg_rate_cb, cl)) == NULL)
			errx(1, "evtimer_new failed");
		lg_event_add(cl->timer, cl->t0 - lg.t_start);
	}
	if (lg.senders_active == 0 && !lg.opt.idle)
		lg_phase_queue();
}

/* Sending is over; stop the clocks and close every connection. */
static void
lg_close_all(void)
{
	struct lg_client	*cl;
	u_int			 i;

	lg.phase = LG_PH_CLOSE;
	lg.t_end = lg_now_ns();
	lg.ready_end = lg.st.ready;
	lg_cpu_sample(lg.cpu1);
	lg.ucpu = lg_self_cpu() - lg.ucpu;
	for (i = 0; i < lg.nclients; i++) {
		cl = &lg.clients[i];
		if (cl->fd == -1)
			continue;
		if (cl->state == LG_OPEN || cl->state == LG_WELCOME) {
			lg_client_send_close(cl, 1000);
			cl->state = LG_CLOSING;
			lg_client_flush(cl);
		} else if (cl->state != LG_CLOSING)
			lg_client_drop(cl, 0, NULL);
	}
	if (lg.live == 0)
		event_base_loopexit(lg.base, NULL);
	else {
		struct timeval	tv = { LG_CLOSE_WAIT, 0 };

		event_base_loopexit(lg.base, &tv);
	}
}

/* Moves to the next phase: connect -> run -> drain -> close. */
static void
lg_phase_next(void)
{
	lg.t_phase = lg_now_ns();
	switch (lg.phase) {
	case LG_PH_CONNECT:
		lg_run_start();
		break;
	case LG_PH_RUN:
		lg.phase = LG_PH_DRAIN;
		lg.t_stop = lg.t_phase;
		if (lg.st.unique >= lg.st.expected || lg.opt.idle ||
		    lg.opt.connect_only)
			lg_phase_queue();
		break;
	case LG_PH_DRAIN:
		lg_close_all();
		break;
	case LG_PH_CLOSE:
		break;
	}
}

static void
lg_phase_cb(__unused int fd, __unused short events, __unused void *arg)
{
	lg.phase_queued = 0;
	lg_phase_next();
}

/* Runs lg_phase_next() from the loop, outside any client callback. */
static void
lg_phase_queue(void)
{
	struct timeval	tv = { 0, 0 };

	if (lg.phase_queued)
		return;
	lg.phase_queued = 1;
	if (event_base_once(lg.base, -1, EV_TIMEOUT, lg_phase_cb, NULL,
	    &tv) == -1)
		errx(1, "event_base_once failed");
}

/* Drops connections stuck in connect or upgrade past the timeout. */
static void
lg_reap_stuck(uint64_t now)
{
	struct lg_client	*cl;
	uint64_t		 limit;
	u_int			 i;

	limit = (uint64_t)(lg.opt.connect_timeout * 1e9);
	for (i = 0; i < lg.nclients; i++) {
		cl = &lg.clients[i];
		if (cl->fd != -1 && !cl->ready && cl->state != LG_CLOSING &&
		    now - cl->t_connect > limit)
			lg_client_drop(cl, ETIMEDOUT, "timeout");
	}
}

/* Every 100 ms: duration, drain and stall limits. */
static void
lg_tick_cb(__unused int fd, __unused short events, __unused void *arg)
{
	uint64_t	now = lg_now_ns(), dur, drain, stall;

	dur = (uint64_t)(lg.opt.duration * 1e9);
	drain = (uint64_t)(lg.opt.drain * 1e9);
	stall = drain > 2000000000ULL ? drain : 2000000000ULL;
	switch (lg.phase) {
	case LG_PH_CONNECT:
		if (now - lg.t_phase > (uint64_t)(lg.opt.connect_timeout * 1e9))
			lg_reap_stuck(now);
		break;
	case LG_PH_RUN:
		if (lg.opt.connect_only &&
		    now - lg.t_phase > (uint64_t)(lg.opt.connect_timeout * 1e9))
			lg_reap_stuck(now);
		if (dur != 0 && now - lg.t_start >= dur)
			lg_phase_queue();
		else if (dur == 0 && lg.opt.rate == 0 &&
		    now - lg.t_last > stall && now - lg.t_start > stall)
			lg_phase_queue();	/* stalled: an echo is lost */
		break;
	case LG_PH_DRAIN:
		if (now - lg.t_stop > drain)
			lg_phase_queue();
		break;
	case LG_PH_CLOSE:
		break;
	}
}

static void
lg_signal_cb(__unused int sig, __unused short events, __unused void *arg)
{
	if (lg.phase == LG_PH_CLOSE) {
		event_base_loopbreak(lg.base);
		return;
	}
	if (lg.phase == LG_PH_CONNECT)
		lg.t_start = lg.t_last = lg_now_ns();
	if (lg.t_stop == 0)
		lg.t_stop = lg_now_ns();
	lg_close_all();
}

/* The connect phase: its length, handshake times, presence frames. */
static void
lg_connect_summary(void)
{
	printf(" connect_s=%.2f hs_p50_ms=%.3f hs_p99_ms=%.3f hs_max_ms=%.3f"
	    " presence=%" PRIu64, lg.st.t_ready > lg.st.t_first ?
	    (double)(lg.st.t_ready - lg.st.t_first) / 1e9 : 0, lg_hs_ms(0.5),
	    lg_hs_ms(0.99), (double)lg.st.hs_max / 1e6, lg.st.presence);
}

static void
lg_summary(void)
{
	double		el, rate, lost;
	uint64_t	d;

	el = (double)(lg.t_end - lg.t_start) / 1e9;
	if (lg.opt.connect_only) {
		printf("mode=connect-only handshakes=%" PRIu64
		    " handshakes/s=%.0f p50_ms=%.3f p99_ms=%.3f max_ms=%.3f"
		    " connect_errors=%" PRIu64 " elapsed_s=%.2f"
		    " client_cpu=%.2f\n", lg.st.cycles,
		    el > 0 ? (double)lg.st.cycles / el : 0, lg_hist_ms(0.5),
		    lg_hist_ms(0.99), (double)lg.st.lat_max / 1e6,
		    lg.st.connect_errors, el, el > 0 ? lg.ucpu / el : 0);
		return;
	}
	if (lg.opt.idle) {
		printf("mode=idle connections=%" PRIu64 " connect_errors=%"
		    PRIu64 " held_s=%.2f server_closes=%" PRIu64 " drops=%"
		    PRIu64 " pings=%" PRIu64 " msgs=%" PRIu64 " last_msg_ns=%"
		    PRIu64, lg.ready_end,
		    lg.st.connect_errors, el, lg.st.server_closes,
		    lg.st.drops, lg.st.pings, lg.st.idle_msgs,
		    lg.st.t_msg_last);
		lg_connect_summary();
		printf("\n");
		return;
	}
	el = (double)(lg.t_last - lg.t_start) / 1e9;
	rate = el > 0 ? (double)lg.st.unique / el : 0;
	lost = (double)lg.st.expected - (double)lg.st.unique;
	printf("mode=%s clients=%u ready=%" PRIu64 " connect_errors=%" PRIu64
	    " sent=%" PRIu64 " deliveries=%" PRIu64 " deliveries/s=%.0f"
	    " p50_ms=%.3f p99_ms=%.3f max_ms=%.3f lost=%.0f reordered=%"
	    PRIu64 " seq_errors=%" PRIu64 " misrouted=%" PRIu64
	    " server_errors=%" PRIu64 " server_closes=%" PRIu64 " drops=%"
	    PRIu64 " elapsed_s=%.2f client_cpu=%.2f",
	    lg.opt.mode == LG_MODE_RACERD ? "racerd" : "nchan",
	    lg.opt.clients, lg.ready_end, lg.st.connect_errors, lg.st.sent,
	    lg.st.unique, rate, lg_hist_ms(0.5), lg_hist_ms(0.99),
	    (double)lg.st.lat_max / 1e6, lost < 0 ? 0 : lost,
	    lg.st.reordered, lg.st.seq_errors, lg.st.misrouted,
	    lg.st.server_errors, lg.st.server_closes, lg.st.drops, el,
	    el > 0 ? lg.ucpu / ((double)(lg.t_end - lg.t_start) / 1e9) : 0);
	lg_connect_summary();
	d = lg.st.unique;
	if (lg.cpu_ok && d > 0 && lg.opt.cpu_pids != NULL)
		printf(" server_us/delivery=%.3f", (double)(lg.cpu1[0] -
		    lg.cpu0[0]) * 1e6 / sysconf(_SC_CLK_TCK) / (double)d);
	if (lg.cpu_ok && d > 0 && lg.opt.cpu_pids_extra != NULL)
		printf(" server+extra_us/delivery=%.3f", (double)(lg.cpu1[0] -
		    lg.cpu0[0] + lg.cpu1[1] - lg.cpu0[1]) * 1e6 /
		    sysconf(_SC_CLK_TCK) / (double)d);
	printf("\n");
}

/* Raises RLIMIT_NOFILE as far as we may. */
static void
lg_rlimit(void)
{
	struct rlimit	rl;
	FILE		*f;
	unsigned long	 nr = 0;

	if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
		err(1, "getrlimit");
	f = geteuid() == 0 ? fopen("/proc/sys/fs/nr_open", "r") : NULL;
	if (f != NULL) {
		if (fscanf(f, "%lu", &nr) == 1 && nr > rl.rlim_max)
			rl.rlim_max = nr;
		fclose(f);
	}
	rl.rlim_cur = rl.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &rl) == -1) {
		if (getrlimit(RLIMIT_NOFILE, &rl) == -1)
			err(1, "getrlimit");
		rl.rlim_cur = rl.rlim_max;
		if (setrlimit(RLIMIT_NOFILE, &rl) == -1)
			err(1, "setrlimit");
	}
	if (rl.rlim_cur != RLIM_INFINITY && rl.rlim_cur < lg.nclients + 16)
		warnx("RLIMIT_NOFILE %llu is below --clients %u",
		    (unsigned long long)rl.rlim_cur, lg.nclients);
}

/* Splits ws://HOST[:PORT]/PATH or wss://...; wss:// sets up TLS. */
static void
lg_url_parse(const char *url)
{
	const char	*p, *slash, *hp_end, *colon;
	char		*host;
	int		 tls = 0;

	if (strncmp(url, "wss://", 6) == 0) {
		tls = 1;
		p = url + 6;
		lg_tls_ctx = SSL_CTX_new(TLS_client_method());
		if (lg_tls_ctx == NULL)
			errx(1, "SSL_CTX_new failed");
		SSL_CTX_set_verify(lg_tls_ctx, SSL_VERIFY_NONE, NULL);
		SSL_CTX_set_mode(lg_tls_ctx, SSL_MODE_ENABLE_PARTIAL_WRITE |
		    SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
	} else if (strncmp(url, "ws://", 5) == 0)
		p = url + 5;
	else
		errx(1, "--url: only ws[s]://HOST:PORT/PATH is supported");
	slash = strchr(p, '/');
	hp_end = slash != NULL ? slash : p + strlen(p);
	if ((lg.opt.hostport = strndup(p, (size_t)(hp_end - p))) == NULL ||
	    (lg.opt.path = strdup(slash != NULL ? slash : "/")) == NULL)
		err(1, "strdup");
	host = lg.opt.hostport;
	if (*host == '[') {
		if ((colon = strchr(host, ']')) == NULL)
			errx(1, "--url: bad IPv6 address");
		lg.opt.host = strndup(host + 1, (size_t)(colon - host - 1));
		colon = colon[1] == ':' ? colon + 1 : NULL;
	} else {
		colon = strrchr(host, ':');
		lg.opt.host = colon != NULL ?
		    strndup(host, (size_t)(colon - host)) : strdup(host);
	}
	lg.opt.port = strdup(colon != NULL ? colon + 1 : tls ? "443" : "80");
	if (lg.opt.host == NULL || lg.opt.port == NULL)
		err(1, "strdup");
}

static void
lg_resolve(const char *sources)
{
	struct addrinfo		 hints, *res;
	struct sockaddr_storage	*ss;
	char			*copy, *s, *tok;
	void			*dst;
	int			 e;

	memset(&hints, 0, sizeof hints);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	if ((e = getaddrinfo(lg.opt.host, lg.opt.port, &hints, &res)) != 0)
		errx(1, "%s: %s", lg.opt.host, gai_strerror(e));
	memcpy(&lg.addr, res->ai_addr, res->ai_addrlen);
	lg.addrlen = res->ai_addrlen;
	freeaddrinfo(res);
	if (sources == NULL)
		return;
	if ((copy = strdup(sources)) == NULL)
		err(1, "strdup");
	for (s = copy; (tok = strsep(&s, ",")) != NULL;) {
		lg.srcs = lg_realloc(lg.srcs, (lg.nsrcs + 1) * sizeof *lg.srcs);
		ss = &lg.srcs[lg.nsrcs];
		memset(ss, 0, sizeof *ss);
		ss->ss_family = lg.addr.ss_family;
		if (ss->ss_family == AF_INET)
			dst = &((struct sockaddr_in *)ss)->sin_addr;
		else
			dst = &((struct sockaddr_in6 *)ss)->sin6_addr;
		if (inet_pton(lg.addr.ss_family, tok, dst) != 1)
			errx(1, "--source-ips: bad address %s", tok);
		lg.nsrcs++;
	}
	free(copy);
}

static uint64_t
lg_num(const char *s, uint64_t min, uint64_t max, const char *name)
{
	char			*end;
	unsigned long long	 v;

	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno != 0 || *s == '\0' || *end != '\0' || *s == '-' ||
	    v < min || v > max)
		errx(1, "--%s: %s: not a number from %" PRIu64 " to %" PRIu64,
		    name, s, min, max);
	return (v);
}

static double
lg_real(const char *s, double min, const char *name)
{
	char	*end;
	double	 v;

	v = strtod(s, &end);
	if (*s == '\0' || *end != '\0' || !(v >= min) || isinf(v))
		errx(1, "--%s: %s: not a number >= %g", name, s, min);
	return (v);
}

static void __attribute__((__noreturn__))
lg_usage(void)
{
	fprintf(stderr,
"usage: loadgen --url ws[s]://HOST:PORT/PATH [options]\n"
"  --url URL             %%d in PATH is replaced by the chat number\n"
"  --mode racerd|nchan   framing of messages (default racerd)\n"
"  --clients N           connections (default 100)\n"
"  --chats C             client i joins chat i %% C (default 1)\n"
"  --senders S           clients 0..S-1 send (default 1)\n"
"  --inflight K          messages a sender has unanswered (default 1)\n"
"  --rate R              messages/s per sender instead of --inflight\n"
"  --messages M          messages per sender\n"
"  --duration SEC        send for SEC seconds (default 10 without -m)\n"
"  --size BYTES          payload size (default 64; min. its header)\n"
"  --source-ips A,B,...  bind connections to these addresses in turn\n"
"  --concurrency N       connects in progress at once (default 256)\n"
"  --connect-rate R      connects started per second (default: no pace)\n"
"  --drain SEC           wait for deliveries after sending (default 3)\n"
"  --connect-timeout SEC connect + upgrade limit (default 30)\n"
"  --connect-only        W4: N loops of connect, upgrade, close\n"
"  --idle                W3: open N connections, hold for --duration\n"
"  --quickack            ACK every read at once (TCP_QUICKACK)\n"
"  --cpu-pids P,Q        report server CPU per delivery of these pids\n"
"  --cpu-pids-extra P    ... and with these added (e.g. redis-server)\n"
"  --self-test           test the framing code and exit\n");
	exit(1);
}

static int	lg_selftest(void);

/* Sets the option getopt_long() returned as ch. */
static void
lg_option(int ch, const char *arg)
{
	switch (ch) {
	case 'M':
		if (strcmp(arg, "racerd") == 0)
			lg.opt.mode = LG_MODE_RACERD;
		else if (strcmp(arg, "nchan") == 0)
			lg.opt.mode = LG_MODE_NCHAN;
		else
			errx(1, "--mode: racerd or nchan");
		break;
	case 'n':
		lg.opt.clients = lg_num(arg, 1, 10000000, "clients");
		break;
	case 'c':
		lg.opt.chats = lg_num(arg, 1, 10000000, "chats");
		break;
	case 's':
		lg.opt.senders = lg_num(arg, 0, 10000000, "senders");
		break;
	case 'k':
		lg.opt.inflight = lg_num(arg, 1, 1000000, "inflight");
		break;
	case 'r':
		lg.opt.rate = lg_real(arg, 0.001, "rate");
		break;
	case 'm':
		lg.opt.messages = lg_num(arg, 1, UINT32_MAX, "messages");
		break;
	case 'd':
		lg.opt.duration = lg_real(arg, 0.001, "duration");
		break;
	case 'b':
		lg.opt.size = lg_num(arg, 0, LG_MSG_MAX / 2, "size");
		break;
	case 'C':
		lg.opt.concurrency = lg_num(arg, 1, 1000000, "concurrency");
		break;
	case 'K':
		lg.opt.connect_rate = lg_real(arg, 0, "connect-rate");
		break;
	case 'D':
		lg.opt.drain = lg_real(arg, 0, "drain");
		break;
	case 'T':
		lg.opt.connect_timeout = lg_real(arg, 0.1, "connect-timeout");
		break;
	case 'O':
		lg.opt.connect_only = 1;
		break;
	case 'I':
		lg.opt.idle = 1;
		break;
	case 'Q':
		lg.opt.quickack = 1;
		break;
	case 'p':
		lg.opt.cpu_pids = arg;
		break;
	case 'P':
		lg.opt.cpu_pids_extra = arg;
		break;
	case 'X':
		exit(lg_selftest() == 0 ? 0 : 1);
	default:
		lg_usage();
	}
}

static void
lg_options(int argc, char **argv)
{
	static const struct option	lo[] = {
		{ "url", required_argument, NULL, 'u' },
		{ "mode", required_argument, NULL, 'M' },
		{ "clients", required_argument, NULL, 'n' },
		{ "chats", required_argument, NULL, 'c' },
		{ "senders", required_argument, NULL, 's' },
		{ "inflight", required_argument, NULL, 'k' },
		{ "rate", required_argument, NULL, 'r' },
		{ "messages", required_argument, NULL, 'm' },
		{ "duration", required_argument, NULL, 'd' },
		{ "size", required_argument, NULL, 'b' },
		{ "source-ips", required_argument, NULL, 'S' },
		{ "concurrency", required_argument, NULL, 'C' },
		{ "connect-rate", required_argument, NULL, 'K' },
		{ "drain", required_argument, NULL, 'D' },
		{ "connect-timeout", required_argument, NULL, 'T' },
		{ "connect-only", no_argument, NULL, 'O' },
		{ "idle", no_argument, NULL, 'I' },
		{ "quickack", no_argument, NULL, 'Q' },
		{ "cpu-pids", required_argument, NULL, 'p' },
		{ "cpu-pids-extra", required_argument, NULL, 'P' },
		{ "self-test", no_argument, NULL, 'X' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 }
	};
	const char			*url = NULL, *sources = NULL;
	int				 ch;

	lg.opt.clients = 100;
	lg.opt.chats = lg.opt.senders = lg.opt.inflight = 1;
	lg.opt.size = 64;
	lg.opt.concurrency = 256;
	lg.opt.drain = 3;
	lg.opt.connect_timeout = 30;
	while ((ch = getopt_long(argc, argv, "", lo, NULL)) != -1) {
		if (ch == 'u')
			url = optarg;
		else if (ch == 'S')
			sources = optarg;
		else
			lg_option(ch, optarg);
	}
	if (url == NULL || optind != argc)
		lg_usage();
	if (lg.opt.senders > lg.opt.clients)
		errx(1, "--senders is more than --clients");
	if (lg.opt.messages == 0 && lg.opt.duration == 0)
		lg.opt.duration = 10;
	lg_url_parse(url);
	lg_resolve(sources);
}

static void
lg_setup(void)
{
	struct event_config	*cfg;
	struct event		*sig;
	u_int			 i;

	if ((cfg = event_config_new()) == NULL)
		errx(1, "event_config_new failed");
	/* Rate mode stamps messages with when they were due: be on time. */
	if (lg.opt.rate != 0 &&
	    event_config_set_flag(cfg, EVENT_BASE_FLAG_PRECISE_TIMER) == -1)
		errx(1, "event_config_set_flag failed");
	if ((lg.base = event_base_new_with_config(cfg)) == NULL)
		errx(1, "event_base_new failed");
	event_config_free(cfg);

	lg.nclients = lg.opt.clients;
	if ((lg.clients = calloc(lg.nclients, sizeof *lg.clients)) == NULL ||
	    (lg.members = calloc(lg.opt.chats, sizeof *lg.members)) == NULL ||
	    (lg.rbuf = malloc(LG_RBUF_SIZE)) == NULL)
		err(1, "calloc");
	for (i = 0; i < lg.nclients; i++) {
		lg.clients[i].fd = -1;
		lg.clients[i].idx = i;
		lg.clients[i].chat = i % lg.opt.chats;
	}
	lg.sbufsize = lg.opt.size + 2 * LG_PREFIX_MAX + 64;
	if ((lg.sbuf = malloc(lg.sbufsize)) == NULL)
		err(1, "malloc");

	if ((lg.tick = event_new(lg.base, -1, EV_PERSIST, lg_tick_cb,
	    NULL)) == NULL)
		errx(1, "event_new failed");
	lg_event_add(lg.tick, LG_TICK_NS);
	if ((sig = evsignal_new(lg.base, SIGINT, lg_signal_cb, NULL)) == NULL ||
	    event_add(sig, NULL) == -1 ||
	    (sig = evsignal_new(lg.base, SIGTERM, lg_signal_cb,
	    NULL)) == NULL ||
	    event_add(sig, NULL) == -1)
		errx(1, "evsignal_new failed");
	if (signal(SIGPIPE, SIG_IGN) == SIG_ERR)
		err(1, "signal");
}

int
main(int argc, char **argv)
{
	u_int	i;

	lg_rand_init();
	lg_options(argc, argv);
	lg_setup();
	lg_rlimit();

	lg.t_phase = lg_now_ns();
	if (lg.opt.connect_only) {
		/* Each slot connects, upgrades and closes in a loop. */
		lg.phase = LG_PH_RUN;
		lg.t_start = lg.t_phase;
		lg.ucpu = lg_self_cpu();
		for (i = 0; i < lg.nclients; i++)
			lg_client_connect(&lg.clients[i]);
	} else {
		lg.phase = LG_PH_CONNECT;
		lg_connect_more();
	}
	if (event_base_dispatch(lg.base) == -1)
		errx(1, "event_base_dispatch failed");
	if (lg.opt.connect_only)
		lg.t_end = lg.t_stop != 0 ? lg.t_stop : lg.t_end;
	lg_summary();
	if (lg.first_error[0] != '\0')
		fprintf(stderr, "loadgen: first error: %s\n", lg.first_error);
	return (0);
}

/*
 * --self-test: feed a scripted server stream to a client whose socket is
 * one end of a socketpair: whole, in chunks of 1 byte and up, in random
 * chunks, and split once at every offset of the 101 response and near
 * every frame boundary.  Check what the client made of it, and read back
 * from the other end what it answered (pongs, the close echo).
 */

#define LG_ST_MSGS	8

struct lg_st {
	char		*buf;
	size_t		 len;
	size_t		 size;
	size_t		*bounds;	/* offsets where frames start */
	size_t		 nbounds;
};

static struct lg_client	lg_st_cl;
static int		lg_st_peer = -1;

static void
lg_st_frame(struct lg_st *s, int fin, int op, const char *p, size_t n)
{
	u_char	h[10];
	size_t	hl = 2, i;

	s->bounds = lg_realloc(s->bounds, (s->nbounds + 1) *
	    sizeof *s->bounds);
	s->bounds[s->nbounds++] = s->len;
	h[0] = (fin ? 0x80 : 0) | (u_char)op;
	if (n < 126)
		h[1] = (u_char)n;
	else if (n <= 0xffff) {
		h[1] = 126;
		h[2] = (u_char)(n >> 8);
		h[3] = (u_char)n;
		hl = 4;
	} else {
		h[1] = 127;
		for (i = 0; i < 8; i++)
			h[2 + i] = (u_char)((uint64_t)n >> (56 - 8 * i));
		hl = 10;
	}
	lg_buf_add(&s->buf, &s->len, &s->size, h, hl);
	lg_buf_add(&s->buf, &s->len, &s->size, p, n);
}

/*
 * Returns a message of exactly n bytes carrying SEQ q from sender 0: a
 * racerd msg frame with server seq 41 + q, or (nchan) the bare payload.
 * The caller frees it.
 */
static char *
lg_st_msg(uint64_t q, size_t n, int nchan)
{
	char	*m, *payload;
	int	 h;

	if ((m = malloc(n + 1)) == NULL || (payload = malloc(n + 1)) == NULL)
		err(1, "malloc");
	h = snprintf(payload, n + 1, "%08x:0:%" PRIu64 ":1:", lg.run, q);
	if (nchan) {
		memset(payload + h, 'x', n - (size_t)h);
		payload[n] = '\0';
		free(m);
		return (payload);
	}
	h = snprintf(m, n + 1, "{\"type\":\"msg\",\"chat\":\"c\",\"seq\":%"
	    PRIu64 ",\"id\":\"i\",\"from\":\"u\",\"ts\":1,\"body\":\"%s",
	    41 + q, payload);
	memset(m + h, 'x', n - (size_t)h - 2);
	memcpy(m + n - 2, "\"}", 2);
	m[n] = '\0';
	free(payload);
	return (m);
}

/* The stream: 101, welcome, messages of every length class, close. */
static void
lg_st_build(struct lg_st *s, const char *accept, int nchan)
{
	static const size_t	 sizes[LG_ST_MSGS] = { 120, 125, 126, 127,
				     65535, 65536, 70000, 65536 };
	const char		*welcome = "{\"type\":\"welcome\","
				     "\"chat\":\"c\",\"user\":\"u\","
				     "\"session\":\"s\",\"epoch\":\"e\","
				     "\"seq\":41,\"window\":120}";
	const char		*presence = "{\"type\":\"presence\","
				     "\"event\":\"join\",\"user\":\"v\"}";
	char			 hdr[256], *m;
	u_int			 i;
	int			 n;

	memset(s, 0, sizeof *s);
	n = snprintf(hdr, sizeof hdr, "HTTP/1.1 101 Switching Protocols\r\n"
	    "Upgrade: websocket\r\nConnection: Upgrade\r\n"
	    "sec-websocket-accept:  %s \r\n\r\n", accept);
	lg_buf_add(&s->buf, &s->len, &s->size, hdr, (size_t)n);
	if (!nchan)
		lg_st_frame(s, 1, LG_OP_TEXT, welcome, strlen(welcome));
	for (i = 0; i < LG_ST_MSGS; i++) {
		m = lg_st_msg(i + 1, sizes[i], nchan);
		if (i == 6) {
			/* Three fragments with a ping in between (§5.4). */
			lg_st_frame(s, 0, LG_OP_TEXT, m, 1000);
			lg_st_frame(s, 1, LG_OP_PING, "p2", 2);
			lg_st_frame(s, 0, LG_OP_CONT, m + 1000, 30000);
			lg_st_frame(s, 1, LG_OP_CONT, m + 31000,
			    sizes[i] - 31000);
		} else
			lg_st_frame(s, 1, LG_OP_TEXT, m, sizes[i]);
		free(m);
		if (i == 0) {
			lg_st_frame(s, 1, LG_OP_PING, "abc", 3);
			if (!nchan)
				lg_st_frame(s, 1, LG_OP_TEXT, presence,
				    strlen(presence));
		}
	}
	lg_st_frame(s, 1, LG_OP_CLOSE, "\x03\xe8", 2);
}

/*
 * Decodes one client frame as a server would.  Returns its length, or 0
 * if it is incomplete or not masked.
 */
static size_t
lg_st_unframe(const u_char *p, size_t len, int *op, u_char *out, size_t *n)
{
	uint64_t	pl;
	size_t		h = 2, i;

	if (len < 2 || !(p[0] & 0x80) || !(p[1] & 0x80))
		return (0);
	*op = p[0] & 0x0f;
	pl = p[1] & 0x7f;
	if (pl == 126) {
		pl = (uint64_t)p[2] << 8 | p[3];
		h = 4;
	} else if (pl == 127) {
		for (pl = 0, i = 0; i < 8; i++)
			pl = pl << 8 | p[2 + i];
		h = 10;
	}
	if (len < h + 4 + pl)
		return (0);
	for (i = 0; i < pl; i++)
		out[i] = p[h + 4 + i] ^ p[h + (i & 3)];
	*n = (size_t)pl;
	return (h + 4 + (size_t)pl);
}

/* A fresh client in LG_HANDSHAKE on a new socketpair. */
static struct lg_client *
lg_st_client(const char *accept)
{
	static uint32_t		 next[1];
	struct lg_client	*cl = &lg_st_cl;
	int			 sv[2];

	if (cl->state != LG_IDLE)
		lg_client_drop(cl, 0, NULL);
	if (lg_st_peer != -1)
		close(lg_st_peer);
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK, 0, sv) == -1)
		err(1, "socketpair");
	memset(cl, 0, sizeof *cl);
	memset(&lg.st, 0, sizeof lg.st);
	cl->fd = sv[0];
	lg_st_peer = sv[1];
	lg.live = 1;
	cl->idx = 1;
	cl->seq = -1;
	cl->state = LG_HANDSHAKE;
	cl->next = next;
	cl->nnext = 1;
	next[0] = 1;
	snprintf(cl->accept, sizeof cl->accept, "%s", accept);
	return (cl);
}

/* Reads back what the client wrote: pong "abc", pong "p2", close 1000. */
static int
lg_st_replies(void)
{
	static const char	*want[] = { "abc", "p2", "\x03\xe8" };
	static const int	 wop[] = { LG_OP_PONG, LG_OP_PONG,
				     LG_OP_CLOSE };
	u_char			 buf[1024], out[256];
	size_t			 len = 0, off = 0, n, used;
	ssize_t			 r;
	int			 op, k = 0;

	while ((r = read(lg_st_peer, buf + len, sizeof buf - len)) > 0)
		len += (size_t)r;
	while ((used = lg_st_unframe(buf + off, len - off, &op, out,
	    &n)) != 0) {
		if (k > 2 || op != wop[k] || n != strlen(want[k]) ||
		    memcmp(out, want[k], n) != 0)
			return (-1);
		k++;
		off += used;
	}
	return (k == 3 && off == len ? 0 : -1);
}

/* Checks what one feeding of the stream did; returns 0 or -1. */
static int
lg_st_check(struct lg_client *cl, const char *how, size_t arg, int nchan)
{
	if (lg.st.unique != LG_ST_MSGS || lg.st.deliveries != LG_ST_MSGS ||
	    lg.st.reordered || lg.st.seq_errors || lg.st.foreign ||
	    lg.st.proto_errors || lg.st.pings != 2 || cl->state != LG_IDLE ||
	    lg.st.server_closes != 1 || lg.st.connect_errors ||
	    (!nchan && cl->seq != 41 + LG_ST_MSGS) || lg_st_replies() == -1) {
		warnx("self-test: %s %s %zu: deliveries %" PRIu64
		    " unique %" PRIu64 " seq_errors %" PRIu64 " proto %"
		    PRIu64 " pings %" PRIu64 " state %d: %s",
		    nchan ? "nchan" : "racerd", how, arg, lg.st.deliveries,
		    lg.st.unique, lg.st.seq_errors, lg.st.proto_errors,
		    lg.st.pings, cl->state, lg.first_error);
		return (-1);
	}
	return (0);
}

/* Feeds the stream as the read callback would, in pieces per how. */
static int
lg_st_feed(const struct lg_st *s, const char *accept, const char *how,
    size_t arg, int nchan)
{
	struct lg_client	*cl = lg_st_client(accept);
	size_t			 off = 0, n = 0, i;

	for (i = 0; off < s->len; i++) {
		if (strcmp(how, "whole") == 0)
			n = s->len;
		else if (strcmp(how, "chunk") == 0)
			n = arg;
		else if (strcmp(how, "random") == 0)
			n = 1 + lg_rand() % (i % 3 == 0 ? 7 : 9000);
		else
			n = i == 0 ? arg : s->len;
		if (n > s->len - off)
			n = s->len - off;
		lg.now = 2;
		if (lg_client_feed(cl, s->buf + off, n) == -1 ||
		    lg_client_flush(cl) == -1)
			break;
		off += n;
	}
	/* The close frame, last, must be what ended the client. */
	if (cl->state != LG_IDLE || off + n != s->len) {
		warnx("self-test: %s %zu: stopped at %zu of %zu", how, arg,
		    off, s->len);
		return (-1);
	}
	return (lg_st_check(cl, how, arg, nchan));
}

/* Known answers: FIPS 180 "abc", a 56-byte message, RFC 6455 §1.3. */
static int
lg_st_sha1(void)
{
	static const char	*m56 =
	    "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq";
	static const u_char	 abc[20] = { 0xa9, 0x99, 0x3e, 0x36, 0x47,
				     0x06, 0x81, 0x6a, 0xba, 0x3e, 0x25, 0x71,
				     0x78, 0x50, 0xc2, 0x6c, 0x9c, 0xd0, 0xd8,
				     0x9d };
	static const u_char	 d56[20] = { 0x84, 0x98, 0x3e, 0x44, 0x1c,
				     0x3b, 0xd2, 0x6e, 0xba, 0xae, 0x4a, 0xa1,
				     0xf9, 0x51, 0x29, 0xe5, 0xe5, 0x46, 0x70,
				     0xf1 };
	u_char			 dig[20];
	char			 acc[32];

	lg_sha1("abc", 3, dig);
	if (memcmp(dig, abc, 20) != 0)
		return (-1);
	lg_sha1(m56, 56, dig);	/* the padding needs a second block */
	if (memcmp(dig, d56, 20) != 0)
		return (-1);
	lg_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", acc);
	return (strcmp(acc, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo=") == 0 ? 0 : -1);
}

/* Our frames decode back to what was sent, with varying masks. */
static int
lg_st_encoder(void)
{
	static u_char		 in[70000], out[70000];
	static const size_t	 sizes[] = { 0, 125, 126, 65535, 65536, 70000 };
	struct lg_client	 cl;
	size_t			 off = 0, n, used, i;
	uint32_t		 masks[6];
	int			 op;

	memset(&cl, 0, sizeof cl);
	cl.fd = -1;
	for (i = 0; i < sizeof in; i++)
		in[i] = (u_char)lg_rand();
	for (i = 0; i < 6; i++)
		lg_client_send(&cl, LG_OP_BINARY, in, sizes[i]);
	for (i = 0; i < 6; i++) {
		used = lg_st_unframe((u_char *)cl.out + off, cl.outlen - off,
		    &op, out, &n);
		if (used == 0 || op != LG_OP_BINARY || n != sizes[i] ||
		    memcmp(in, out, n) != 0)
			return (-1);
		memcpy(&masks[i], cl.out + off + used - n - 4, 4);
		off += used;
	}
	free(cl.out);
	return (masks[0] != masks[1] || masks[1] != masks[2] ? 0 : -1);
}

/* Frames and responses a client must refuse (§4.1, §5.1, §5.2, §5.5). */
static int
lg_st_refuse(const char *accept)
{
	static const char	*bad[] = { "\x81\x81" "abcdx", "\xc1\x01x",
				     "\x09\x01x", "\x89\x7e\x00\x7e",
				     "\x80\x01x", "\x83\x01x" };
	static const size_t	 blen[] = { 7, 3, 3, 4, 3, 3 };
	static const char	*why[] = { "masked", "reserved", "control",
				     "control", "continuation", "opcode" };
	static const char	*badhdr[] = {
		"HTTP/1.1 101 OK\r\nSec-WebSocket-Accept: x\r\n\r\n",
		"HTTP/1.1 101 OK\r\n\r\n",
		"HTTP/1.1 400 Bad\r\nContent-Length: 0\r\n\r\n"
	};
	struct lg_client	*cl;
	char			 hdr[256];
	u_int			 i;
	int			 n;

	lg.opt.mode = LG_MODE_NCHAN;
	n = snprintf(hdr, sizeof hdr, "HTTP/1.1 101 OK\r\n"
	    "Sec-WebSocket-Accept: %s\r\n\r\n", accept);
	for (i = 0; i < 6; i++) {
		cl = lg_st_client(accept);
		if (lg_client_feed(cl, hdr, (size_t)n) == -1 ||
		    cl->state != LG_OPEN)
			return (-1);
		lg.first_error[0] = '\0';
		if (lg_client_feed(cl, bad[i], blen[i]) != -1 ||
		    lg.st.proto_errors != 1 ||
		    strstr(lg.first_error, why[i]) == NULL)
			return (-1);
	}
	for (i = 0; i < 3; i++) {
		cl = lg_st_client(accept);
		if (lg_client_feed(cl, badhdr[i], strlen(badhdr[i])) != -1 ||
		    lg.st.connect_errors != 1)
			return (-1);
	}
	lg.first_error[0] = '\0';
	return (0);
}

/* A lost message and a server seq jump are both noticed. */
static int
lg_st_loss(const char *accept)
{
	static const uint64_t	 q[] = { 1, 2, 4, 5 };
	struct lg_st		 s;
	struct lg_client	*cl;
	char			*m;
	u_int			 i;
	int			 rc;

	lg.opt.mode = LG_MODE_RACERD;
	lg_st_build(&s, accept, 0);
	s.len = s.bounds[1];	/* the 101 and the welcome */
	for (i = 0; i < 4; i++) {
		m = lg_st_msg(q[i], 200, 0);
		lg_st_frame(&s, 1, LG_OP_TEXT, m, 200);
		free(m);
	}
	cl = lg_st_client(accept);
	rc = lg_client_feed(cl, s.buf, s.len);
	free(s.buf);
	free(s.bounds);
	return (rc == 0 && lg.st.unique == 4 && lg.st.gaps == 1 &&
	    lg.st.seq_errors == 1 ? 0 : -1);
}

static int
lg_st_stream(const char *accept, int nchan)
{
	static const size_t	 chunks[] = { 1, 2, 3, 5, 7, 64, 125, 1000,
				     4093, 65536 };
	struct lg_st		 s;
	size_t			 i, b, k, lo, hi, feeds = 0;
	int			 bad = 0;

	lg.opt.mode = nchan ? LG_MODE_NCHAN : LG_MODE_RACERD;
	lg_st_build(&s, accept, nchan);
	bad |= lg_st_feed(&s, accept, "whole", 0, nchan);
	for (i = 0; i < sizeof chunks / sizeof chunks[0]; i++)
		bad |= lg_st_feed(&s, accept, "chunk", chunks[i], nchan);
	for (i = 0; i < 50; i++)
		bad |= lg_st_feed(&s, accept, "random", i, nchan);
	feeds += 61;
	/* Split once at every offset of the 101 and near each boundary. */
	for (b = 0; b <= s.nbounds && !bad; b++) {
		k = b < s.nbounds ? s.bounds[b] : s.len;
		lo = b == 0 ? 1 : k - 16;
		hi = k + 16 < s.len ? k + 16 : s.len - 1;
		for (i = lo; i <= hi && !bad; i++, feeds++)
			bad |= lg_st_feed(&s, accept, "split", i, nchan);
	}
	if (!bad)
		fprintf(stderr, "self-test: %s stream of %zu bytes, %zu "
		    "frames, %zu feedings: ok\n", nchan ? "nchan" : "racerd",
		    s.len, s.nbounds, feeds);
	free(s.buf);
	free(s.bounds);
	return (bad ? -1 : 0);
}

static int
lg_selftest(void)
{
	char	accept[32];
	int	bad = 0;

	lg.opt.senders = lg.opt.chats = lg.opt.clients = 1;
	lg.phase = LG_PH_RUN;
	lg.opt.rate = 1;	/* the fake client is no sender anyway */
	lg_ws_accept("dGhlIHNhbXBsZSBub25jZQ==", accept);
	if (lg_st_sha1() == -1)
		warnx("self-test: SHA-1 or Sec-WebSocket-Accept wrong"),
		    bad = 1;
	if (lg_st_encoder() == -1)
		warnx("self-test: client frames do not decode"), bad = 1;
	if (lg_st_refuse(accept) == -1)
		warnx("self-test: a bad frame or response was accepted"),
		    bad = 1;
	if (lg_st_loss(accept) == -1)
		warnx("self-test: loss not detected"), bad = 1;
	if (lg_st_stream(accept, 0) == -1 || lg_st_stream(accept, 1) == -1)
		bad = 1;
	fprintf(stderr, "self-test: %s\n", bad ? "FAILED" : "ok");
	return (bad ? -1 : 0);
}
