/* SPDX-License-Identifier: ISC */
/* racerd: real-time chat server -- shared declarations. */
/*
 * Cross-module prototypes, grouped under a banner per file (tmux.h style).
 * Function names carry their module's prefix.
 */
#ifndef RACERD_H
#define RACERD_H

#include <sys/types.h>
#include <sys/queue.h>

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include "compat.h"

struct event_base;

#define RD_AGAIN	-2	/* answered later, by conn_answered */

/* Identifier limits of the protocol, racerd-protocol(7), in bytes. */
#define RD_CHAT_MAX	128	/* chat id */
#define RD_USER_MAX	64	/* user id */
#define RD_MSGID_MAX	64	/* client message id */

/* Exit codes of a worker that the master reads. */
#define RD_EXIT_OK	0
#define RD_EXIT_FATAL	1
#define RD_EXIT_NORESPAWN 2	/* configuration-level failure: don't respawn */
#define RD_EXIT_SHM	3	/* no registry slot (lock unrecoverable) */

#define RD_ASSERT(x) do {						\
	if (!(x))							\
		log_assert(__FILE__, __LINE__, #x);			\
} while (0)

/* config.c */
enum log_level {
	LOG_LEVEL_ERROR,
	LOG_LEVEL_WARN,
	LOG_LEVEL_INFO,
	LOG_LEVEL_DEBUG
};

struct config {
	char		*path;		/* file it came from, or NULL */
	char		*listen;	/* host:port, "": no plain port */
	char		*tls_listen;	/* host:port, "": no TLS port */
	char		*tls_certificate;
	char		*tls_key;
	char		*tls_ciphers;	/* TLS 1.2 list, "": OpenSSL's */
	char		*tls_protocols;	/* "TLSv1.2 TLSv1.3" or either */
	int		 workers;	/* 0: one per CPU */
	char		*instance;
	char		*run_dir;
	char		*state_dir;
	char		*pid_file;	/* "" or NULL: run-dir/INSTANCE.pid */
	char		*log_file;	/* "" or NULL: syslog, stderr with -f */
	int		 log_level;	/* enum log_level */
	int		 shutdown_timeout;	/* seconds */
	int		 max_chats;	/* registry room capacity */
	char		*redis;		/* "embedded", redis://..., unix:... */
	char		*store_max_memory;	/* "": a quarter of RAM */
	char		*api_key_file;	/* "": no HTTP publishing */
	char		*allowed_origins;	/* "": any */
	char		*webroot;	/* "": no static files */
	int		 max_connections;	/* 0: no limit */
	int		 max_conns_per_ip;	/* 0: no limit */
	int		 max_request_rate;	/* per address, 0: no limit */
	int		 max_message_rate;	/* 0: no limit */
	int		 max_message_size;
	int		 max_outbound_bytes;
	int		 header_timeout;
	int		 ping_interval;
	int		 idle_timeout;
	int		 history_size;
	int		 history_ttl;
	int		 dedup_window;
	int		 store_sync_replicas;	/* WAIT for them; 0: no */
	int		 reconnect_window;
	int		 recovery_max;
	int		 session_lease;
	int		 presence_events_max;	/* 0: events at any size */
	int		 presence_interval;	/* ms between presence writes */
	char		*auth;		/* "none" or "token" */
	char		*auth_hmac_key_file;	/* "": no HS256 keys */
	char		*auth_ed25519_key_file;	/* "": no EdDSA keys */
	char		*storage_key_file;	/* "": bodies in clear */
};

#define CONFIG_WORKERS_MAX 256	/* upper bound of workers, also for CPUs */

/* Checks a string value: returns NULL if good, else why not ("is not ..."). */
typedef const char *(*config_check_cb)(const char *);

struct config_option {
	const char	*name;
	enum {
		CONFIG_INT,
		CONFIG_STRING,
		CONFIG_LEVEL
	}		 type;
	long long	 min;		/* INT: value; STRING: length */
	long long	 max;
	const char	*dflt;
	size_t		 offset;
	const char	*help;
	config_check_cb	 check;		/* STRING: form, or NULL */
};
extern const struct config_option config_table[];
extern const size_t config_table_size;

#define CONFIG_SENTINELS_MAX	8
struct config_store {
	char		 host[256];	/* TCP; brackets of [V6] removed */
	char		 path[108];	/* or a unix socket */
	int		 port;
	int		 db;
	char		 user[256];	/* ACL user, "": default (or none) */
	char		 password[256];	/* "": no AUTH */
	int		 nsentinels;	/* sentinel://: where to ask */
	char		 sentinel_host[CONFIG_SENTINELS_MAX][256];
	int		 sentinel_port[CONFIG_SENTINELS_MAX];
	char		 master[128];	/* the primary's name */
};
int		 config_store_parse(const char *, struct config_store *);
char		**config_store_list(const char *, u_int *);
void		 config_store_list_free(char **);
char		*config_store_redact(const char *);
int		 config_same(const struct config *, const struct config *);
struct config	*config_default(void);
struct config	*config_load(const char *, char **);
void		 config_free(struct config *);
int		 config_resolve(struct config *, char **);
int		 config_workers(const struct config *);
const char	*config_level_name(int);

/* tls.c */
struct bufferevent;
int		 tls_enabled(const struct config *);
int		 tls_configure(const struct config *, char **);
int		 tls_check(const struct config *, char **);
struct bufferevent *tls_accept(struct event_base *, int);
const char	*tls_strerror(struct bufferevent *);
void		 tls_shutdown(struct bufferevent *);
void		 tls_free(void);

/* master.c */
struct reg;
int		 master_main(struct config *, int);
struct config	*master_load(const char *, char **, char **);

/* worker.c */
struct conn;
TAILQ_HEAD(conns, conn);
struct worker {
	struct config		*cfg;
	struct reg		*reg;
	int			 idx;
	int			 nworkers;
	pid_t			 master;
	struct event_base	*base;
	struct evconnlistener	*listener;	/* plain, or NULL */
	struct evconnlistener	*tls_listener;	/* TLS, or NULL */
	struct event		*accept_pause;
	struct event		*drain_timer;
	int			 draining;
	struct conns		 conns;
	int			 nconns;
	int			 nws;		/* counted WebSockets */
	int			 nlinger;	/* closed sockets still read */
	TAILQ_HEAD(, conn)	 flushq;	/* output to write this turn */
	struct event		*flush_ev;
	int			 flush_armed;
	struct reg_counters	*counters;	/* ours, in the registry */
};
extern struct worker	 wk;
int		 worker_main(struct config *, struct reg *, int, int, int,
		     const char *);
void		 worker_conn_gone(void);
int		 worker_load_keys(const struct config *, char **, char **);
void		 worker_store_idle(void);

/* frame.c */
/*
 * One encoded server frame, shared by every connection it is queued on
 * (evbuffer references): fan-out never copies a message per member.
 */
struct frame {
	u_int		 refs;
	size_t		 len;
	uint8_t		 data[];
};
struct frame	*frame_text(const char *, size_t);
struct frame	*frame_join(struct frame **, u_int);
void		 frame_ref(struct frame *);
void		 frame_unref(struct frame *);
void		 frame_release(const void *, size_t, void *);

/* conn.c */
#define CONN_TOKEN_LEN	22		/* 128 random bits, base64url */
enum conn_state {
	CONN_HTTP,		/* reading requests */
	CONN_WS,		/* WebSocket open */
	CONN_CLOSING,		/* flush the output, then free */
	CONN_DEAD		/* waiting for the deferred free */
};
struct room;
struct conn {
	TAILQ_ENTRY(conn)	 entry;		/* wk.conns */
	TAILQ_ENTRY(conn)	 member;	/* room->members */
	TAILQ_ENTRY(conn)	 flushq;	/* wk.flushq */
	int			 flush_queued;
	u_int			 refs;
	enum conn_state		 state;
	struct bufferevent	*bev;
	int			 tls;		/* an OpenSSL bufferevent */
	int			 tls_failed;	/* no close_notify then */
	int			 linger;	/* closed by us: read on a while */
	int			 peer_closed;	/* ... unless its close came */
	struct http_parse	*hp;
	struct event		*timer;
	int			 in_request;	/* bytes of a request read */
	int			 waiting;	/* an answer is on its way */
	int			 http_held;	/* reading stopped: output full */
	int			 head_seen;	/* api_headers ran for it */
	uint32_t		 ip_bucket;	/* iplimit_bucket of the peer */
	int			 ip_counted;	/* in iplimit's count */

	/* WebSocket */
	struct wslay_event_context *ws;	/* NULL between messages */
	uint8_t			 trk_hdr[14];	/* frame header being read */
	size_t			 trk_hlen;
	uint64_t		 trk_left;	/* payload bytes to come */
	int			 trk_in_msg;	/* a fragmented message is open */
	struct room		*room;
	int			 welcomed;	/* got its welcome */
	int			 errors;	/* refused frames */
	double			 tokens;	/* message rate bucket */
	uint64_t		 tokens_at;	/* monotonic ms */
	int			 limited;	/* rate-limited in a row */
	int			 close_code;	/* sent or received */
	int			 ws_closing;	/* close queued or received */
	int			 close_wait;	/* waiting for the peer's close */
	int			 close_ticks;	/* seconds spent closing */
	size_t			 left_mark;	/* output left a tick ago */
	int			 stalled;	/* ticks without progress */
	int			 counted;	/* in the registry's count */
	int			 pinged;
	uint64_t		 ws_msg_at;	/* last message read, mono ms */
	int			 history_busy;	/* a history read in flight */
	char			 user[RD_USER_MAX + 1];
	char			 session[CONN_TOKEN_LEN + 1];
	uint32_t		 pres_seen;	/* room's presence count at welcome */

	/* Joining, session and position (join.c, sess.c, room.c) */
	struct join		*join;		/* NULL once joined */
	uint64_t		 owner;		/* n of host:pid:n */
	int			 attached;	/* its session is ours */
	int			 close_by_client;
	uint64_t		 queued_seq;	/* last seq queued to it */
	uint64_t		 flushed_seq;	/* queued when output drained */
	uint64_t		 acked_seq;	/* from {"type":"ack"} */
	uint64_t		 gen;		/* claim generation, 0: new */
	int			 replaying;	/* live messages are held */
	struct conn_held	*held;		/* held during a replay */
	struct conn_held	**held_tail;
	struct conn_held	*repeats;	/* answers after their seq */

	/* Authorisation (auth.c); rights are AUTH_ALL with auth = none. */
	int			 auth_rights;	/* AUTH_READ|... granted */
	int64_t			 auth_exp;	/* token's exp, 0: none */
	struct event		*auth_timer;	/* closes 4001 at the expiry */
};
struct conn_held {
	struct conn_held	*next;
	struct frame		*f;
	uint64_t		 seq;		/* 0: not a message */
};
int		 conn_init(void);
void		 conn_accept(int, int);
int		 conn_origin_allowed(const char *, const char *);
uint64_t	 conn_position(uint64_t, uint64_t, uint64_t, size_t);
uint64_t	 conn_acked(uint64_t, uint64_t, int64_t);
int		 conn_over_limit(size_t, size_t, size_t);
int		 conn_close_ends_session(int, int);
struct http_req;
void		 conn_drain_all(void);
void		 conn_free_all(void);
void		 conn_ref(struct conn *);
void		 conn_unref(struct conn *);
void		 conn_close(struct conn *);
void		 conn_close_after_write(struct conn *);
struct evbuffer	*conn_output(struct conn *);
void		 conn_wait(struct conn *);
void		 conn_answered(struct conn *, int);
int		 conn_upgrade_finish(struct conn *, const char *, const char *,
		     int);
void		 conn_ws_begin(struct conn *);

/* join.c */
struct join_params {
	const char	*chat;
	const char	*key;		/* Sec-WebSocket-Key */
	int		 keep;		/* keep-alive */
	const char	*token;		/* session to resume, or NULL */
	int64_t		 last;		/* ?last=, or -1 */
	int64_t		 since;		/* ?since=, or -1 */
	const char	*epoch;		/* ?epoch=, or "" */
};
void		 join_start(struct conn *, const struct join_params *);
void		 join_drive(struct conn *);
void		 join_free(struct conn *);
void		 join_output_drained(struct conn *);

/* seal.c */
struct auth_keys;
int		 seal_configure(const struct config *, char **, char **);
int		 seal_enabled(void);
char		*seal_tail(const char *, const char *);
int		 seal_open(const struct auth_keys *, const char *, size_t,
		     const char *, size_t, char **, size_t *);
int		 seal_open_env(const char *, size_t, const char *, size_t,
		     char **, size_t *);
char		*seal_tail_with(const struct auth_keys *, const char *,
		     const char *);

/* bus.c */
#define BUS_EPOCH_MAX	64		/* bytes of an epoch */
struct redisReply;
struct bus_entry {			/* one message of a chat's history */
	uint64_t	 seq;
	const char	*env;		/* the envelope, as delivered */
	size_t		 len;
};
struct bus_info {			/* where a chat is */
	uint64_t	 latest;
	const char	*epoch;
};
struct bus_page {			/* a page of history, oldest first */
	uint64_t		 latest;
	const char		*epoch;		/* NULL: the chat has none */
	struct bus_entry	*entries;
	size_t			 n;
};
struct bus_sent {			/* what became of a publish */
	int		 repeat;	/* the id was seen before */
	uint64_t	 seq;
	const char	*env;		/* repeat: the original, or NULL */
	size_t		 len;
};
enum bus_claim_result {
	BUS_CLAIM_OK,
	BUS_CLAIM_UNKNOWN,		/* no such session, or it expired */
	BUS_CLAIM_FOREIGN		/* another user's session */
};
struct bus_claim {			/* a resume's claim of its session */
	enum bus_claim_result	 result;
	const char		*user;
	const char		*epoch;
	int64_t			 last;		/* -1: unknown */
	uint64_t		 gen;		/* claims so far, this one too */
};
struct bus_pos {			/* where a user left a chat */
	char		 epoch[BUS_EPOCH_MAX + 1];
	uint64_t	 seq;
};
struct bus_member {			/* presence: one user */
	const char	*user;
	int		 connected;	/* else away */
};
struct bus_session {			/* what names a session in the store */
	const char	*chat;
	const char	*token;
	const char	*user;		/* claim: "" for any */
	const char	*owner;		/* host:pid:n of its connection */
};
struct bus_lease {			/* a lease to renew */
	const char	*chat;
	const char	*token;
	const char	*owner;
	uint64_t	 last;		/* the client's position */
};
enum bus_event_type {
	BUS_EVENT_MESSAGE,		/* epoch, seq, json: an envelope */
	BUS_EVENT_FRAME,		/* json: a frame for every member */
	BUS_EVENT_CLAIM			/* token, gen: a session was claimed */
};
struct bus_event {			/* one message on a chat's channel */
	enum bus_event_type	 type;
	const char		*epoch;
	size_t			 elen;
	uint64_t		 seq;
	const char		*json;
	size_t			 jlen;
	char			 token[CONN_TOKEN_LEN + 1];
	uint64_t		 gen;
};
/* Callbacks get NULL (or -1 for a number) when the store failed. */
typedef void	 bus_info_cb(const struct bus_info *, void *);
typedef void	 bus_range_cb(const struct bus_entry *, size_t, void *);
typedef void	 bus_page_cb(const struct bus_page *, void *);
typedef void	 bus_sent_cb(const struct bus_sent *, void *);
typedef void	 bus_claim_cb(const struct bus_claim *, void *);
typedef void	 bus_pos_cb(int, const struct bus_pos *, void *);
typedef void	 bus_gen_cb(int64_t, void *);
typedef void	 bus_members_cb(const struct bus_member *, size_t, void *);
u_int		 bus_pending(void);
int		 bus_init(struct event_base *, const char *, const char *,
		     int);
void		 bus_shutdown(void);
int		 bus_is_up(const char **);
int		 bus_chat_is_up(const char *, size_t, const char **);
u_int		 bus_shards(u_int *);
u_int		 bus_shard_hash(const char *, size_t, u_int);
u_int		 bus_shard_index(const char *, size_t);
int		 bus_subscribe(const char *, size_t);
int		 bus_unsubscribe(const char *, size_t);
int		 bus_room_info(const char *, size_t, bus_info_cb *, void *);
int		 bus_publish(const char *, size_t, const char *, const char *,
		     const char *, const char *, bus_sent_cb *, void *);
int		 bus_range(const char *, size_t, uint64_t, uint64_t, int,
		     bus_range_cb *, void *);
int		 bus_history(const char *, size_t, uint64_t, uint64_t, int,
		     bus_page_cb *, void *);
int		 bus_presence(const char *, size_t, bus_members_cb *, void *);
int		 bus_attach(const struct bus_session *, const char *, uint64_t,
		     uint64_t, bus_pos_cb *, void *);
int		 bus_claim(const struct bus_session *, uint64_t, bus_claim_cb *,
		     void *);
int		 bus_detach(const struct bus_session *, uint64_t, uint64_t);
int		 bus_end(const struct bus_session *, uint64_t, int);
int		 bus_expire(uint64_t, int);
int		 bus_renew(const struct bus_lease *, size_t, uint64_t);
int		 bus_generation(const char *, const char *, bus_gen_cb *,
		     void *);
int		 bus_decode_info(const struct redisReply *, struct bus_info *);
int		 bus_decode_sent(const struct redisReply *, struct bus_sent *);
int		 bus_decode_range(const struct redisReply *,
		     struct bus_entry **, size_t *);
int		 bus_decode_page(const struct redisReply *, struct bus_page *);
int		 bus_decode_claim(const struct redisReply *,
		     struct bus_claim *);
int		 bus_decode_pos(const struct redisReply *, struct bus_pos *);
int		 bus_decode_members(const struct redisReply *,
		     struct bus_member **, size_t *);
int		 bus_decode_gen(const struct redisReply *, uint64_t *);
int		 bus_decode_event(const char *, size_t, struct bus_event *);

/* sess.c */
int		 sess_init(void);
void		 sess_shutdown(void);
void		 sess_new(struct conn *);
int		 sess_valid_token(const char *, size_t);
int		 sess_attach(struct conn *, const char *, uint64_t,
		     bus_pos_cb *, void *);
int		 sess_claim(struct conn *, const char *, bus_claim_cb *,
		     void *);
void		 sess_detach(struct conn *);
void		 sess_abandon(struct conn *, const char *, uint64_t);
void		 sess_check_gen(struct conn *);
void		 sess_taken_over(struct conn *);

/* iplimit.c */
struct sockaddr;
int		 iplimit_init(int, char **);
void		 iplimit_worker_gone(int);
uint32_t	 iplimit_bucket(const struct sockaddr *);
int		 iplimit_conn_add(int, uint32_t, int);
void		 iplimit_conn_del(int, uint32_t);
int		 iplimit_request(int, uint32_t, int);

/* auth.c */
#define AUTH_LEEWAY	30	/* seconds of clock skew for exp, nbf, iat */
#define AUTH_TOKEN_MAX	4096	/* bytes of a token; longer is refused */
#define AUTH_KID_MAX	64
#define AUTH_KEY_MAX	512	/* bytes of an HMAC key */
#define AUTH_HMAC_MIN	32	/* ... at least */
#define AUTH_KEYS_MAX	256	/* keys in one file */
#define AUTH_READ	0x1	/* join, live messages, presence */
#define AUTH_WRITE	0x2	/* msg frames, POST */
#define AUTH_HISTORY	0x4	/* history frames and pages */
#define AUTH_ALL	(AUTH_READ|AUTH_WRITE|AUTH_HISTORY)
#define AUTH_CHALLENGE	"WWW-Authenticate: Bearer\r\n"
enum auth_alg {
	AUTH_HS256,
	AUTH_EDDSA,
	AUTH_STORAGE			/* not a token's: storage-key-file */
};
struct auth_key {
	char		 kid[AUTH_KID_MAX + 1];
	enum auth_alg	 alg;
	size_t		 len;
	uint8_t		 key[AUTH_KEY_MAX];
};
struct auth_keys {
	struct auth_key	*k;		/* n keys, HS256 then EdDSA */
	size_t		 n;
	size_t		 nhmac;		/* of which HS256 */
};
struct auth_claims {
	char		 sub[RD_USER_MAX + 1];
	int64_t		 exp;
	int		 rights;	/* AUTH_READ|AUTH_WRITE|AUTH_HISTORY */
	char		**chats;	/* ids, or prefixes ending in '*' */
	size_t		 nchats;
};
struct http_req;
int		 auth_keys_load(struct auth_keys *, const char *,
		     const char *, char **, char **);
void		 auth_keys_clear(struct auth_keys *);
int		 auth_load_file(struct auth_keys *, enum auth_alg,
		     const char *, char **, char **);
int		 auth_verify(const struct auth_keys *, const char *, size_t,
		     int64_t, struct auth_claims *, const char **);
int		 auth_grants(const struct auth_claims *, const char *, size_t);
void		 auth_claims_clear(struct auth_claims *);
int		 auth_configure(const struct config *, char **, char **);
int		 auth_enabled(void);
void		 auth_check_listen(int);
int		 auth_join(struct conn *, const struct http_req *,
		     const char *, size_t, int, int *, const char **);
int		 auth_request(const struct http_req *, const char *, size_t,
		     int, char *, size_t, int *, const char **);
int		 auth_allowed(struct conn *, int, const char *);
void		 auth_refresh(struct conn *, const char *, size_t);
void		 auth_conn_free(struct conn *);

/* api.c */
struct http_req;
int		 api_load_keys(const char *, char **);
int		 api_headers(struct conn *, const struct http_req *);
int		 api_messages(struct conn *, const struct http_req *,
		     const char *, size_t, int);
int		 api_presence(struct conn *, const struct http_req *,
		     const char *, size_t, int);

/* static.c */
const char	*static_type(const char *);
int		 static_map(const char *, char *, size_t);
int		 static_etag_match(const char *, const char *);
int		 static_serve(struct conn *, const struct http_req *, int);

/* ws.c */
/*
 * Close codes (racerd-protocol(7)): RFC 6455's, then racerd's own; 1005
 * and 1006 are only recorded, never sent; 1007 and 1009 are sent by
 * wslay; 1001, 1010 and 4003 are what a client may meet (a proxy, a
 * server without racerd's extensions, a gateway refusing the chat).
 */
#define WS_CLOSE_NORMAL		1000
#define WS_CLOSE_GOING_AWAY	1001
#define WS_CLOSE_PROTOCOL	1002
#define WS_CLOSE_UNSUPPORTED	1003
#define WS_CLOSE_NO_STATUS	1005
#define WS_CLOSE_ABNORMAL	1006
#define WS_CLOSE_BAD_DATA	1007
#define WS_CLOSE_POLICY		1008
#define WS_CLOSE_TOO_BIG	1009
#define WS_CLOSE_EXTENSION	1010
#define WS_CLOSE_UNAUTHORIZED	4001
#define WS_CLOSE_FORBIDDEN	4003
#define WS_CLOSE_TAKEN_OVER	4009
#define WS_CLOSE_RATE		4100
#define WS_CLOSE_RESTART	4200
#define WS_CLOSE_TOO_SLOW	4208
/* The classes of racerd's own codes: what a client does next. */
#define WS_CLOSE_IS_FINAL(c)	((c) >= 4000 && (c) <= 4099)	/* stop */
#define WS_CLOSE_IS_LATER(c)	((c) >= 4100 && (c) <= 4199)	/* back off */
#define WS_CLOSE_IS_RESUME(c)	((c) >= 4200 && (c) <= 4299)	/* at once */
int		 ws_start(struct conn *);
int		 ws_bucket_take(double *, uint64_t *, uint64_t, int);
void		 ws_input(struct conn *);
int		 ws_send_frame(struct conn *, struct frame *);
int		 ws_send_text(struct conn *, const char *, size_t);
void		 ws_send_error(struct conn *, const char *, const char *);
void		 ws_send_error_id(struct conn *, const char *, const char *,
		     const char *);
void		 ws_close(struct conn *, int, const char *);
void		 ws_timeout(struct conn *);
void		 ws_free(struct conn *);

/* room.c */
struct room	*room_join(struct conn *, const char *, size_t);
int		 room_is_ready(struct room *);
void		 room_release(struct conn *);
void		 room_welcome(struct conn *);
const char	*room_name(struct room *);
const char	*room_epoch(struct room *);
uint64_t	 room_latest(struct room *);
void		 room_leave(struct conn *);
void		 room_publish(struct conn *, const char *, size_t,
		     const char *);
void		 room_on_subscribed(const char *, size_t);
void		 room_on_unsubscribed(const char *, size_t);
void		 room_sub_lost(u_int);
void		 room_on_event(const char *, size_t, const struct bus_event *);
void		 room_resubscribe_all(u_int);
void		 room_init(void);
void		 room_free_all(void);

/* store.c */
char		*store_address(const struct config *);
int		 store_embedded_start(const struct config *, char **);
pid_t		 store_embedded_pid(void);
void		 store_embedded_stop(int);
int		 store_check_policy(const char *, char **);
void		 store_note_shards(const struct config *, char **, u_int);

/* log.c */
void		 log_open(const char *, int, int, const char *);
int		 log_reopen(void);
void		 log_set_role(const char *);
void		 log_set_level(int);
void		 log_close(void);
void		 log_warn(const char *, ...)
		     __attribute__((__format__(__printf__, 1, 2)));
void		 log_warnx(const char *, ...)
		     __attribute__((__format__(__printf__, 1, 2)));
void		 log_info(const char *, ...)
		     __attribute__((__format__(__printf__, 1, 2)));
void		 log_debug(const char *, ...)
		     __attribute__((__format__(__printf__, 1, 2)));
__dead void	 fatal(const char *, ...)
		     __attribute__((__format__(__printf__, 1, 2)));
__dead void	 fatalx(const char *, ...)
		     __attribute__((__format__(__printf__, 1, 2)));
__dead void	 log_assert(const char *, int, const char *);

/* xmalloc.c */
void		*xmalloc(size_t);
void		*xcalloc(size_t, size_t);
void		*xreallocarray(void *, size_t, size_t);
char		*xstrdup(const char *);
char		*xstrndup(const char *, size_t);
int		 xasprintf(char **, const char *, ...)
		     __attribute__((__format__(__printf__, 2, 3)));
int		 xvasprintf(char **, const char *, va_list)
		     __attribute__((__format__(__printf__, 2, 0)));

/* util.c */
uint64_t	 util_now_ms(void);
uint64_t	 util_mono_ms(void);
const char	*util_hostname(void);
#define UTIL_MSG_ID_SIZE 19		/* "s-", 16 hex digits, NUL */
void		 util_msg_id(char *);
void		 util_timer_add(struct event *, const struct timeval *);
int		 util_mkdir_p(const char *, mode_t, char **);

#endif
