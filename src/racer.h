/* SPDX-License-Identifier: ISC */
/* racer: command-line client of racerd -- shared declarations. */
/*
 * The client is six modules, each with its own prefix: racer.c (options,
 * the connection's life: connect, reconnect, exit), racer_ws.c (one
 * WebSocket connection: TCP, the HTTP upgrade, wslay), racer_tls.c (TLS
 * for wss://), racer_chat.c (the chat protocol: frames in, messages out,
 * acknowledgements, output), racer_e2e.c (end-to-end encryption of
 * bodies) and racer_in.c (lines from standard input).  The daemon's
 * modules are not linked except helpers (http_ws_accept, http_valid_id,
 * xmalloc, log.c, util_mono_ms).
 */
#ifndef RACER_H
#define RACER_H

#include <sys/types.h>

#include <stddef.h>
#include <stdint.h>

#include "compat.h"

struct event_base;

/* Exit statuses (racer(1), EXIT STATUS). */
#define RACER_EXIT_OK		0
#define RACER_EXIT_FAIL		1	/* runtime failure, not acknowledged */
#define RACER_EXIT_USAGE	2	/* usage, bad URL or chat id */
#define RACER_EXIT_CONNECT	3	/* no racerd WebSocket there */
#define RACER_EXIT_REFUSED	4	/* racerd refused, or ended for good */

#define RACER_MSG_MAX		65536	/* racerd's default max-message-size */
#define RACER_SESSION_MAX	63	/* room above racerd's 22-byte tokens */

/* racer.c */
struct racer_opts {
	char		*url;		/* as given */
	char		*host;		/* for connect(2); no brackets */
	char		*port;
	char		*authority;	/* Host: header */
	char		*prefix;	/* path before /ws/, "" or "/x" */
	char		*chat;
	char		*user;		/* NULL: the server picks a guest */
	char		*token;		/* --token, or --token-file's */
	const char	*token_file;	/* re-read when it changes */
	int		 history;	/* print the last N first; 0: no */
	int64_t		 since;		/* join with since; -1: no */
	int		 timeout;	/* seconds */
	const char	*send;		/* --send TEXT, "-": stdin, or NULL */
	int		 json;
	int		 quiet;
	int		 listen;	/* do not read standard input */
	int		 verbose;
	int		 tls;		/* wss:// */
	const char	*cacert;	/* --cacert FILE, or NULL */
	int		 insecure;	/* --insecure */
	const char	*e2e_secret_file;	/* NULL: RACER_E2E_SECRET */
};
extern struct racer_opts	 racer_opts;
int		 racer_send_text(const char *, size_t);
void		 racer_joined(void);
void		 racer_progress(void);
void		 racer_retry_later(void);
void		 racer_input_done(void);
void		 racer_give_up(int, const char *);
__dead void	 racer_exit(int, const char *, ...)
		     __attribute__((__format__(__printf__, 2, 3)));
void		 racer_warnx(const char *, ...)
		     __attribute__((__format__(__printf__, 1, 2)));

/* racer_ws.c */
enum racer_ws_end {
	RACER_WS_CONNECT,	/* no TCP connection (resolve, connect) */
	RACER_WS_HANDSHAKE,	/* the answer is not a WebSocket upgrade */
	RACER_WS_REFUSED,	/* an HTTP error status instead of 101 */
	RACER_WS_CLOSED,	/* a closing handshake: code and reason */
	RACER_WS_LOST,		/* reset, EOF or silence without a close */
	RACER_WS_TLS		/* TLS failed; code 1: the certificate */
};
struct racer_ws_result {
	enum racer_ws_end kind;
	int		 code;		/* REFUSED: HTTP status; CLOSED: code */
	int		 racerd;	/* REFUSED: body was {"error":...} */
	char		 why[256];	/* for people, never NULL */
};
typedef void	 racer_ws_open_cb(void *);
typedef void	 racer_ws_text_cb(const char *, size_t, void *);
typedef void	 racer_ws_end_cb(const struct racer_ws_result *, void *);
struct racer_ws_cbs {
	racer_ws_open_cb	*open;
	racer_ws_text_cb	*text;
	racer_ws_end_cb		*end;
	void			*arg;
};
struct racer_ws;
struct racer_ws	*racer_ws_connect(struct event_base *, const char *,
		     const char *, const char *, const char *,
		     const struct racer_ws_cbs *);
int		 racer_ws_send(struct racer_ws *, const char *, size_t);
void		 racer_ws_close(struct racer_ws *, int, const char *);
void		 racer_ws_free(struct racer_ws *);

/* racer_tls.c */
struct bufferevent;
int		 racer_tls_init(const char *, int, char **);
struct bufferevent *racer_tls_wrap(struct event_base *, struct bufferevent *,
		     const char *, char *, size_t);
int		 racer_tls_why(struct bufferevent *, char *, size_t);

/* racer_chat.c */
void		 racer_chat_init(void);
char		*racer_chat_query(void);
void		 racer_chat_frame(const char *, size_t);
int		 racer_chat_add(const char *, size_t, const char **);
u_int		 racer_chat_pending(void);
u_int		 racer_chat_refused(void);
void		 racer_chat_pump(void);
void		 racer_chat_ack(void);
void		 racer_chat_disconnected(void);
int		 racer_chat_busy(void);
int		 racer_chat_has_session(void);
void		 racer_chat_forget_session(void);

/* racer_e2e.c */
#define RACER_E2E_UNREADABLE	"[encrypted message it cannot read]"
int		 racer_e2e_setup(const char *, const char *, char **);
int		 racer_e2e_on(void);
char		*racer_e2e_seal(const char *, size_t);
char		*racer_e2e_open(const char *, size_t, size_t *);

/* racer_in.c */
int		 racer_in_start(struct event_base *, char **);
void		 racer_in_resume(void);
void		 racer_in_stop(void);

#endif
