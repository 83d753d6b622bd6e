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
typedef void	 bus_reply_cb(void *, void *);	/* reply, arg */

#define RD_AGAIN	-2	/* would block: re-arm and retry */

/* Exit codes of a worker that the master reads. */
#define RD_EXIT_OK	0
#define RD_EXIT_FATAL	1
#define RD_EXIT_NORESPAWN 2	/* configuration-level failure: don't respawn */
#define RD_EXIT_SHM	3	/* registry lock unrecoverable: new generation */

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
	char		*listen;	/* host:port */
	int		 workers;	/* 0: one per CPU */
	char		*instance;
	char		*run_dir;
	char		*state_dir;
	char		*pid_file;	/* "" or NULL: run-dir/racerd.pid */
	char		*log_file;	/* "" or NULL: syslog, stderr with -f */
	int		 log_level;	/* enum log_level */
	int		 shutdown_timeout;	/* seconds */
	int		 max_chats;	/* registry room capacity */
	char		*redis;		/* "embedded", redis://..., unix:... */
	char		*api_key_file;	/* "": no HTTP publishing */
	char		*allowed_origins;	/* "": any */
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
	int		 reconnect_window;
	int		 recovery_max;
	int		 session_lease;
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

struct config_store {
	char		 host[256];	/* TCP; brackets of [V6] removed */
	char		 path[108];	/* or a unix socket */
	int		 port;
	int		 db;
};
int		 config_store_parse(const char *, struct config_store *);
struct config	*config_default(void);
struct config	*config_load(const char *, char **);
void		 config_free(struct config *);
int		 config_resolve(struct config *, char **);
int		 config_workers(const struct config *);
const char	*config_level_name(int);

/* master.c */
struct reg;
int		 master_main(struct config *, int);
int		 master_listen(const char *, char **);

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
	struct evconnlistener	*listener;
	struct event		*accept_pause;
	struct event		*drain_timer;
	int			 draining;
	struct conns		 conns;
	int			 nconns;
	int			 nws;		/* counted WebSockets */
	TAILQ_HEAD(, conn)	 flushq;	/* output to write this turn */
	struct event		*flush_ev;
	int			 flush_armed;
	struct reg_counters	*counters;	/* ours, in the registry */
};
extern struct worker	 wk;
int		 worker_main(struct config *, struct reg *, int, int,
		     const char *);
void		 worker_conn_gone(void);
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
void		 frame_ref(struct frame *);
void		 frame_unref(struct frame *);
void		 frame_release(const void *, size_t, void *);

/* conn.c */
#define CONN_USER_MAX	64
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
	struct http_parse	*hp;
	struct event		*timer;
	int			 nrequests;
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
	int			 history_busy;	/* a history read in flight */
	char			 user[CONN_USER_MAX + 1];
	char			 session[CONN_TOKEN_LEN + 1];

	/* Session and position (sess.c, room.c) */
	uint64_t		 owner;		/* n of host:pid:n */
	int			 attached;	/* its session is ours */
	int			 close_by_client;
	uint64_t		 queued_seq;	/* last seq queued to it */
	uint64_t		 flushed_seq;	/* queued when output drained */
	uint64_t		 acked_seq;	/* from {"type":"ack"} */
	int64_t			 resume_from;	/* replay after this, or -1 */
	char			 resume_epoch[65];	/* "" for any */
	int			 resuming;	/* claimed a session token */
	uint64_t		 gen;		/* claim generation, 0: new */
	int			 replaying;	/* live messages are held */
	uint64_t		 replay_to;	/* latest seq at the seam */
	struct conn_held	*held;		/* held during a replay */
	struct conn_held	**held_tail;
};
struct conn_held {
	struct conn_held	*next;
	struct frame		*f;
	uint64_t		 seq;		/* 0: not a message */
};
int		 conn_init(void);
void		 conn_accept(int);
void		 conn_drain_all(void);
void		 conn_free_all(void);
void		 conn_ref(struct conn *);
void		 conn_unref(struct conn *);
void		 conn_close(struct conn *);
void		 conn_close_after_write(struct conn *);
struct evbuffer	*conn_output(struct conn *);
void		 conn_wait(struct conn *);
void		 conn_answered(struct conn *, int);

/* sess.c */
int		 sess_init(void);
void		 sess_shutdown(void);
void		 sess_new(struct conn *);
void		 sess_owner_name(struct conn *, char *, size_t);
int		 sess_valid_token(const char *, size_t);
void		 sess_attach(struct conn *, const char *, uint64_t);
int		 sess_claim(struct conn *, const char *, const char *,
		     const char *, bus_reply_cb *, void *);
void		 sess_detach(struct conn *);
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

/* api.c */
struct http_req;
int		 api_load_keys(const char *, char **);
int		 api_headers(struct conn *, const struct http_req *);
int		 api_messages(struct conn *, const struct http_req *,
		     const char *, size_t, int);
int		 api_presence(struct conn *, const struct http_req *,
		     const char *, size_t, int);

/* ws.c */
int		 ws_start(struct conn *);
void		 ws_input(struct conn *);
void		 ws_output(struct conn *);
int		 ws_send_frame(struct conn *, struct frame *);
int		 ws_send_text(struct conn *, const char *, size_t);
void		 ws_send_error(struct conn *, const char *, const char *);
void		 ws_send_error_id(struct conn *, const char *, const char *,
		     const char *);
void		 ws_refuse(struct conn *, const char *, const char *);
void		 ws_close(struct conn *, int, const char *);
void		 ws_timeout(struct conn *);
void		 ws_free(struct conn *);

/* room.c */
struct room	*room_join(struct conn *, const char *, size_t);
void		 room_greet(struct conn *);
void		 room_replay(struct conn *, uint64_t, const char *);
void		 room_replay_done(struct conn *);
const char	*room_name(struct room *);
uint64_t	 room_latest(struct room *);
void		 room_leave(struct conn *);
void		 room_publish(struct conn *, const char *, size_t,
		     const char *);
void		 room_on_subscribed(const char *, size_t);
void		 room_on_unsubscribed(const char *, size_t);
void		 room_sub_lost(void);
void		 room_on_message(const char *, size_t, const char *, size_t);
void		 room_resubscribe_all(void);
void		 room_init(void);
void		 room_free_all(void);
u_int		 room_count(void);

/* bus.c */
struct bus_script {
	const char	*body;
	char		 sha[41];
};
struct bus_call;
void		 bus_script_register(struct bus_script *);
struct bus_call	*bus_call_new(bus_reply_cb *, void *);
struct bus_call	*bus_script_call(struct bus_script *, bus_reply_cb *,
		     void *);
void		 bus_call_arg(struct bus_call *, const char *, size_t);
void		 bus_call_argf(struct bus_call *, const char *, ...)
		     __attribute__((__format__(__printf__, 2, 3)));
void		 bus_call_key(struct bus_call *, const char *, size_t,
		     const char *);
void		 bus_call_epoch(struct bus_call *);
int		 bus_call_send(struct bus_call *);
u_int		 bus_pending(void);
int		 bus_init(struct event_base *, const char *, const char *,
		     int);
void		 bus_shutdown(void);
int		 bus_is_up(const char **);
int		 bus_subscribe(const char *, size_t);
int		 bus_unsubscribe(const char *, size_t);
int		 bus_room_info(const char *, size_t, bus_reply_cb *, void *);
int		 bus_publish(const char *, size_t, const char *, const char *,
		     const char *, const char *, bus_reply_cb *, void *);
int		 bus_range(const char *, size_t, uint64_t, uint64_t, int,
		     bus_reply_cb *, void *);
int		 bus_history(const char *, size_t, uint64_t, uint64_t, int,
		     bus_reply_cb *, void *);

/* store.c */
char		*store_address(const struct config *);
int		 store_embedded_start(const struct config *, char **);
pid_t		 store_embedded_pid(void);
void		 store_embedded_stop(int);
void		 store_check_policy(const char *);

/* log.c */
void		 log_open(const char *, int, int, const char *);
int		 log_reopen(void);
void		 log_set_role(const char *);
void		 log_set_level(int);
void		 log_close(void);
size_t		 log_escape(char *, size_t, const char *);
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
int		 util_mkdir_p(const char *, mode_t, char **);
int		 util_set_cloexec(int);

#endif
