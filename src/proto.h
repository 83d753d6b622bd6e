/* SPDX-License-Identifier: ISC */
/* racerd: chat frame format -- types and prototypes. */
/*
 * Types shared by proto.c and its callers (the WebSocket layer, the HTTP
 * API and auth.c).  Kept out of racerd.h so that only the modules that
 * handle chat frames see <jansson.h>.
 */
#ifndef RACERD_PROTO_H
#define RACERD_PROTO_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#define PROTO_LIMIT_MAX		1000	/* racerd-protocol(7): history page size */
#define PROTO_WS_HDR_MAX	10	/* RFC 6455 §5.2: longest header */

/* Client frame types (racerd-protocol(7), FRAMES FROM THE CLIENT). */
enum proto_type {
	PROTO_MSG,
	PROTO_ACK,
	PROTO_HISTORY,
	PROTO_REFRESH
};

/* One decoded client frame; only the fields of its type are meaningful. */
struct proto_in {
	enum proto_type	 type;
	const char	*body;		/* msg: borrowed from root, UTF-8 */
	size_t		 body_len;	/* msg: >= 1, no NUL bytes */
	char		 id[RD_MSGID_MAX + 1];	/* msg: "" when absent */
	int64_t		 seq;		/* ack: >= 0 */
	int64_t		 before;	/* history: >= 1, or -1 when absent */
	int		 limit;		/* history: 1..1000, or 0 when absent */
	const char	*token;		/* refresh: borrowed from root */
	size_t		 token_len;
	json_t		*root;		/* owned; proto_in_clear frees it */
};

/* proto.c */
int		 proto_parse(const char *, size_t, struct proto_in *,
		     const char **, const char **);
void		 proto_in_clear(struct proto_in *);
const char	*proto_check_id(const char *, size_t);
char		*proto_welcome(const char *, const char *, const char *,
		     const char *, int64_t, int);
char		*proto_error(const char *, const char *);
char		*proto_error_id(const char *, const char *, const char *);
char		*proto_presence(const char *, const char *);
char		*proto_resumed(int64_t, int64_t, int64_t, int);
char		*proto_msg_head(const char *);
char		*proto_msg_tail(const char *, const char *, uint64_t,
		     const char *, size_t);
char		*proto_history(const char **, size_t);
char		*proto_refreshed(int64_t);
int		 proto_utf8_valid(const void *, size_t);
size_t		 proto_ws_header(uint8_t [PROTO_WS_HDR_MAX], int, size_t);

#endif
