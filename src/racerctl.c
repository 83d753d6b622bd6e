/* SPDX-License-Identifier: ISC */
/* racerctl: keys and tokens for racerd's auth = token. */
/*
 * Two commands, what an operator or a back end developer needs to try
 * racerd's tokens in a minute:
 *
 *   racerctl keygen hmac|ed25519|storage [--kid K] [--out FILE]
 *	prints a "KID BASE64KEY" line for auth-hmac-key-file or
 *	storage-key-file (a random 32-byte key) or auth-ed25519-key-file
 *	(a public key; the private key goes to FILE, created with mode
 *	0600);
 *   racerctl token --key-file F [--kid K] --sub USER --chats LIST
 *	[--rights LIST] [--ttl DURATION]
 *	prints a JWT signed with the HMAC key or the Ed25519 private key of
 *	line K (default: the first) of F.
 *
 * An Ed25519 private key file holds "KID BASE64" lines of libsodium's
 * 64-byte secret keys (seed, then public key); a 64-byte key whose second
 * half is the public key of its first is taken for one, any other for an
 * HMAC key.  All cryptography and base64 is libsodium's.
 */
#include <sys/types.h>
#include <sys/stat.h>

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>

#include "racerd.h"
#include "http.h"

#define RACERCTL_TTL	3600		/* seconds, --ttl by default */
#define RACERCTL_EXIT_USAGE 2

static __dead void
racerctl_usage(void)
{
	fprintf(stderr,
	    "usage: racerctl keygen hmac|ed25519|storage [--kid kid] "
	    "[--out file]\n"
	    "       racerctl token --key-file file [--kid kid] --sub user "
	    "--chats list\n"
	    "                [--rights list] [--ttl duration]\n");
	exit(RACERCTL_EXIT_USAGE);
}

static __dead void __attribute__((__format__(__printf__, 2, 3)))
racerctl_exit(int status, const char *fmt, ...)
{
	va_list	 ap;

	fputs("racerctl: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(status);
}

/* base64 of len bytes in the given libsodium variant; the caller frees. */
static char *
racerctl_b64(const void *p, size_t len, int variant)
{
	size_t	 size = sodium_base64_encoded_len(len, variant);
	char	*s = xmalloc(size);

	sodium_bin2base64(s, size, p, len, variant);
	return (s);
}

static void
racerctl_check_kid(const char *kid)
{
	if (!http_valid_id(kid, strlen(kid), AUTH_KID_MAX))
		racerctl_exit(RACERCTL_EXIT_USAGE, "bad key id \"%s\": 1 to "
		    "64 letters, digits or ._:-", kid);
}

/* keygen: print a key file line; for ed25519 write the private key. */
static int
racerctl_keygen(const char *kind, const char *kid, const char *out)
{
	uint8_t		 key[32], pk[crypto_sign_PUBLICKEYBYTES];
	uint8_t		 sk[crypto_sign_SECRETKEYBYTES];
	char		 rnd[9], *b64, *path = NULL;
	uint8_t		 r[4];
	FILE		*f;
	int		 fd;

	if (kid == NULL) {
		randombytes_buf(r, sizeof r);
		sodium_bin2hex(rnd, sizeof rnd, r, sizeof r);
		kid = rnd;
	}
	racerctl_check_kid(kid);
	/* A storage key is 32 random bytes, like an HMAC key. */
	if (strcmp(kind, "hmac") == 0 || strcmp(kind, "storage") == 0) {
		if (out != NULL)
			racerctl_exit(RACERCTL_EXIT_USAGE, "--out is for "
			    "ed25519 keys");
		randombytes_buf(key, sizeof key);
		b64 = racerctl_b64(key, sizeof key,
		    sodium_base64_VARIANT_ORIGINAL);
		printf("%s %s\n", kid, b64);
		sodium_memzero(key, sizeof key);
		sodium_memzero(b64, strlen(b64));
		free(b64);
		return (fflush(stdout) == 0 ? 0 : 1);
	}
	if (strcmp(kind, "ed25519") != 0)
		racerctl_usage();
	if (out == NULL)
		xasprintf(&path, "ed25519-%s.key", kid);
	else
		path = xstrdup(out);
	if (crypto_sign_keypair(pk, sk) != 0)
		racerctl_exit(1, "crypto_sign_keypair failed");
	fd = open(path, O_WRONLY|O_CREAT|O_EXCL|O_CLOEXEC, 0600);
	if (fd == -1)
		racerctl_exit(1, "%s: %s", path, strerror(errno));
	if ((f = fdopen(fd, "w")) == NULL)
		racerctl_exit(1, "%s: %s", path, strerror(errno));
	b64 = racerctl_b64(sk, sizeof sk, sodium_base64_VARIANT_ORIGINAL);
	fprintf(f, "# Ed25519 private key for racerctl token; keep it "
	    "secret\n%s %s\n", kid, b64);
	sodium_memzero(sk, sizeof sk);
	sodium_memzero(b64, strlen(b64));
	free(b64);
	if (fclose(f) != 0)
		racerctl_exit(1, "%s: %s", path, strerror(errno));
	b64 = racerctl_b64(pk, sizeof pk, sodium_base64_VARIANT_ORIGINAL);
	printf("%s %s\n", kid, b64);
	free(b64);
	fprintf(stderr, "racerctl: private key written to %s\n", path);
	free(path);
	return (fflush(stdout) == 0 ? 0 : 1);
}

/*
 * Read the key of line kid (NULL: the first) of path into key; its id
 * into kidbuf.  Returns the number of bytes of the key.
 */
static size_t
racerctl_read_key(const char *path, const char *kid, uint8_t *key,
    size_t max, char *kidbuf, size_t kidsize)
{
	FILE	*f;
	char	*line = NULL, *k, *b64;
	size_t	 size = 0, len = 0;
	int	 found = 0, n = 0;

	if ((f = fopen(path, "re")) == NULL)
		racerctl_exit(1, "%s: %s", path, strerror(errno));
	while (!found && getline(&line, &size, f) != -1) {
		n++;
		line[strcspn(line, "\r\n")] = '\0';
		k = line + strspn(line, " \t");
		if (*k == '\0' || *k == '#')
			continue;
		b64 = k + strcspn(k, " \t");
		if (*b64 == '\0')
			racerctl_exit(1, "%s:%d: expected \"KID BASE64KEY\"",
			    path, n);
		*b64++ = '\0';
		b64 += strspn(b64, " \t");
		b64[strcspn(b64, " \t")] = '\0';
		if (kid != NULL && strcmp(k, kid) != 0)
			continue;
		if (sodium_base642bin(key, max, b64, strlen(b64), NULL, &len,
		    NULL, sodium_base64_VARIANT_ORIGINAL) != 0 &&
		    sodium_base642bin(key, max, b64, strlen(b64), NULL, &len,
		    NULL, sodium_base64_VARIANT_URLSAFE_NO_PADDING) != 0)
			racerctl_exit(1, "%s:%d: the key is not base64", path,
			    n);
		snprintf(kidbuf, kidsize, "%s", k);
		found = 1;
	}
	if (line != NULL) {
		sodium_memzero(line, size);
		free(line);
	}
	fclose(f);
	if (!found)
		racerctl_exit(1, "%s: no key%s%s", path, kid != NULL ?
		    " with id " : "", kid != NULL ? kid : "");
	return (len);
}

/* Returns 1 if the 64 bytes at sk are an Ed25519 secret key, else 0. */
static int
racerctl_is_ed25519(const uint8_t *sk, size_t len)
{
	uint8_t	 pk[crypto_sign_PUBLICKEYBYTES];
	uint8_t	 sk2[crypto_sign_SECRETKEYBYTES];
	int	 yes;

	if (len != crypto_sign_SECRETKEYBYTES)
		return (0);
	if (crypto_sign_seed_keypair(pk, sk2, sk) != 0)
		return (0);
	yes = sodium_memcmp(pk, sk + crypto_sign_SEEDBYTES, sizeof pk) == 0;
	sodium_memzero(sk2, sizeof sk2);
	return (yes);
}

/* A duration: N, Ns, Nm, Nh or Nd, possibly negative (for tests). */
static long long
racerctl_duration(const char *s)
{
	long long	 n, unit = 1;
	char		*end;

	errno = 0;
	n = strtoll(s, &end, 10);
	if (end == s || errno != 0)
		goto bad;
	switch (*end) {
	case '\0':
	case 's':
		break;
	case 'm':
		unit = 60;
		break;
	case 'h':
		unit = 3600;
		break;
	case 'd':
		unit = 86400;
		break;
	default:
		goto bad;
	}
	if (*end != '\0' && end[1] != '\0')
		goto bad;
	if (n > 3650LL * 86400 / unit || n < -3650LL * 86400 / unit)
		goto bad;
	return (n * unit);
bad:
	racerctl_exit(RACERCTL_EXIT_USAGE, "bad --ttl \"%s\": N, Ns, Nm, Nh "
	    "or Nd", s);
}

/* A comma-separated list as a JSON array of its non-empty words. */
static json_t *
racerctl_list(const char *s, const char *what, int chats)
{
	json_t		*a = json_array();
	const char	*p, *end;
	char		*w;
	size_t		 n;

	for (p = s; *p != '\0'; p = end) {
		p += strspn(p, ", ");
		if (*p == '\0')
			break;
		end = p + strcspn(p, ", ");
		n = end - p;
		w = xstrndup(p, n);
		if (chats && !(n > 0 && w[n - 1] == '*' && (n == 1 ||
		    strspn(w, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrst"
		    "uvwxyz0123456789._:-") == n - 1)) &&
		    !http_valid_id(w, n, RD_CHAT_MAX))
			racerctl_exit(RACERCTL_EXIT_USAGE, "bad chat \"%s\" in "
			    "--chats: a chat id, or a prefix ending in *", w);
		if (!chats && strcmp(w, "read") != 0 &&
		    strcmp(w, "write") != 0 && strcmp(w, "history") != 0)
			racerctl_exit(RACERCTL_EXIT_USAGE, "bad right \"%s\" in "
			    "%s: read, write or history", w, what);
		json_array_append_new(a, json_string(w));
		free(w);
	}
	return (a);
}

static char *
racerctl_b64json(json_t *j)
{
	char	*s, *b64;

	if ((s = json_dumps(j, JSON_COMPACT|JSON_PRESERVE_ORDER)) == NULL)
		racerctl_exit(1, "json_dumps failed");
	b64 = racerctl_b64(s, strlen(s),
	    sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	free(s);
	return (b64);
}

/* token: print a signed JWT. */
static int
racerctl_token(const char *keyfile, const char *kid, const char *sub,
    const char *chats, const char *rights, long long ttl)
{
	crypto_auth_hmacsha256_state	 st;
	uint8_t				 key[AUTH_KEY_MAX];
	uint8_t				 sig[crypto_sign_BYTES];
	char				 kidbuf[AUTH_KID_MAX + 1];
	char				*h, *p, *msg, *s;
	size_t				 len, siglen;
	json_t				*hdr, *cl;
	long long			 now = time(NULL);
	int				 ed;

	if (keyfile == NULL || sub == NULL || chats == NULL)
		racerctl_usage();
	if (!http_valid_id(sub, strlen(sub), RD_USER_MAX))
		racerctl_exit(RACERCTL_EXIT_USAGE, "bad --sub \"%s\": 1 to 64 "
		    "letters, digits or ._:- (not . or ..)", sub);
	len = racerctl_read_key(keyfile, kid, key, sizeof key, kidbuf,
	    sizeof kidbuf);
	ed = racerctl_is_ed25519(key, len);
	if (!ed && len < AUTH_HMAC_MIN)
		racerctl_exit(1, "%s: the key of %s is shorter than 32 bytes",
		    keyfile, kidbuf);
	hdr = json_pack("{s:s, s:s, s:s}", "alg", ed ? "EdDSA" : "HS256",
	    "typ", "JWT", "kid", kidbuf);
	cl = json_pack("{s:s, s:o}", "sub", sub, "chats",
	    racerctl_list(chats, "--chats", 1));
	if (rights != NULL)
		json_object_set_new(cl, "rights",
		    racerctl_list(rights, "--rights", 0));
	json_object_set_new(cl, "iat", json_integer(now));
	json_object_set_new(cl, "exp", json_integer(now + ttl));
	h = racerctl_b64json(hdr);
	p = racerctl_b64json(cl);
	json_decref(hdr);
	json_decref(cl);
	xasprintf(&msg, "%s.%s", h, p);
	if (ed) {
		if (crypto_sign_detached(sig, NULL, (const uint8_t *)msg,
		    strlen(msg), key) != 0)
			racerctl_exit(1, "crypto_sign_detached failed");
		siglen = crypto_sign_BYTES;
	} else {
		if (crypto_auth_hmacsha256_init(&st, key, len) != 0 ||
		    crypto_auth_hmacsha256_update(&st, (const uint8_t *)msg,
		    strlen(msg)) != 0 ||
		    crypto_auth_hmacsha256_final(&st, sig) != 0)
			racerctl_exit(1, "HMAC-SHA-256 failed");
		siglen = crypto_auth_hmacsha256_BYTES;
		sodium_memzero(&st, sizeof st);
	}
	sodium_memzero(key, sizeof key);
	s = racerctl_b64(sig, siglen, sodium_base64_VARIANT_URLSAFE_NO_PADDING);
	printf("%s.%s\n", msg, s);
	free(h);
	free(p);
	free(msg);
	free(s);
	return (fflush(stdout) == 0 ? 0 : 1);
}

int
main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "chats",	required_argument,	NULL, 'c' },
		{ "help",	no_argument,		NULL, 'h' },
		{ "key-file",	required_argument,	NULL, 'f' },
		{ "kid",	required_argument,	NULL, 'k' },
		{ "out",	required_argument,	NULL, 'o' },
		{ "rights",	required_argument,	NULL, 'r' },
		{ "sub",	required_argument,	NULL, 's' },
		{ "ttl",	required_argument,	NULL, 't' },
		{ NULL,		0,			NULL, 0 }
	};
	const char	*cmd, *kid = NULL, *out = NULL, *keyfile = NULL;
	const char	*sub = NULL, *chats = NULL, *rights = NULL;
	long long	 ttl = RACERCTL_TTL;
	int		 ch;

	if (argc < 2)
		racerctl_usage();
	cmd = argv[1];
	if (strcmp(cmd, "-h") == 0 || strcmp(cmd, "--help") == 0)
		racerctl_usage();
	argc--;
	argv++;
	while ((ch = getopt_long(argc, argv, "c:f:hk:o:r:s:t:", longopts,
	    NULL)) != -1) {
		switch (ch) {
		case 'c':
			chats = optarg;
			break;
		case 'f':
			keyfile = optarg;
			break;
		case 'k':
			kid = optarg;
			break;
		case 'o':
			out = optarg;
			break;
		case 'r':
			rights = optarg;
			break;
		case 's':
			sub = optarg;
			break;
		case 't':
			ttl = racerctl_duration(optarg);
			break;
		default:
			racerctl_usage();
		}
	}
	argc -= optind;
	argv += optind;
	if (sodium_init() == -1)
		racerctl_exit(1, "cannot initialise libsodium");
	if (strcmp(cmd, "keygen") == 0) {
		if (argc != 1 || keyfile != NULL || sub != NULL ||
		    chats != NULL || rights != NULL)
			racerctl_usage();
		return (racerctl_keygen(argv[0], kid, out));
	}
	if (strcmp(cmd, "token") == 0) {
		if (argc != 0 || out != NULL)
			racerctl_usage();
		return (racerctl_token(keyfile, kid, sub, chats, rights, ttl));
	}
	racerctl_usage();
}
