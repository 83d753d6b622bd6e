/* SPDX-License-Identifier: ISC */
/* racerd: what sealing a message body at rest costs (seal.c). */
/*
 * Seals and opens one envelope of a 64-byte body many times and prints
 * microseconds per message for each; the cost racerd pays once per
 * message with storage-key-file, whatever the number of members.
 *   contrib/bench/sealbench [-n COUNT] [-b BODY_BYTES]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <sodium.h>

#include "racerd.h"
#include "proto.h"

int
main(int argc, char **argv)
{
	struct auth_keys ks;
	struct auth_key	 k;
	char		*head, *tail, *st, *env, *out, *body;
	size_t		 outlen, blen = 64;
	uint64_t	 t0, t1, t2;
	long		 i, n = 200000;
	int		 ch;

	while ((ch = getopt(argc, argv, "n:b:")) != -1) {
		if (ch == 'n')
			n = atol(optarg);
		else if (ch == 'b')
			blen = atol(optarg);
		else {
			fprintf(stderr, "usage: sealbench [-n count] "
			    "[-b body-bytes]\n");
			return (2);
		}
	}
	if (sodium_init() < 0 || n <= 0)
		return (1);
	memset(&k, 0, sizeof k);
	snprintf(k.kid, sizeof k.kid, "bench");
	k.alg = AUTH_STORAGE;
	k.len = 32;
	randombytes_buf(k.key, 32);
	ks.k = &k;
	ks.n = 1;
	body = xmalloc(blen + 1);
	memset(body, 'x', blen);
	body[blen] = '\0';
	head = proto_msg_head("bench");
	tail = proto_msg_tail("id-1", "alice", 1700000000000ULL, body, blen);
	st = seal_tail_with(&ks, "bench", tail);
	xasprintf(&env, "%s1%s", head, st);
	free(st);

	t0 = util_mono_ms();
	for (i = 0; i < n; i++)
		free(seal_tail_with(&ks, "bench", tail));
	t1 = util_mono_ms();
	for (i = 0; i < n; i++) {
		if (seal_open(&ks, "bench", 5, env, strlen(env), &out,
		    &outlen) != 1)
			return (1);
		free(out);
	}
	t2 = util_mono_ms();
	printf("body %zu bytes, %ld messages: seal %.2f us, open %.2f us, "
	    "both %.2f us per message\n", blen, n,
	    (double)(t1 - t0) * 1000 / n, (double)(t2 - t1) * 1000 / n,
	    (double)(t2 - t0) * 1000 / n);
	free(env);
	free(head);
	free(tail);
	free(body);
	return (0);
}
