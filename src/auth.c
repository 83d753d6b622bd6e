/* SPDX-License-Identifier: ISC */
/* racerd: authentication and authorisation with signed tokens. */
/*
 * With auth = token every join, resume, history or presence read and
 * (unless it carries an API key) every POST presents a JWT (RFC 7519,
 * compact form): HS256 with a key of auth-hmac-key-file, or EdDSA with an
 * Ed25519 public key of auth-ed25519-key-file.  The claims say who the
 * client is (sub), until when (exp, nbf and iat with AUTH_LEEWAY seconds
 * of skew), which chats (chats: ids, prefixes ending in '*', or "*") and
 * what it may do there (rights: read, write, history; default all).
 *
 * Two halves.  The first (auth_keys_load, auth_verify, auth_grants) is
 * pure: keys and the time are arguments, nothing global is touched, and
 * check_auth tests it with tokens made by racerctl and by Python.  All
 * cryptography is libsodium's: crypto_auth_hmacsha256 (any key length,
 * through its init/update/final), crypto_sign_verify_detached,
 * sodium_base642bin for base64url, sodium_memcmp for the MAC.  The alg
 * of the header must match the kind of the key it picks, so that neither
 * "none" nor an HS256 token "signed" with a public key gets in.
 *
 * The second half is the process's: the mode and the key set now in force
 * (the master loads them, workers inherit them at fork and load them again
 * in place on SIGHUP), and the checks called from conn.c (join), ws.c
 * (msg, history and refresh frames) and api.c (HTTP), plus a timer per
 * connection that closes it with 4001 when its token expires unrefreshed.
 */
#include <sys/types.h>
#include <sys/socket.h>
#include <sys/stat.h>

#include <netinet/in.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <event2/event.h>
#include <jansson.h>
#include <sodium.h>

#include "racerd.h"
#include "http.h"
#include "proto.h"

#define AUTH_LINE_MAX		1024	/* bytes of a key file's line */
#define AUTH_DATE_MAX		9007199254740991.0	/* 2^53 - 1 */

static const char	*auth_check_kid(const char *, size_t);
static int		 auth_b64url(const char *, size_t, uint8_t *, size_t,
			     size_t *);
static void		 auth_arm(struct conn *);

/* --- Key files --- */

/* A key id: 1 to 64 characters of the chat id alphabet. */
static const char *
auth_check_kid(const char *s, size_t len)
{
	if (!http_valid_id(s, len, AUTH_KID_MAX))
		return ("the key id is not 1 to 64 letters, digits or ._:-");
	return (NULL);
}

static const struct auth_key *
auth_find_kid(const struct auth_keys *ks, const char *kid)
{
	size_t	 i;

	for (i = 0; i < ks->n; i++) {
		if (strcmp(ks->k[i].kid, kid) == 0)
			return (&ks->k[i]);
	}
	return (NULL);
}

/*
 * Decode a key: standard base64 (padded, as openssl and racerctl print
 * it) or base64url without padding.  Returns 0, or -1.
 */
static int
auth_b64key(const char *s, size_t len, uint8_t *out, size_t max,
    size_t *outlen)
{
	if (sodium_base642bin(out, max, s, len, NULL, outlen, NULL,
	    sodium_base64_VARIANT_ORIGINAL) == 0)
		return (0);
	return (auth_b64url(s, len, out, max, outlen));
}

/* One "KID BASE64KEY" line into a new key of ks.  Returns NULL or why. */
static const char *
auth_parse_line(struct auth_keys *ks, enum auth_alg alg, char *line)
{
	struct auth_key	 k;
	const char	*why;
	char		*kid, *b64, *rest;
	size_t		 len;

	memset(&k, 0, sizeof k);
	kid = line + strspn(line, " \t");
	len = strcspn(kid, " \t");
	if (kid[len] == '\0')
		return ("expected \"KID BASE64KEY\"");
	kid[len] = '\0';
	b64 = kid + len + 1;
	b64 += strspn(b64, " \t");
	len = strcspn(b64, " \t");
	rest = b64 + len + strspn(b64 + len, " \t");
	if (len == 0 || *rest != '\0')
		return ("expected \"KID BASE64KEY\"");
	if ((why = auth_check_kid(kid, strlen(kid))) != NULL)
		return (why);
	if (auth_find_kid(ks, kid) != NULL)
		return ("the key id is used twice");
	snprintf(k.kid, sizeof k.kid, "%s", kid);
	k.alg = alg;
	if (auth_b64key(b64, len, k.key, sizeof k.key, &k.len) != 0) {
		sodium_memzero(&k, sizeof k);
		return ("the key is not base64 (or longer than 512 bytes)");
	}
	if (alg == AUTH_HS256 && k.len < AUTH_HMAC_MIN) {
		sodium_memzero(&k, sizeof k);
		return ("the HMAC key is shorter than 32 bytes");
	}
	if (alg == AUTH_EDDSA && k.len != crypto_sign_PUBLICKEYBYTES)
		return ("an Ed25519 public key is 32 bytes");
	if (alg == AUTH_STORAGE &&
	    k.len != crypto_aead_xchacha20poly1305_ietf_KEYBYTES) {
		sodium_memzero(&k, sizeof k);
		return ("a storage key is 32 bytes");
	}
	if (ks->n == AUTH_KEYS_MAX) {
		sodium_memzero(&k, sizeof k);
		return ("more than 256 keys");
	}
	ks->k = xreallocarray(ks->k, ks->n + 1, sizeof *ks->k);
	ks->k[ks->n++] = k;
	sodium_memzero(&k, sizeof k);
	return (NULL);
}

/*
 * Load one key file of lines "KID BASE64KEY" into ks (seal.c reads
 * storage-key-file with it too).  A file of secret keys others may read
 * (or the group write) adds a warning to *warn.  Returns 0, or -1 with
 * "FILE:LINE: why" (or "FILE: why") in *cause.
 */
int
auth_load_file(struct auth_keys *ks, enum auth_alg alg, const char *path,
    char **warn, char **cause)
{
	const char	*what = alg == AUTH_HS256 ? "auth-hmac-key-file" :
			    alg == AUTH_EDDSA ? "auth-ed25519-key-file" :
			    "storage-key-file";
	const char	*why;
	struct stat	 st;
	FILE		*f;
	char		*buf = NULL, *w;
	size_t		 size = 0, before = ks->n, len;
	ssize_t		 n;
	int		 line = 0, rc = -1;

	if ((f = fopen(path, "re")) == NULL) {
		xasprintf(cause, "%s %s: %s", what, path, strerror(errno));
		return (-1);
	}
	if (fstat(fileno(f), &st) != 0) {
		xasprintf(cause, "%s %s: %s", what, path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode)) {
		xasprintf(cause, "%s %s: not a regular file", what, path);
		goto out;
	}
	/* Public keys are no secret; HMAC and storage keys are. */
	if (alg != AUTH_EDDSA && (st.st_mode & 0137) != 0) {
		xasprintf(&w, "%s%s%s %s: mode %04o is wider than 0640: "
		    "others may read the keys", *warn != NULL ? *warn : "",
		    *warn != NULL ? "; " : "", what, path,
		    (u_int)(st.st_mode & 07777));
		free(*warn);
		*warn = w;
	}
	while ((n = getline(&buf, &size, f)) != -1) {
		line++;
		len = n;
		if (memchr(buf, '\0', len) != NULL) {
			xasprintf(cause, "%s:%d: the line has a NUL byte",
			    path, line);
			goto out;
		}
		if (len > AUTH_LINE_MAX) {
			xasprintf(cause, "%s:%d: the line is longer than %d "
			    "bytes", path, line, AUTH_LINE_MAX);
			goto out;
		}
		buf[strcspn(buf, "\r\n")] = '\0';
		w = buf + strspn(buf, " \t");
		if (*w == '\0' || *w == '#')
			continue;
		if ((why = auth_parse_line(ks, alg, w)) != NULL) {
			xasprintf(cause, "%s:%d: %s", path, line, why);
			goto out;
		}
	}
	if (ferror(f)) {
		xasprintf(cause, "%s %s: %s", what, path, strerror(errno));
		goto out;
	}
	if (ks->n == before) {
		xasprintf(cause, "%s %s: no key in the file", what, path);
		goto out;
	}
	rc = 0;
out:
	if (buf != NULL) {
		sodium_memzero(buf, size);
		free(buf);
	}
	fclose(f);
	return (rc);
}

/*
 * Load the HMAC keys from hmac_path and the Ed25519 public keys from
 * ed_path (either NULL or "" for none) into ks, which must be empty.  Key
 * ids are unique across both files.  Returns 0, with warnings about file
 * modes in *warn (or NULL); or -1 with a message in *cause, ks empty.
 * The caller frees both messages.
 */
int
auth_keys_load(struct auth_keys *ks, const char *hmac_path,
    const char *ed_path, char **warn, char **cause)
{
	memset(ks, 0, sizeof *ks);
	*warn = NULL;
	if (hmac_path != NULL && *hmac_path != '\0' &&
	    auth_load_file(ks, AUTH_HS256, hmac_path, warn, cause) != 0)
		goto fail;
	ks->nhmac = ks->n;
	if (ed_path != NULL && *ed_path != '\0' &&
	    auth_load_file(ks, AUTH_EDDSA, ed_path, warn, cause) != 0)
		goto fail;
	return (0);
fail:
	auth_keys_clear(ks);
	free(*warn);
	*warn = NULL;
	return (-1);
}

/* Forget every key (wiping them); ks may be loaded again. */
void
auth_keys_clear(struct auth_keys *ks)
{
	if (ks->k != NULL) {
		sodium_memzero(ks->k, ks->n * sizeof *ks->k);
		free(ks->k);
	}
	memset(ks, 0, sizeof *ks);
}

/* --- Verifying a token --- */

/* Decode base64url without padding (RFC 7515 §2).  Returns 0, or -1. */
static int
auth_b64url(const char *s, size_t len, uint8_t *out, size_t max,
    size_t *outlen)
{
	const char	*end;

	if (len == 0)
		return (-1);
	if (sodium_base642bin(out, max, s, len, NULL, outlen, &end,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 || end != s + len)
		return (-1);
	return (0);
}

/* Decode a base64url JSON object.  Returns it, or NULL. */
static json_t *
auth_b64json(const char *s, size_t len)
{
	json_error_t	 err;
	json_t		*j;
	uint8_t		*buf;
	size_t		 n;

	if (len == 0)
		return (NULL);
	buf = xmalloc(len);
	if (auth_b64url(s, len, buf, len, &n) != 0) {
		free(buf);
		return (NULL);
	}
	j = json_loadb((const char *)buf, n, JSON_REJECT_DUPLICATES, &err);
	free(buf);
	if (j != NULL && !json_is_object(j)) {
		json_decref(j);
		return (NULL);
	}
	return (j);
}

/*
 * The key for a header's alg and kid: the key of that id, which must be of
 * the alg's kind; or without kid the only key of that kind.  Returns it,
 * or NULL with *why set.
 */
static const struct auth_key *
auth_pick(const struct auth_keys *ks, json_t *hdr, const char **why)
{
	const struct auth_key	*k;
	const char		*alg, *kid;
	enum auth_alg		 want;
	json_t			*v;

	if ((alg = json_string_value(json_object_get(hdr, "alg"))) == NULL) {
		*why = "the header has no alg";
		return (NULL);
	}
	if (strcmp(alg, "HS256") == 0)
		want = AUTH_HS256;
	else if (strcmp(alg, "EdDSA") == 0)
		want = AUTH_EDDSA;
	else {
		*why = strcasecmp(alg, "none") == 0 ? "alg none is refused" :
		    "alg is neither HS256 nor EdDSA";
		return (NULL);
	}
	if (json_object_get(hdr, "crit") != NULL) {
		*why = "the header has crit";
		return (NULL);
	}
	if ((v = json_object_get(hdr, "kid")) != NULL) {
		if ((kid = json_string_value(v)) == NULL ||
		    (k = auth_find_kid(ks, kid)) == NULL) {
			*why = "unknown kid";
			return (NULL);
		}
		if (k->alg != want) {
			*why = "alg does not match the key's kind";
			return (NULL);
		}
		return (k);
	}
	if (want == AUTH_HS256 && ks->nhmac == 1)
		return (&ks->k[0]);
	if (want == AUTH_EDDSA && ks->n - ks->nhmac == 1)
		return (&ks->k[ks->nhmac]);
	*why = (want == AUTH_HS256 ? ks->nhmac : ks->n - ks->nhmac) == 0 ?
	    "no key for this alg" : "no kid, and there is more than one key";
	return (NULL);
}

/* Check the signature sig (siglen bytes) of msg with k.  Returns 0 or -1. */
static int
auth_check_sig(const struct auth_key *k, const char *msg, size_t len,
    const uint8_t *sig, size_t siglen)
{
	crypto_auth_hmacsha256_state	 st;
	uint8_t				 mac[crypto_auth_hmacsha256_BYTES];
	int				 rc;

	if (k->alg == AUTH_EDDSA) {
		if (siglen != crypto_sign_BYTES)
			return (-1);
		return (crypto_sign_verify_detached(sig, (const uint8_t *)msg,
		    len, k->key) == 0 ? 0 : -1);
	}
	if (siglen != sizeof mac)
		return (-1);
	if (crypto_auth_hmacsha256_init(&st, k->key, k->len) != 0 ||
	    crypto_auth_hmacsha256_update(&st, (const uint8_t *)msg,
	    len) != 0 || crypto_auth_hmacsha256_final(&st, mac) != 0)
		return (-1);
	rc = sodium_memcmp(mac, sig, sizeof mac) == 0 ? 0 : -1;
	sodium_memzero(&st, sizeof st);
	sodium_memzero(mac, sizeof mac);
	return (rc);
}

/*
 * A NumericDate claim (RFC 7519 §2): absent (returns 0, *out untouched),
 * a number from 0 to 2^53 - 1 (returns 0, *out its whole seconds) or
 * anything else (returns -1).
 */
static int
auth_date(json_t *claims, const char *name, int64_t *out)
{
	json_t	*v;
	double	 d;

	if ((v = json_object_get(claims, name)) == NULL)
		return (0);
	if (!json_is_number(v))
		return (-1);
	d = json_number_value(v);
	if (!(d >= 0 && d <= AUTH_DATE_MAX))
		return (-1);
	*out = (int64_t)d;	/* d >= 0: truncation is floor */
	return (0);
}

/* The chats claim: an array of chat ids and prefixes.  Returns NULL or why. */
static const char *
auth_get_chats(json_t *claims, struct auth_claims *out)
{
	json_t		*a, *v;
	const char	*s;
	size_t		 i, len;

	a = json_object_get(claims, "chats");
	if (a == NULL)
		return ("no chats claim");
	if (!json_is_array(a))
		return ("chats is not an array");
	out->chats = xcalloc(json_array_size(a) + 1, sizeof *out->chats);
	json_array_foreach(a, i, v) {
		if ((s = json_string_value(v)) == NULL)
			return ("chats holds a non-string");
		len = json_string_length(v);
		if (len > 0 && s[len - 1] == '*')
			len--;
		/* A prefix may be empty ("*") or end in '.'. */
		if (len > 0 && strspn(s, "ABCDEFGHIJKLMNOPQRSTUVWXYZ"
		    "abcdefghijklmnopqrstuvwxyz0123456789._:-") != len)
			return ("chats holds an invalid chat id or prefix");
		if (len == json_string_length(v) &&
		    !http_valid_id(s, len, RD_CHAT_MAX))
			return ("chats holds an invalid chat id or prefix");
		if (len > RD_CHAT_MAX)
			return ("chats holds an invalid chat id or prefix");
		out->chats[out->nchats++] = xstrdup(s);
	}
	return (NULL);
}

/* The rights claim (default: all).  Returns NULL or why. */
static const char *
auth_get_rights(json_t *claims, struct auth_claims *out)
{
	static const struct {
		const char	*name;
		int		 bit;
	} names[] = {
		{ "read", AUTH_READ },
		{ "write", AUTH_WRITE },
		{ "history", AUTH_HISTORY }
	};
	json_t		*a, *v;
	const char	*s;
	size_t		 i, j;

	out->rights = AUTH_ALL;
	if ((a = json_object_get(claims, "rights")) == NULL)
		return (NULL);
	if (!json_is_array(a))
		return ("rights is not an array");
	out->rights = 0;
	json_array_foreach(a, i, v) {
		if ((s = json_string_value(v)) == NULL)
			return ("rights holds a non-string");
		for (j = 0; j < nitems(names); j++) {
			if (strcmp(s, names[j].name) == 0)
				break;
		}
		if (j == nitems(names))
			return ("rights holds other than read, write, history");
		out->rights |= names[j].bit;
	}
	return (NULL);
}

/* The claims of a verified token, at time now.  Returns NULL or why. */
static const char *
auth_get_claims(json_t *claims, int64_t now, struct auth_claims *out)
{
	const char	*sub, *why;
	int64_t		 exp = -1, nbf = -1, iat = -1;

	if ((sub = json_string_value(json_object_get(claims, "sub"))) == NULL)
		return ("no sub claim");
	if (!http_valid_id(sub, json_string_length(json_object_get(claims,
	    "sub")), RD_USER_MAX))
		return ("sub is not a user id");
	if (auth_date(claims, "exp", &exp) != 0 ||
	    auth_date(claims, "nbf", &nbf) != 0 ||
	    auth_date(claims, "iat", &iat) != 0)
		return ("exp, nbf or iat is not a date");
	if (exp == -1)
		return ("no exp claim");
	if (now > exp + AUTH_LEEWAY)
		return ("token expired");
	if (nbf != -1 && nbf > now + AUTH_LEEWAY)
		return ("token not valid yet (nbf)");
	if (iat != -1 && iat > now + AUTH_LEEWAY)
		return ("token issued in the future (iat)");
	if ((why = auth_get_chats(claims, out)) != NULL ||
	    (why = auth_get_rights(claims, out)) != NULL)
		return (why);
	snprintf(out->sub, sizeof out->sub, "%s", sub);
	out->exp = exp;
	return (NULL);
}

/*
 * Verify the compact JWT of len bytes at token with the keys ks at time
 * now (seconds since the epoch).  Returns 0 with the claims in *out (for
 * auth_claims_clear), or -1 with a static reason in *why (out is then
 * empty).  A failure is always the client's: 401.
 */
int
auth_verify(const struct auth_keys *ks, const char *token, size_t len,
    int64_t now, struct auth_claims *out, const char **why)
{
	const struct auth_key	*k;
	const char		*dot1, *dot2;
	uint8_t			 sig[crypto_sign_BYTES + 1];
	size_t			 siglen;
	json_t			*hdr = NULL, *claims = NULL;

	memset(out, 0, sizeof *out);
	*why = NULL;
	if (len == 0) {
		*why = "empty token";
		return (-1);
	}
	if (len > AUTH_TOKEN_MAX || memchr(token, '\0', len) != NULL) {
		*why = len > AUTH_TOKEN_MAX ? "token too long" :
		    "malformed token";
		return (-1);
	}
	if ((dot1 = memchr(token, '.', len)) == NULL ||
	    (dot2 = memchr(dot1 + 1, '.', token + len - dot1 - 1)) == NULL ||
	    memchr(dot2 + 1, '.', token + len - dot2 - 1) != NULL) {
		*why = "malformed token (not three parts)";
		return (-1);
	}
	if ((hdr = auth_b64json(token, dot1 - token)) == NULL) {
		*why = "malformed token header";
		goto fail;
	}
	if ((k = auth_pick(ks, hdr, why)) == NULL)
		goto fail;
	if (auth_b64url(dot2 + 1, token + len - dot2 - 1, sig, sizeof sig,
	    &siglen) != 0 || siglen != (k->alg == AUTH_EDDSA ?
	    crypto_sign_BYTES : crypto_auth_hmacsha256_BYTES)) {
		/* Undecodable, or the wrong length for its alg. */
		*why = "malformed signature";
		goto fail;
	}
	if (auth_check_sig(k, token, dot2 - token, sig, siglen) != 0) {
		*why = "bad signature";
		goto fail;
	}
	if ((claims = auth_b64json(dot1 + 1, dot2 - dot1 - 1)) == NULL) {
		*why = "malformed token claims";
		goto fail;
	}
	if ((*why = auth_get_claims(claims, now, out)) != NULL)
		goto fail;
	json_decref(hdr);
	json_decref(claims);
	return (0);
fail:
	json_decref(hdr);
	json_decref(claims);
	auth_claims_clear(out);
	return (-1);
}

/* Returns 1 if the claims grant the chat of len bytes, else 0. */
int
auth_grants(const struct auth_claims *cl, const char *chat, size_t len)
{
	const char	*p;
	size_t		 i, n;

	for (i = 0; i < cl->nchats; i++) {
		p = cl->chats[i];
		n = strlen(p);
		if (n > 0 && p[n - 1] == '*') {
			if (n - 1 <= len && memcmp(p, chat, n - 1) == 0)
				return (1);
		} else if (n == len && memcmp(p, chat, len) == 0)
			return (1);
	}
	return (0);
}

/* Free what auth_verify put in cl; it may be cleared twice. */
void
auth_claims_clear(struct auth_claims *cl)
{
	size_t	 i;

	for (i = 0; i < cl->nchats; i++)
		free(cl->chats[i]);
	free(cl->chats);
	memset(cl, 0, sizeof *cl);
}

/* --- The process's keys and mode --- */

static struct {
	int		 on;		/* auth = token */
	struct auth_keys keys;
} auth;

/*
 * Load the mode and keys of cfg and put them in force.  Returns 0, with
 * warnings in *warn (or NULL); or -1 with a message in *cause, and the
 * keys in force unchanged.  The caller frees both.
 */
int
auth_configure(const struct config *cfg, char **warn, char **cause)
{
	struct auth_keys	 ks;
	int			 on = strcmp(cfg->auth, "token") == 0;

	*warn = NULL;
	if (on && *cfg->auth_hmac_key_file == '\0' &&
	    *cfg->auth_ed25519_key_file == '\0') {
		xasprintf(cause, "%s: auth = token needs auth-hmac-key-file "
		    "or auth-ed25519-key-file", cfg->path != NULL ? cfg->path :
		    "defaults");
		return (-1);
	}
	memset(&ks, 0, sizeof ks);
	if (on && auth_keys_load(&ks, cfg->auth_hmac_key_file,
	    cfg->auth_ed25519_key_file, warn, cause) != 0)
		return (-1);
	auth_keys_clear(&auth.keys);
	auth.keys = ks;
	auth.on = on;
	return (0);
}

/* Returns 1 with auth = token, else 0. */
int
auth_enabled(void)
{
	return (auth.on);
}

/*
 * With auth = none, warn (once, for listen and tls-listen together) if
 * the listening socket fd takes more than loopback connections: anyone
 * who reaches it reads any chat.
 */
void
auth_check_listen(int fd)
{
	struct sockaddr_storage	 ss;
	struct sockaddr_in	*sin = (struct sockaddr_in *)&ss;
	struct sockaddr_in6	*sin6 = (struct sockaddr_in6 *)&ss;
	socklen_t		 len = sizeof ss;
	const uint8_t		*a;
	static int		 warned;

	if (auth.on || warned ||
	    getsockname(fd, (struct sockaddr *)&ss, &len) != 0)
		return;
	if (ss.ss_family == AF_INET &&
	    (ntohl(sin->sin_addr.s_addr) >> 24) == 127)
		return;
	if (ss.ss_family == AF_INET6) {
		a = sin6->sin6_addr.s6_addr;
		if (IN6_IS_ADDR_LOOPBACK(&sin6->sin6_addr) ||
		    (IN6_IS_ADDR_V4MAPPED(&sin6->sin6_addr) && a[12] == 127))
			return;
	}
	if (ss.ss_family != AF_INET && ss.ss_family != AF_INET6)
		return;
	warned = 1;
	log_warnx("auth = none on a non-loopback address: anyone who can "
	    "connect reads every chat and speaks as any user");
}

/* --- Checks at the entry points --- */

/*
 * The token of a request: ?token=, else Authorization: Bearer.  Returns 1
 * with it in buf (NUL-terminated, *len bytes), 0 if there is none, -1 if
 * it is malformed or too long.
 */
static int
auth_token_of(const struct http_req *req, char *buf, size_t size,
    size_t *len)
{
	const char	*v;
	int		 rc;

	rc = http_query_get(req->query, "token", buf, size, len);
	if (rc != 0)
		return (rc == 1 && strlen(buf) == *len ? 1 : -1);
	v = req->authorization;
	if (v == NULL || strncasecmp(v, "Bearer ", 7) != 0)
		return (0);
	v += 7;
	v += strspn(v, " ");
	if ((*len = strlen(v)) >= size)
		return (-1);
	memcpy(buf, v, *len + 1);
	return (1);
}

/*
 * Check the token of req for chat (len bytes) and right.  Returns 0 with
 * the claims in *cl, or -1 with *status (401 or 403) and *msg set.
 */
static int
auth_check_req(const struct http_req *req, const char *chat, size_t len,
    int right, struct auth_claims *cl, int *status, const char **msg)
{
	char		 tok[AUTH_TOKEN_MAX + 2];
	size_t		 tlen;
	int		 rc;

	memset(cl, 0, sizeof *cl);
	*status = 401;
	if ((rc = auth_token_of(req, tok, sizeof tok, &tlen)) != 1) {
		*msg = rc == 0 ? "a token is required" : "malformed token";
		return (-1);
	}
	if (auth_verify(&auth.keys, tok, tlen, util_now_ms() / 1000, cl,
	    msg) != 0)
		return (-1);
	*status = 403;
	if (!auth_grants(cl, chat, len))
		*msg = "the token does not grant this chat";
	else if ((cl->rights & right) != right) {
		right &= ~cl->rights;	/* what is missing */
		*msg = right & AUTH_READ ? "the token has no read right" :
		    right & AUTH_WRITE ? "the token has no write right" :
		    "the token has no history right";
	}
	else
		return (0);
	auth_claims_clear(cl);
	return (-1);
}

static void
auth_expired(__unused evutil_socket_t fd, __unused short events, void *arg)
{
	struct conn	*c = arg;

	if (c->state != CONN_WS)
		return;
	if (util_now_ms() < (uint64_t)(c->auth_exp + AUTH_LEEWAY) * 1000) {
		/* Woken early (the clock moved): wait for the rest. */
		auth_arm(c);
		return;
	}
	log_debug("closing %s: token expired", c->user);
	ws_close(c, WS_CLOSE_UNAUTHORIZED, "token expired");
}

/* Arm the connection's expiry timer for exp + leeway. */
static void
auth_arm(struct conn *c)
{
	struct timeval	 tv;
	uint64_t	 due, now = util_now_ms();

	if (c->auth_timer == NULL &&
	    (c->auth_timer = evtimer_new(wk.base, auth_expired, c)) == NULL)
		fatalx("evtimer_new");
	due = (uint64_t)(c->auth_exp + AUTH_LEEWAY) * 1000;
	due = due > now ? due - now : 0;
	tv.tv_sec = due / 1000;
	tv.tv_usec = (due % 1000) * 1000;
	if (evtimer_add(c->auth_timer, &tv) != 0)
		fatalx("evtimer_add");
}

/*
 * A WebSocket join or resume to chat (len bytes), user_given if ?user=
 * came (in c->user).  With auth = none returns 0 and does nothing.  With a
 * good token, sets c->user to its sub and c's rights and expiry, and
 * returns 1.  Otherwise returns -1 with *status and *msg for the answer.
 */
int
auth_join(struct conn *c, const struct http_req *req, const char *chat,
    size_t len, int user_given, int *status, const char **msg)
{
	struct auth_claims	 cl;
	char			 v[32];
	size_t			 vlen;
	int			 need = AUTH_READ;

	c->auth_rights = AUTH_ALL;
	if (!auth.on)
		return (0);
	/* A ?since= join reads back history: it needs that right too. */
	if (http_query_get(req->query, "since", v, sizeof v, &vlen) != 0)
		need |= AUTH_HISTORY;
	if (auth_check_req(req, chat, len, need, &cl, status, msg) != 0)
		return (-1);
	if (user_given && strcmp(c->user, cl.sub) != 0) {
		auth_claims_clear(&cl);
		*status = 403;
		*msg = "user differs from the token's sub";
		return (-1);
	}
	snprintf(c->user, sizeof c->user, "%s", cl.sub);
	c->auth_rights = cl.rights;
	c->auth_exp = cl.exp;
	auth_claims_clear(&cl);
	auth_arm(c);
	return (1);
}

/*
 * An HTTP request on chat (len bytes) that needs right.  With auth = none
 * returns 0 (sub is then "").  Returns 0 with the token's sub in sub (size
 * bytes), or -1 with *status and *msg for the answer.
 */
int
auth_request(const struct http_req *req, const char *chat, size_t len,
    int right, char *sub, size_t size, int *status, const char **msg)
{
	struct auth_claims	 cl;

	if (size > 0)
		*sub = '\0';
	if (!auth.on)
		return (0);
	if (auth_check_req(req, chat, len, right, &cl, status, msg) != 0)
		return (-1);
	snprintf(sub, size, "%s", cl.sub);
	auth_claims_clear(&cl);
	return (0);
}

/*
 * May c do what needs right?  Returns 1; or 0 after an error frame
 * "forbidden" (naming the msg's id, or NULL); the connection stays.
 */
int
auth_allowed(struct conn *c, int right, const char *id)
{
	if ((c->auth_rights & right) == right)
		return (1);
	ws_send_error_id(c, "forbidden", right == AUTH_WRITE ?
	    "the token has no write right" : "the token has no history right",
	    id);
	return (0);
}

/*
 * {"type":"refresh","token":JWT}: a new token for the same sub that still
 * grants the chat extends the connection ({"type":"refreshed","exp":N});
 * else an error frame, and the old token's expiry stands.
 */
void
auth_refresh(struct conn *c, const char *token, size_t len)
{
	struct auth_claims	 cl;
	const char		*why, *chat;
	char			*s;

	if (!auth.on) {
		ws_send_error(c, "bad_type", "refresh needs auth = token");
		return;
	}
	if (auth_verify(&auth.keys, token, len, util_now_ms() / 1000, &cl,
	    &why) != 0) {
		ws_send_error(c, "unauthorized", why);
		return;
	}
	chat = c->room != NULL ? room_name(c->room) : "";
	if (strcmp(cl.sub, c->user) != 0)
		why = "the token is for another user";
	else if (!auth_grants(&cl, chat, strlen(chat)))
		why = "the token does not grant this chat";
	else if ((cl.rights & AUTH_READ) == 0)
		why = "the token has no read right";
	if (why != NULL) {
		auth_claims_clear(&cl);
		ws_send_error(c, "forbidden", why);
		return;
	}
	c->auth_rights = cl.rights;
	c->auth_exp = cl.exp;
	auth_claims_clear(&cl);
	auth_arm(c);
	s = proto_refreshed(c->auth_exp);
	ws_send_text(c, s, strlen(s));
	free(s);
}

/* The connection is being freed: its timer goes with it. */
void
auth_conn_free(struct conn *c)
{
	if (c->auth_timer != NULL) {
		event_free(c->auth_timer);
		c->auth_timer = NULL;
	}
}
