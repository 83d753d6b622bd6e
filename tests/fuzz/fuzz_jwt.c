/* SPDX-License-Identifier: ISC */
/* racerd: libFuzzer harness for the JWT verifier (auth.c). */
/*
 * The first input byte picks the target:
 *
 *   even   the rest is a compact token as a client sends it, verified
 *          against a fixed HS256 key and a fixed Ed25519 public key
 *   odd    the rest is a claims object: the harness signs it with the
 *          HS256 key (header {"alg":"HS256","kid":"k1"}), so the claims
 *          parser is reached past the signature check
 *
 * A token that verifies must hold what auth_verify promises: a user id
 * of the user alphabet, an expiry, chats that are strings, rights within
 * the three known ones (an empty chats or rights list is a valid token
 * that grants nothing: every use of it is a 403); a refusal must say why.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <sodium.h>

#include "racerd.h"
#include "http.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

#define FUZZ_NOW	1700000000

static struct auth_keys	 fuzz_keys;
static struct auth_key	 fuzz_k[2];

static void
fuzz_setup(void)
{
	uint8_t	 pk[crypto_sign_PUBLICKEYBYTES], sk[crypto_sign_SECRETKEYBYTES];
	uint8_t	 seed[crypto_sign_SEEDBYTES];

	if (sodium_init() < 0)
		abort();
	memcpy(fuzz_k[0].kid, "k1", 3);
	fuzz_k[0].alg = AUTH_HS256;
	fuzz_k[0].len = 32;
	memset(fuzz_k[0].key, 'k', 32);
	memset(seed, 's', sizeof seed);
	crypto_sign_seed_keypair(pk, sk, seed);
	memcpy(fuzz_k[1].kid, "e1", 3);
	fuzz_k[1].alg = AUTH_EDDSA;
	fuzz_k[1].len = sizeof pk;
	memcpy(fuzz_k[1].key, pk, sizeof pk);
	fuzz_keys.k = fuzz_k;
	fuzz_keys.n = 2;
	fuzz_keys.nhmac = 1;
}

static char *
fuzz_b64url(const uint8_t *p, size_t len)
{
	size_t	 n = sodium_base64_ENCODED_LEN(len,
		    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	char	*s;

	if ((s = malloc(n)) == NULL)
		abort();
	sodium_bin2base64(s, n, p, len,
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	return (s);
}

/* header.claims.signature, HS256 with the fixed key. */
static char *
fuzz_sign(const uint8_t *claims, size_t len)
{
	static const char	 hdr[] = "{\"alg\":\"HS256\",\"kid\":\"k1\"}";
	crypto_auth_hmacsha256_state st;
	uint8_t			 mac[crypto_auth_hmacsha256_BYTES];
	char			*h, *c, *m, *tok;
	size_t			 n;

	h = fuzz_b64url((const uint8_t *)hdr, sizeof hdr - 1);
	c = fuzz_b64url(claims, len);
	n = strlen(h) + strlen(c) + 2 + 64;
	if ((tok = malloc(n)) == NULL)
		abort();
	strcpy(tok, h);
	strcat(tok, ".");
	strcat(tok, c);
	crypto_auth_hmacsha256_init(&st, fuzz_k[0].key, fuzz_k[0].len);
	crypto_auth_hmacsha256_update(&st, (const uint8_t *)tok, strlen(tok));
	crypto_auth_hmacsha256_final(&st, mac);
	m = fuzz_b64url(mac, sizeof mac);
	strcat(tok, ".");
	strcat(tok, m);
	free(h);
	free(c);
	free(m);
	return (tok);
}

static void
fuzz_check(const char *tok, size_t len)
{
	struct auth_claims	 cl;
	const char		*why = NULL;
	size_t			 i;

	memset(&cl, 0, sizeof cl);
	if (auth_verify(&fuzz_keys, tok, len, FUZZ_NOW, &cl, &why) != 0) {
		if (why == NULL || *why == '\0' || cl.nchats != 0)
			abort();
		return;
	}
	if (!http_valid_id(cl.sub, strlen(cl.sub), RD_USER_MAX) ||
	    cl.exp <= 0 ||
	    (cl.rights & ~(AUTH_READ|AUTH_WRITE|AUTH_HISTORY)) != 0)
		abort();
	for (i = 0; i < cl.nchats; i++)
		if (cl.chats[i] == NULL)
			abort();
	(void)auth_grants(&cl, "lobby", 5);
	auth_claims_clear(&cl);
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	char	*tok;

	if (fuzz_keys.n == 0)
		fuzz_setup();
	if (len < 1)
		return (0);
	if ((data[0] & 1) == 0) {
		if ((tok = malloc(len)) == NULL)
			abort();
		memcpy(tok, data + 1, len - 1);
		tok[len - 1] = '\0';
		fuzz_check(tok, len - 1);
	} else {
		tok = fuzz_sign(data + 1, len - 1);
		fuzz_check(tok, strlen(tok));
	}
	free(tok);
	return (0);
}
