/* SPDX-License-Identifier: ISC */
/* racerd: message bodies sealed at rest (prefix seal_). */
/*
 * With storage-key-file, the body of every message is sealed in the
 * worker before it reaches the store, and opened in the worker that
 * delivers it or serves it from history; the store (history, pub/sub, its
 * AOF) never holds a plaintext body.  bus.c calls this module on the way
 * in (seal_tail) and out (seal_open_env); nothing else sees sealed bodies.
 *
 * An envelope ends with its body, "...,"body":"TEXT"}" (proto.c).  Sealed,
 * the body's JSON string, quotes included, is the plaintext of
 * XChaCha20-Poly1305-IETF (libsodium) with the chat id as associated data,
 * and the envelope stored is "...,"body":"\001KID:B64"}" where KID names
 * the key and B64 is base64url of nonce (24 bytes) and ciphertext.  The
 * \001 byte is one the JSON encoder never writes inside a string, so a
 * sealed body cannot be confused with anything a client sent.  Opening
 * puts the JSON string back byte for byte.  A body whose key is gone, or
 * that does not open, is delivered as "body":null with "sealed" saying
 * why, never as garbage.
 *
 * The key file is read like the auth key files (auth_load_file): lines
 * "KID BASE64KEY" of 32-byte keys, the first seals, all open.
 */
#include <sys/types.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "racerd.h"
#include "http.h"

#define SEAL_FIELD	",\"body\":\""
#define SEAL_MARK	'\001'
#define SEAL_NONCE	crypto_aead_xchacha20poly1305_ietf_NPUBBYTES
#define SEAL_TAG	crypto_aead_xchacha20poly1305_ietf_ABYTES

static struct auth_keys	 seal_keys;

/* Where the body's JSON string starts in an envelope or tail, or NULL. */
static const char *
seal_body(const char *s, size_t len)
{
	const char	*p;

	p = memmem(s, len, SEAL_FIELD, sizeof SEAL_FIELD - 1);
	if (p == NULL)
		return (NULL);
	return (p + sizeof SEAL_FIELD - 2);	/* at the opening quote */
}

/*
 * The tail of an envelope (proto_msg_tail) with its body sealed by the
 * first key of ks for chat.  Returns a string the caller frees, or NULL if
 * the tail has no body.
 */
char *
seal_tail_with(const struct auth_keys *ks, const char *chat,
    const char *tail)
{
	const struct auth_key	*k = &ks->k[0];
	const char		*body, *end;
	uint8_t			*box;
	char			*b64, *out;
	size_t			 blen, boxlen, b64len, tlen = strlen(tail);
	unsigned long long	 clen;

	if ((body = seal_body(tail, tlen)) == NULL ||
	    (end = strrchr(tail, '}')) == NULL || end <= body)
		return (NULL);
	blen = end - body;			/* "TEXT", quotes and all */
	boxlen = SEAL_NONCE + blen + SEAL_TAG;
	box = xmalloc(boxlen);
	randombytes_buf(box, SEAL_NONCE);
	if (crypto_aead_xchacha20poly1305_ietf_encrypt(box + SEAL_NONCE,
	    &clen, (const uint8_t *)body, blen, (const uint8_t *)chat,
	    strlen(chat), NULL, box, k->key) != 0)
		fatalx("seal: encryption failed");
	b64len = sodium_base64_ENCODED_LEN(boxlen,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	b64 = xmalloc(b64len);
	sodium_bin2base64(b64, b64len, box, boxlen,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	xasprintf(&out, "%.*s\"%c%s:%s\"}", (int)(body - tail), tail,
	    SEAL_MARK, k->kid, b64);
	free(b64);
	free(box);
	return (out);
}

/* The same with the keys in force; seal_enabled() must be 1. */
char *
seal_tail(const char *chat, const char *tail)
{
	return (seal_tail_with(&seal_keys, chat, tail));
}

static const struct auth_key *
seal_find(const struct auth_keys *ks, const char *kid, size_t len)
{
	size_t	 i;

	for (i = 0; i < ks->n; i++)
		if (strlen(ks->k[i].kid) == len &&
		    memcmp(ks->k[i].kid, kid, len) == 0)
			return (&ks->k[i]);
	return (NULL);
}

/*
 * Open the sealed body of an envelope of chat (chat_len bytes).  Returns
 * 0 if it is not sealed (*out NULL: use it as it is); 1 with the plain
 * envelope in *out; or -1 with an envelope saying why in *out ("body":
 * null, "sealed": "unknown key KID" or "cannot be opened").  The caller
 * frees *out.
 */
int
seal_open(const struct auth_keys *ks, const char *chat, size_t chat_len,
    const char *env, size_t len, char **out, size_t *outlen)
{
	const struct auth_key	*k = NULL;
	const char		*body, *kid, *colon, *end;
	uint8_t			*box = NULL, *plain = NULL;
	char			*why = NULL;
	size_t			 boxlen, kidlen;
	unsigned long long	 plen;
	int			 rc = -1;

	*out = NULL;
	if ((body = seal_body(env, len)) == NULL ||
	    (size_t)(body + 1 - env) >= len || body[1] != SEAL_MARK)
		return (0);
	kid = body + 2;
	end = env + len;
	if ((colon = memchr(kid, ':', end - kid)) == NULL ||
	    end - colon < 3 || end[-1] != '}' || end[-2] != '"')
		goto fail;
	kidlen = colon - kid;
	if ((k = seal_find(ks, kid, kidlen)) == NULL) {
		if (http_valid_id(kid, kidlen, AUTH_KID_MAX))
			xasprintf(&why, "unknown key %.*s", (int)kidlen, kid);
		goto fail;
	}
	box = xmalloc(end - colon);
	if (sodium_base642bin(box, end - colon, colon + 1, end - 2 -
	    (colon + 1), NULL, &boxlen, NULL,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0 ||
	    boxlen < SEAL_NONCE + SEAL_TAG)
		goto fail;
	plain = xmalloc(boxlen);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt(plain, &plen, NULL,
	    box + SEAL_NONCE, boxlen - SEAL_NONCE, (const uint8_t *)chat,
	    chat_len, box, k->key) != 0)
		goto fail;
	*outlen = xasprintf(out, "%.*s%.*s}", (int)(body - env), env,
	    (int)plen, plain);
	rc = 1;
	goto done;
fail:
	*outlen = xasprintf(out, "%.*snull,\"sealed\":\"%s\"}",
	    (int)(body - env), env, why != NULL ? why : "cannot be opened");
done:
	free(why);
	free(box);
	free(plain);
	return (rc);
}

/* seal_open with the keys in force. */
int
seal_open_env(const char *chat, size_t chat_len, const char *env,
    size_t len, char **out, size_t *outlen)
{
	return (seal_open(&seal_keys, chat, chat_len, env, len, out,
	    outlen));
}

/* Returns 1 if bodies are sealed (storage-key-file is set), else 0. */
int
seal_enabled(void)
{
	return (seal_keys.n > 0);
}

/*
 * Load storage-key-file of cfg and put its keys in force.  Returns 0 with
 * warnings in *warn (or NULL), or -1 with a message in *cause and the keys
 * in force unchanged.  The caller frees both.
 */
int
seal_configure(const struct config *cfg, char **warn, char **cause)
{
	struct auth_keys	 ks;

	memset(&ks, 0, sizeof ks);
	if (*cfg->storage_key_file != '\0' && auth_load_file(&ks,
	    AUTH_STORAGE, cfg->storage_key_file, warn, cause) != 0) {
		auth_keys_clear(&ks);
		return (-1);
	}
	auth_keys_clear(&seal_keys);
	seal_keys = ks;
	return (0);
}
