/* SPDX-License-Identifier: ISC */
/* racer: end-to-end encryption of message bodies. */
/*
 * With a chat secret (--e2e-secret-file or RACER_E2E_SECRET), racer seals
 * every body it sends and opens every body it receives, in the format
 * that the web client (racer.js) and any libsodium binding share:
 *
 *	"e2e1:" base64(nonce[24] || XChaCha20-Poly1305-IETF(text))
 *
 * with the standard, padded base64 alphabet and the chat id's bytes as
 * associated data.  The key is Argon2id13 (crypto_pwhash, opslimit 2,
 * memlimit 64 MiB) of the secret, salted with the first 16 bytes of the
 * unkeyed 32-byte BLAKE2b of the chat id.  racerd never sees the key.
 *
 * racer_chat.c calls racer_e2e_seal() for what it queues and
 * racer_e2e_open() for what it prints; the key lives in locked memory
 * here and nowhere else.
 */
#include <sys/types.h>

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "racerd.h"
#include "racer.h"

#define RACER_E2E_SECRET_MAX	4096

static struct {
	int		 on;
	unsigned char	*key;		/* sodium_malloc'd, 32 bytes */
	char		 chat[RD_CHAT_MAX + 1];
} e2e;

/*
 * Derive the chat key from secret (len bytes) for chat. Returns 0, or -1
 * with *cause set (an empty secret, out of memory).
 */
static int
racer_e2e_init(const char *secret, size_t len, const char *chat,
    char **cause)
{
	unsigned char	 hash[crypto_generichash_BYTES];

	if (len == 0) {
		*cause = xstrdup("the end-to-end secret is empty");
		return (-1);
	}
	e2e.key = sodium_malloc(crypto_aead_xchacha20poly1305_ietf_KEYBYTES);
	if (e2e.key == NULL) {
		*cause = xstrdup("out of memory for the end-to-end key");
		return (-1);
	}
	if (crypto_generichash(hash, sizeof hash, (const u_char *)chat,
	    strlen(chat), NULL, 0) != 0)
		goto fail;
	if (crypto_pwhash(e2e.key, crypto_aead_xchacha20poly1305_ietf_KEYBYTES,
	    secret, len, hash, crypto_pwhash_OPSLIMIT_INTERACTIVE,
	    crypto_pwhash_MEMLIMIT_INTERACTIVE,
	    crypto_pwhash_ALG_ARGON2ID13) != 0)
		goto fail;
	snprintf(e2e.chat, sizeof e2e.chat, "%s", chat);
	e2e.on = 1;
	return (0);

fail:
	sodium_free(e2e.key);
	e2e.key = NULL;
	*cause = xstrdup("cannot derive the end-to-end key (out of memory?)");
	return (-1);
}

/*
 * Read the secret from path (or the environment when path is NULL) and
 * derive the key. Returns 1 if end-to-end encryption is on, 0 if no
 * secret was given, or -1 with *cause set.
 */
int
racer_e2e_setup(const char *path, const char *chat, char **cause)
{
	FILE	*f;
	char	*buf, *env;
	size_t	 len;
	int	 rv;

	if (path == NULL) {
		if ((env = getenv("RACER_E2E_SECRET")) == NULL || *env == '\0')
			return (0);
		return (racer_e2e_init(env, strlen(env), chat, cause) == 0 ?
		    1 : -1);
	}
	if ((f = fopen(path, "r")) == NULL) {
		xasprintf(cause, "%s: %s", path, strerror(errno));
		return (-1);
	}
	buf = sodium_malloc(RACER_E2E_SECRET_MAX + 1);
	if (buf == NULL) {
		fclose(f);
		*cause = xstrdup("out of memory for the end-to-end secret");
		return (-1);
	}
	len = fread(buf, 1, RACER_E2E_SECRET_MAX + 1, f);
	if (ferror(f) || len > RACER_E2E_SECRET_MAX) {
		xasprintf(cause, "%s: %s", path, ferror(f) ? strerror(errno) :
		    "longer than 4096 bytes");
		fclose(f);
		sodium_free(buf);
		return (-1);
	}
	fclose(f);
	/* A file ends with a newline that is not part of the secret. */
	if (len > 0 && buf[len - 1] == '\n')
		len--;
	if (len > 0 && buf[len - 1] == '\r')
		len--;
	rv = racer_e2e_init(buf, len, chat, cause);
	sodium_free(buf);
	return (rv == 0 ? 1 : -1);
}

/* Returns 1 if bodies are sealed and opened, or 0. */
int
racer_e2e_on(void)
{
	return (e2e.on);
}

/*
 * Seal text (len bytes) for the chat. Returns the NUL-terminated body
 * ("e2e1:..."), which the caller frees.
 */
char *
racer_e2e_seal(const char *text, size_t len)
{
	unsigned char	*box;
	char		*out;
	size_t		 boxlen, b64len;
	unsigned long long clen;

	boxlen = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES + len +
	    crypto_aead_xchacha20poly1305_ietf_ABYTES;
	box = xmalloc(boxlen);
	randombytes_buf(box, crypto_aead_xchacha20poly1305_ietf_NPUBBYTES);
	if (crypto_aead_xchacha20poly1305_ietf_encrypt(
	    box + crypto_aead_xchacha20poly1305_ietf_NPUBBYTES, &clen,
	    (const u_char *)text, len, (const u_char *)e2e.chat,
	    strlen(e2e.chat), NULL, box, e2e.key) != 0)
		fatalx("crypto_aead_xchacha20poly1305_ietf_encrypt");
	b64len = sodium_base64_ENCODED_LEN(boxlen,
	    sodium_base64_VARIANT_ORIGINAL);
	out = xmalloc(5 + b64len);
	memcpy(out, "e2e1:", 5);
	sodium_bin2base64(out + 5, b64len, box, boxlen,
	    sodium_base64_VARIANT_ORIGINAL);
	free(box);
	return (out);
}

/*
 * Open a body (len bytes) sealed for the chat. Returns the text,
 * NUL-terminated, with its length in *outlen (the caller frees it), or
 * NULL if body is not an e2e1: body, is malformed, or does not open with
 * this chat's key.
 */
char *
racer_e2e_open(const char *body, size_t len, size_t *outlen)
{
	unsigned char	*box;
	char		*text;
	size_t		 boxlen;
	unsigned long long mlen;
	const size_t	 npub = crypto_aead_xchacha20poly1305_ietf_NPUBBYTES;

	if (len < 5 || memcmp(body, "e2e1:", 5) != 0)
		return (NULL);
	body += 5;
	len -= 5;
	box = xmalloc(len + 1);
	if (sodium_base642bin(box, len, body, len, NULL, &boxlen, NULL,
	    sodium_base64_VARIANT_ORIGINAL) != 0 ||
	    boxlen < npub + crypto_aead_xchacha20poly1305_ietf_ABYTES) {
		free(box);
		return (NULL);
	}
	text = xmalloc(boxlen + 1);
	if (crypto_aead_xchacha20poly1305_ietf_decrypt((u_char *)text, &mlen,
	    NULL, box + npub, boxlen - npub, (const u_char *)e2e.chat,
	    strlen(e2e.chat), box, e2e.key) != 0) {
		free(box);
		free(text);
		return (NULL);
	}
	free(box);
	text[mlen] = '\0';
	*outlen = mlen;
	return (text);
}
