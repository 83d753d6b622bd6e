/* SPDX-License-Identifier: ISC */
/* racerd: unit tests for auth.c. */
/*
 * The verifier is fed tokens it did not make: tests/auth_tokens.py signs
 * them with Python's hmac and hashlib (HS256) and python3-nacl (EdDSA),
 * and racerctl signs more at test time.  Every token has a row in a table
 * with the key set to check it against and the result expected: a reason
 * (the exact static string auth_verify returns) or success with its sub
 * and rights.  Key files, grants and racerctl's keygen are tables too.
 */
#include <sys/stat.h>
#include <sys/wait.h>

#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>

#include "racerd.h"
#include "testutil.h"

Suite	*auth_suite(void);

#define TOKENS_MAX	128

enum keyset {
	KS_FULL,	/* hmac k1 k2, ed25519 e1 */
	KS_ONE,		/* hmac k1, ed25519 e1 */
	KS_EDONLY,	/* ed25519 e1 */
	KS_N
};

/* What Python printed. */
static struct {
	char		 name[64];
	char		*token;
} toks[TOKENS_MAX];
static size_t	 ntoks;
static char	 hmac_line[2][256], ed_line[256], ed_secret_line[256];
static char	 dir[64];
static char	*dirp;
static struct auth_keys keysets[KS_N];
static int64_t	 now;

/* A file in the scratch directory; the caller frees the path. */
static char *
scratch(const char *name, const char *content, mode_t mode)
{
	char	*path;
	FILE	*f;

	if (asprintf(&path, "%s/%s", dirp, name) == -1)
		abort();
	unlink(path);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(content, f);
	ck_assert_int_eq(fclose(f), 0);
	ck_assert_int_eq(chmod(path, mode), 0);
	return (path);
}

static void
load_keyset(enum keyset ks, const char *hmac, const char *ed)
{
	char	*hp = NULL, *ep = NULL, *warn, *cause = NULL;

	if (hmac != NULL)
		hp = scratch("hmac.keys", hmac, 0600);
	if (ed != NULL)
		ep = scratch("ed25519.keys", ed, 0644);
	if (auth_keys_load(&keysets[ks], hp, ep, &warn, &cause) != 0)
		ck_abort_msg("keyset %d: %s", (int)ks, cause);
	ck_assert_ptr_null(warn);
	free(hp);
	free(ep);
}

/* Run tests/auth_tokens.py and load the key sets it names. */
static void
setup(void)
{
	const char	*src = getenv("top_srcdir");
	char		*cmd, line[16384], name[64], *tok;
	char		 both[600], one[300];
	FILE		*p;

	ck_assert_int_eq(sodium_init() == -1, 0);
	snprintf(dir, sizeof dir, "%s/check_auth.XXXXXX", "/tmp");
	dirp = mkdtemp(dir);
	ck_assert_ptr_nonnull(dirp);
	now = time(NULL);
	if (asprintf(&cmd, "/usr/bin/python3 %s/tests/auth_tokens.py %lld",
	    src != NULL ? src : ".", (long long)now) == -1)
		abort();
	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	while (fgets(line, sizeof line, p) != NULL) {
		line[strcspn(line, "\n")] = '\0';
		if (strncmp(line, "hmac k1 ", 8) == 0)
			snprintf(hmac_line[0], sizeof hmac_line[0], "%.200s",
			    line + 5);
		else if (strncmp(line, "hmac k2 ", 8) == 0)
			snprintf(hmac_line[1], sizeof hmac_line[1], "%.200s",
			    line + 5);
		else if (strncmp(line, "ed25519 ", 8) == 0)
			snprintf(ed_line, sizeof ed_line, "%.200s", line + 8);
		else if (strncmp(line, "ed25519-secret ", 15) == 0)
			snprintf(ed_secret_line, sizeof ed_secret_line, "%.200s",
			    line + 15);
		else if (sscanf(line, "token %63s", name) == 1) {
			ck_assert_uint_lt(ntoks, TOKENS_MAX);
			tok = strchr(line + 6, ' ');
			ck_assert_ptr_nonnull(tok);
			snprintf(toks[ntoks].name, sizeof toks[ntoks].name,
			    "%s", name);
			toks[ntoks++].token = strdup(tok + 1);
		}
	}
	ck_assert_int_eq(pclose(p), 0);
	free(cmd);
	ck_assert_msg(ntoks > 40 && ed_line[0] != '\0',
	    "tests/auth_tokens.py printed no tokens (python3-nacl missing?)");
	snprintf(both, sizeof both, "# two keys\n%s\n\n%s\n", hmac_line[0],
	    hmac_line[1]);
	snprintf(one, sizeof one, "%s\n", hmac_line[0]);
	load_keyset(KS_FULL, both, ed_line);
	load_keyset(KS_ONE, one, ed_line);
	load_keyset(KS_EDONLY, NULL, ed_line);
}

static void
teardown(void)
{
	char	*cmd;
	size_t	 i;

	for (i = 0; i < KS_N; i++)
		auth_keys_clear(&keysets[i]);
	for (i = 0; i < ntoks; i++)
		free(toks[i].token);
	ntoks = 0;
	if (asprintf(&cmd, "rm -rf %s", dirp) != -1) {
		if (system(cmd) != 0) {
			/* Only a scratch directory left behind. */
		}
		free(cmd);
	}
}

static const char *
token(const char *name)
{
	size_t	 i;

	for (i = 0; i < ntoks; i++) {
		if (strcmp(toks[i].name, name) == 0)
			return (toks[i].token);
	}
	ck_abort_msg("no token %s from auth_tokens.py", name);
	return (NULL);
}

/* Each token of auth_tokens.py, a key set, and what must come of it. */
static const struct {
	const char	*name;
	enum keyset	 ks;
	const char	*why;		/* NULL: valid */
	const char	*sub;		/* if valid */
	int		 rights;	/* if valid */
} cases[] = {
	{ "hs_ok", KS_FULL, NULL, "alice", AUTH_ALL },
	{ "hs_ok", KS_ONE, NULL, "alice", AUTH_ALL },
	{ "hs_ok", KS_EDONLY, "unknown kid", NULL, 0 },
	{ "hs_k2", KS_FULL, NULL, "alice", AUTH_ALL },
	{ "hs_k2", KS_ONE, "unknown kid", NULL, 0 },
	{ "hs_nokid", KS_ONE, NULL, "alice", AUTH_ALL },
	{ "hs_nokid", KS_FULL, "no kid, and there is more than one key",
	  NULL, 0 },
	{ "ed_ok", KS_FULL, NULL, "bob", AUTH_ALL },
	{ "ed_ok", KS_EDONLY, NULL, "bob", AUTH_ALL },
	{ "ed_nokid", KS_FULL, NULL, "alice", AUTH_ALL },
	{ "alg_none", KS_FULL, "alg none is refused", NULL, 0 },
	{ "alg_none_nosig", KS_ONE, "alg none is refused", NULL, 0 },
	{ "alg_hs512", KS_FULL, "alg is neither HS256 nor EdDSA", NULL, 0 },
	{ "alg_missing", KS_FULL, "the header has no alg", NULL, 0 },
	{ "confusion_kid", KS_FULL, "alg does not match the key's kind",
	  NULL, 0 },
	{ "confusion_nokid", KS_EDONLY, "no key for this alg", NULL, 0 },
	{ "confusion_nokid", KS_ONE, "bad signature", NULL, 0 },
	{ "ed_with_hmac_kid", KS_FULL, "alg does not match the key's kind",
	  NULL, 0 },
	{ "bad_sig", KS_FULL, "bad signature", NULL, 0 },
	{ "tampered", KS_FULL, "bad signature", NULL, 0 },
	{ "ed_bad_sig", KS_FULL, "bad signature", NULL, 0 },
	{ "truncated", KS_FULL, "malformed signature", NULL, 0 },
	{ "two_parts", KS_FULL, "malformed token (not three parts)", NULL, 0 },
	{ "extra_dots", KS_FULL, "malformed token (not three parts)", NULL,
	  0 },
	{ "empty_part", KS_FULL, "malformed token header", NULL, 0 },
	{ "bad_b64", KS_FULL, "malformed token header", NULL, 0 },
	{ "std_b64", KS_FULL, "malformed token header", NULL, 0 },
	{ "pad_header", KS_FULL, "malformed token header", NULL, 0 },
	{ "pad_claims", KS_FULL, "malformed token claims", NULL, 0 },
	{ "hdr_not_object", KS_FULL, "malformed token header", NULL, 0 },
	{ "claims_not_object", KS_FULL, "malformed token claims", NULL, 0 },
	{ "claims_not_json", KS_FULL, "malformed token claims", NULL, 0 },
	{ "hdr_dup_alg", KS_FULL, "malformed token header", NULL, 0 },
	{ "crit", KS_FULL, "the header has crit", NULL, 0 },
	{ "no_sub", KS_FULL, "no sub claim", NULL, 0 },
	{ "no_exp", KS_FULL, "no exp claim", NULL, 0 },
	{ "no_chats", KS_FULL, "no chats claim", NULL, 0 },
	{ "exp_string", KS_FULL, "exp, nbf or iat is not a date", NULL, 0 },
	{ "exp_negative", KS_FULL, "exp, nbf or iat is not a date", NULL, 0 },
	{ "expired", KS_FULL, "token expired", NULL, 0 },
	{ "exp_in_leeway", KS_FULL, NULL, "alice", AUTH_ALL },
	{ "exp_real", KS_FULL, NULL, "alice", AUTH_ALL },
	{ "nbf_future", KS_FULL, "token not valid yet (nbf)", NULL, 0 },
	{ "nbf_in_leeway", KS_FULL, NULL, "alice", AUTH_ALL },
	{ "iat_future", KS_FULL, "token issued in the future (iat)", NULL,
	  0 },
	{ "iat_past", KS_FULL, NULL, "alice", AUTH_ALL },
	{ "sub_space", KS_FULL, "sub is not a user id", NULL, 0 },
	{ "sub_long", KS_FULL, "sub is not a user id", NULL, 0 },
	{ "sub_dotdot", KS_FULL, "sub is not a user id", NULL, 0 },
	{ "sub_number", KS_FULL, "no sub claim", NULL, 0 },
	{ "unknown_kid", KS_FULL, "unknown kid", NULL, 0 },
	{ "kid_number", KS_FULL, "unknown kid", NULL, 0 },
	{ "big", KS_FULL, "token too long", NULL, 0 },
	{ "rights_read", KS_FULL, NULL, "alice", AUTH_READ },
	{ "rights_rh", KS_FULL, NULL, "alice", AUTH_READ|AUTH_HISTORY },
	{ "rights_empty", KS_FULL, NULL, "alice", 0 },
	{ "rights_bad", KS_FULL,
	  "rights holds other than read, write, history", NULL, 0 },
	{ "rights_string", KS_FULL, "rights is not an array", NULL, 0 },
	{ "chats_string", KS_FULL, "chats is not an array", NULL, 0 },
	{ "chats_bad", KS_FULL, "chats holds an invalid chat id or prefix",
	  NULL, 0 },
	{ "chats_star_inside", KS_FULL,
	  "chats holds an invalid chat id or prefix", NULL, 0 },
	{ "chats_number", KS_FULL, "chats holds a non-string", NULL, 0 },
};

/* Check one token against one expectation. */
static void
expect(const char *label, const char *tok, size_t len,
    const struct auth_keys *ks, const char *why, const char *sub, int rights)
{
	struct auth_claims	 cl;
	const char		*got;
	int			 rc;

	rc = auth_verify(ks, tok, len, now, &cl, &got);
	if (why == NULL) {
		ck_assert_msg(rc == 0, "%s: refused: %s", label, got);
		ck_assert_str_eq(cl.sub, sub);
		ck_assert_int_eq(cl.rights, rights);
		ck_assert_int_gt(cl.exp, 0);
	} else {
		ck_assert_msg(rc == -1, "%s: accepted, want \"%s\"", label,
		    why);
		ck_assert_msg(strcmp(got, why) == 0, "%s: \"%s\", want \"%s\"",
		    label, got, why);
		ck_assert_str_eq(cl.sub, "");
		ck_assert_ptr_null(cl.chats);
	}
	auth_claims_clear(&cl);
}

START_TEST(test_verify_table)
{
	const char	*tok = token(cases[_i].name);
	char		 label[96];

	snprintf(label, sizeof label, "%s (keyset %d)", cases[_i].name,
	    (int)cases[_i].ks);
	expect(label, tok, strlen(tok), &keysets[cases[_i].ks], cases[_i].why,
	    cases[_i].sub, cases[_i].rights);
}
END_TEST

/* Every token Python made has a row, so none goes unchecked. */
START_TEST(test_verify_every_token)
{
	size_t	 i, j;

	for (i = 0; i < ntoks; i++) {
		for (j = 0; j < nitems(cases); j++) {
			if (strcmp(cases[j].name, toks[i].name) == 0)
				break;
		}
		ck_assert_msg(j < nitems(cases), "token %s has no row",
		    toks[i].name);
	}
}
END_TEST

START_TEST(test_verify_edges)
{
	struct auth_keys	 none;
	const char		*ok = token("hs_ok");
	char			 buf[512];
	size_t			 len = strlen(ok);

	memset(&none, 0, sizeof none);
	expect("empty", "", 0, &keysets[KS_FULL], "empty token", NULL, 0);
	/* A NUL inside, and the token cut short by its length. */
	memcpy(buf, ok, len + 1);
	buf[10] = '\0';
	expect("nul", buf, len, &keysets[KS_FULL], "malformed token", NULL, 0);
	expect("short", ok, len - 1, &keysets[KS_FULL], "malformed signature",
	    NULL, 0);
	/* The time is an argument: the same token, 31 s after its exp. */
	now += 600 + 31;
	expect("later", ok, len, &keysets[KS_FULL], "token expired", NULL, 0);
	now -= 600 + 31;
	/* Without keys nothing gets in. */
	expect("no keys", ok, len, &none, "unknown kid", NULL, 0);
	ok = token("hs_nokid");
	expect("no keys, no kid", ok, strlen(ok), &none, "no key for this alg",
	    NULL, 0);
}
END_TEST

START_TEST(test_grants)
{
	static const struct {
		const char	*name;		/* token */
		const char	*chat;
		int		 yes;
	} g[] = {
		{ "hs_ok", "team-1", 1 },
		{ "hs_ok", "team-", 1 },
		{ "hs_ok", "team", 0 },
		{ "hs_ok", "lobby", 1 },
		{ "hs_ok", "lobby2", 0 },
		{ "hs_ok", "lobb", 0 },
		{ "hs_ok", "other", 0 },
		{ "ed_ok", "anything", 1 },
		{ "ed_ok", "x", 1 },
	};
	struct auth_claims	 cl;
	const char		*why, *tok;
	size_t			 i;

	for (i = 0; i < nitems(g); i++) {
		tok = token(g[i].name);
		ck_assert_int_eq(auth_verify(&keysets[KS_FULL], tok,
		    strlen(tok), now, &cl, &why), 0);
		ck_assert_msg(auth_grants(&cl, g[i].chat, strlen(g[i].chat)) ==
		    g[i].yes, "%s on %s", g[i].name, g[i].chat);
		auth_claims_clear(&cl);
	}
	memset(&cl, 0, sizeof cl);
	ck_assert_int_eq(auth_grants(&cl, "lobby", 5), 0);
}
END_TEST

/* Key files: what loads, what is refused with FILE:LINE, what warns. */
START_TEST(test_key_files)
{
	static const struct {
		const char	*hmac;		/* NULL: no file */
		mode_t		 mode;
		const char	*ed;
		const char	*cause;		/* substring, NULL: loads */
		const char	*warn;		/* substring, NULL: none */
	} k[] = {
		{ "K1\n", 0600, NULL, NULL, NULL },
		{ "K1\n", 0640, NULL, NULL, NULL },
		{ "K1\n", 0644, NULL, NULL, "mode 0644 is wider than 0640" },
		{ "K1\n", 0660, NULL, NULL, "mode 0660 is wider than 0640" },
		{ "# c\n\n  \t\n  K1  \n", 0600, NULL, NULL, NULL },
		{ "K1\r\n", 0600, NULL, NULL, NULL },
		{ "", 0600, NULL, "hmac.keys: no key in the file", NULL },
		{ "# only\n", 0600, NULL, "no key in the file", NULL },
		{ "k1\n", 0600, NULL, "hmac.keys:1: expected \"KID BASE64KEY\"",
		  NULL },
		{ "\nk1 MDEyMzQ1Njc4OWFiY2RlZg==\n", 0600, NULL,
		  "hmac.keys:2: the HMAC key is shorter than 32 bytes", NULL },
		{ "K1\nK1\n", 0600, NULL, "hmac.keys:2: the key id is used twice",
		  NULL },
		{ "k1 AAAA BBBB\n", 0600, NULL, "hmac.keys:1: expected", NULL },
		{ "k1 !!!!\n", 0600, NULL, "hmac.keys:1: the key is not base64",
		  NULL },
		{ "k/1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", 0600,
		  NULL, "hmac.keys:1: the key id is not", NULL },
		{ NULL, 0, "e1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGx0=\n",
		  "ed25519.keys:1: an Ed25519 public key is 32 bytes", NULL },
		{ "k1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n", 0600,
		  "k1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=\n",
		  "ed25519.keys:1: the key id is used twice", NULL },
		/* base64url without padding is taken too. */
		{ "k1 AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8\n", 0600,
		  NULL, NULL, NULL },
	};
	struct auth_keys	 ks;
	char			*hp = NULL, *ep = NULL, *warn, *cause;
	char			 content[512], *p;
	size_t			 i;
	int			 rc;

	for (i = 0; i < nitems(k); i++) {
		hp = ep = NULL;
		cause = NULL;
		if (k[i].hmac != NULL) {
			/* K1 stands for the line of key k1. */
			snprintf(content, sizeof content, "%s", k[i].hmac);
			while ((p = strstr(content, "K1")) != NULL) {
				memmove(p + strlen(hmac_line[0]), p + 2,
				    strlen(p + 2) + 1);
				memcpy(p, hmac_line[0], strlen(hmac_line[0]));
			}
			hp = scratch("hmac.keys", content, k[i].mode);
		}
		if (k[i].ed != NULL)
			ep = scratch("ed25519.keys", k[i].ed, 0644);
		rc = auth_keys_load(&ks, hp, ep, &warn, &cause);
		if (k[i].cause == NULL) {
			ck_assert_msg(rc == 0, "row %zu: %s", i, cause);
			ck_assert_uint_ge(ks.n, 1);
		} else {
			ck_assert_msg(rc == -1, "row %zu loaded", i);
			ck_assert_msg(strstr(cause, k[i].cause) != NULL,
			    "row %zu: \"%s\", want \"%s\"", i, cause,
			    k[i].cause);
			ck_assert_uint_eq(ks.n, 0);
			free(cause);
		}
		if (k[i].warn == NULL)
			ck_assert_ptr_null(warn);
		else
			ck_assert_msg(warn != NULL &&
			    strstr(warn, k[i].warn) != NULL, "row %zu: warn %s",
			    i, warn != NULL ? warn : "(none)");
		free(warn);
		auth_keys_clear(&ks);
		free(hp);
		free(ep);
	}
	/* A missing file names itself and why. */
	ck_assert_int_eq(auth_keys_load(&ks, "/nonexistent/keys", NULL, &warn,
	    &cause), -1);
	ck_assert_ptr_nonnull(strstr(cause, "auth-hmac-key-file "
	    "/nonexistent/keys: No such file"));
	free(cause);
}
END_TEST

/* Run a shell command; returns its output (the caller frees) and status. */
static char *
run(const char *cmd, int *status)
{
	char	 buf[8192];
	size_t	 n;
	FILE	*p;

	p = popen(cmd, "r");
	ck_assert_ptr_nonnull(p);
	n = fread(buf, 1, sizeof buf - 1, p);
	buf[n] = '\0';
	*status = pclose(p);
	buf[strcspn(buf, "\n")] = '\0';
	return (strdup(buf));
}

static char *
racerctl(void)
{
	const char	*b = getenv("top_builddir");
	char		*s, *abs;

	if (asprintf(&s, "%s/racerctl", b != NULL ? b : ".") == -1)
		abort();
	/* Absolute: some commands run in another directory. */
	abs = realpath(s, NULL);
	ck_assert_msg(abs != NULL, "%s: %s", s, strerror(errno));
	free(s);
	return (abs);
}

/* Tokens from racerctl token, checked by the verifier. */
START_TEST(test_racerctl_tokens)
{
	static const struct {
		int		 ed;		/* the Ed25519 secret key file */
		const char	*args;		/* after --key-file FILE */
		enum keyset	 ks;
		const char	*why;
		const char	*sub;
		int		 rights;
		const char	*chat;		/* granted */
		const char	*not;		/* not granted */
	} r[] = {
		{ 0, "--kid k2 --sub carol --chats 'team-*,lobby' "
		  "--rights read,history --ttl 1h", KS_FULL, NULL, "carol",
		  AUTH_READ|AUTH_HISTORY, "team-9", "other" },
		{ 0, "--sub dave --chats lobby", KS_ONE, NULL, "dave", AUTH_ALL,
		  "lobby", "lobby2" },
		{ 1, "--sub erin --chats '*' --rights write --ttl 5m",
		  KS_EDONLY, NULL, "erin", AUTH_WRITE, "x", NULL },
		{ 0, "--sub frank --chats a --ttl -31s", KS_FULL,
		  "token expired", NULL, 0, NULL, NULL },
		{ 0, "--sub frank --chats a --ttl -29s", KS_FULL, NULL, "frank",
		  AUTH_ALL, "a", "b" },
		{ 0, "--kid k1 --sub g --chats a", KS_EDONLY, "unknown kid",
		  NULL, 0, NULL, NULL },
	};
	struct auth_claims	 cl;
	const char		*why;
	char			*hp, *sp, *prog = racerctl(), *cmd, *out;
	char			 content[600];
	size_t			 i;
	int			 status;

	snprintf(content, sizeof content, "%s\n%s\n", hmac_line[0],
	    hmac_line[1]);
	hp = scratch("racerctl-hmac", content, 0600);
	snprintf(content, sizeof content, "%s\n", ed_secret_line);
	sp = scratch("racerctl-secret", content, 0600);
	for (i = 0; i < nitems(r); i++) {
		if (asprintf(&cmd, "%s token --key-file %s %s", prog,
		    r[i].ed ? sp : hp, r[i].args) == -1)
			abort();
		out = run(cmd, &status);
		ck_assert_msg(status == 0, "%s: status %d", cmd, status);
		if (r[i].why == NULL) {
			ck_assert_msg(auth_verify(&keysets[r[i].ks], out,
			    strlen(out), time(NULL), &cl, &why) == 0,
			    "%s: %s", cmd, why);
			ck_assert_str_eq(cl.sub, r[i].sub);
			ck_assert_int_eq(cl.rights, r[i].rights);
			ck_assert_int_eq(auth_grants(&cl, r[i].chat,
			    strlen(r[i].chat)), 1);
			if (r[i].not != NULL)
				ck_assert_int_eq(auth_grants(&cl, r[i].not,
				    strlen(r[i].not)), 0);
			auth_claims_clear(&cl);
		} else {
			ck_assert_int_eq(auth_verify(&keysets[r[i].ks], out,
			    strlen(out), time(NULL), &cl, &why), -1);
			ck_assert_str_eq(why, r[i].why);
		}
		free(out);
		free(cmd);
	}
	/* Bad arguments: usage errors (exit 2), no token. */
	if (asprintf(&cmd, "%s token --key-file %s --sub 'a b' --chats x "
	    "2>/dev/null", prog, hp) == -1)
		abort();
	out = run(cmd, &status);
	ck_assert_int_eq(WEXITSTATUS(status), 2);
	ck_assert_str_eq(out, "");
	free(out);
	free(cmd);
	if (asprintf(&cmd, "%s token --key-file %s --sub a --chats x "
	    "--rights admin 2>/dev/null", prog, hp) == -1)
		abort();
	out = run(cmd, &status);
	ck_assert_int_eq(WEXITSTATUS(status), 2);
	free(out);
	free(cmd);
	free(hp);
	free(sp);
	free(prog);
}
END_TEST

/* racerctl keygen: its lines load, its private key signs. */
START_TEST(test_racerctl_keygen)
{
	struct auth_keys	 ks;
	struct auth_claims	 cl;
	struct stat		 st;
	const char		*why;
	char			*prog = racerctl(), *cmd, *line, *hp, *ep;
	char			*tok, *warn, *cause, *skpath, content[300];
	int			 status;

	if (asprintf(&cmd, "%s keygen hmac --kid g1", prog) == -1)
		abort();
	line = run(cmd, &status);
	ck_assert_int_eq(status, 0);
	ck_assert_int_eq(strncmp(line, "g1 ", 3), 0);
	free(cmd);
	snprintf(content, sizeof content, "%s\n", line);
	hp = scratch("gen-hmac", content, 0600);
	free(line);

	if (asprintf(&cmd, "cd %s && %s keygen ed25519 --kid g2 --out "
	    "g2.key 2>/dev/null", dirp, prog) == -1)
		abort();
	line = run(cmd, &status);
	ck_assert_int_eq(status, 0);
	ck_assert_int_eq(strncmp(line, "g2 ", 3), 0);
	free(cmd);
	snprintf(content, sizeof content, "%s\n", line);
	ep = scratch("gen-ed", content, 0644);
	free(line);
	if (asprintf(&skpath, "%s/g2.key", dirp) == -1)
		abort();
	ck_assert_int_eq(stat(skpath, &st), 0);
	ck_assert_int_eq(st.st_mode & 0777, 0600);
	/* It will not overwrite a private key. */
	if (asprintf(&cmd, "cd %s && %s keygen ed25519 --kid g2 --out "
	    "g2.key 2>/dev/null", dirp, prog) == -1)
		abort();
	free(run(cmd, &status));
	ck_assert_int_ne(status, 0);
	free(cmd);

	ck_assert_int_eq(auth_keys_load(&ks, hp, ep, &warn, &cause), 0);
	ck_assert_uint_eq(ks.n, 2);
	ck_assert_uint_eq(ks.nhmac, 1);
	if (asprintf(&cmd, "%s token --key-file %s --sub h --chats c", prog,
	    hp) == -1)
		abort();
	tok = run(cmd, &status);
	free(cmd);
	ck_assert_int_eq(auth_verify(&ks, tok, strlen(tok), time(NULL), &cl,
	    &why), 0);
	auth_claims_clear(&cl);
	free(tok);
	if (asprintf(&cmd, "%s token --key-file %s --sub h --chats c", prog,
	    skpath) == -1)
		abort();
	tok = run(cmd, &status);
	free(cmd);
	ck_assert_int_eq(auth_verify(&ks, tok, strlen(tok), time(NULL), &cl,
	    &why), 0);
	ck_assert_str_eq(cl.sub, "h");
	auth_claims_clear(&cl);
	free(tok);
	auth_keys_clear(&ks);
	free(skpath);
	free(hp);
	free(ep);
	free(prog);
}
END_TEST

Suite *
auth_suite(void)
{
	Suite	*s = suite_create("auth");
	TCase	*tc;

	tc = tcase_create("verify");
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_loop_test(tc, test_verify_table, 0, nitems(cases));
	tcase_add_test(tc, test_verify_every_token);
	tcase_add_test(tc, test_verify_edges);
	tcase_add_test(tc, test_grants);
	suite_add_tcase(s, tc);

	tc = tcase_create("keys");
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_key_files);
	suite_add_tcase(s, tc);

	tc = tcase_create("racerctl");
	tcase_add_unchecked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_racerctl_tokens);
	tcase_add_test(tc, test_racerctl_keygen);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (testutil_run(auth_suite()));
}
