/* SPDX-License-Identifier: ISC */
/* racerd: unit tests of tls.c (the server's TLS context). */
/*
 * Certificates and keys are made here with OpenSSL (P-256, self-signed)
 * into a private directory, so that tls_check and tls_configure are
 * tested on real files: a good pair, a key that belongs to another
 * certificate, missing files, bad cipher lists, and a failed reload that
 * must keep the context in use.
 */
#include <sys/types.h>
#include <sys/socket.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <check.h>
#include <event2/bufferevent.h>
#include <event2/event.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include "racerd.h"
#include "testutil.h"

Suite		*tls_suite(void);

static char	 dir[] = "/tmp/check_tls.XXXXXX";

/* Write a self-signed certificate and its key to DIR/NAME.{pem,key}. */
static void
tls_make(const char *name)
{
	EVP_PKEY	*pkey;
	X509		*x;
	X509_NAME	*n;
	FILE		*f;
	char		*path;

	pkey = EVP_EC_gen("P-256");
	ck_assert_ptr_nonnull(pkey);
	x = X509_new();
	ck_assert_ptr_nonnull(x);
	ck_assert_int_eq(X509_set_version(x, 2), 1);
	ck_assert_int_eq(ASN1_INTEGER_set(X509_get_serialNumber(x), 1), 1);
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notBefore(x), 0));
	ck_assert_ptr_nonnull(X509_gmtime_adj(X509_getm_notAfter(x), 3600));
	ck_assert_int_eq(X509_set_pubkey(x, pkey), 1);
	n = X509_get_subject_name(x);
	ck_assert_int_eq(X509_NAME_add_entry_by_txt(n, "CN", MBSTRING_ASC,
	    (const u_char *)"localhost", -1, -1, 0), 1);
	ck_assert_int_eq(X509_set_issuer_name(x, n), 1);
	ck_assert_int_ne(X509_sign(x, pkey, EVP_sha256()), 0);

	xasprintf(&path, "%s/%s.pem", dir, name);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	ck_assert_int_eq(PEM_write_X509(f, x), 1);
	ck_assert_int_eq(fclose(f), 0);
	free(path);
	xasprintf(&path, "%s/%s.key", dir, name);
	ck_assert_ptr_nonnull(f = fopen(path, "w"));
	ck_assert_int_eq(PEM_write_PrivateKey(f, pkey, NULL, NULL, 0, NULL,
	    NULL), 1);
	ck_assert_int_eq(fclose(f), 0);
	free(path);
	X509_free(x);
	EVP_PKEY_free(pkey);
}

static void
tls_setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(dir));
	tls_make("a");
	tls_make("b");
}

static void
tls_teardown(void)
{
	char	*cmd;

	xasprintf(&cmd, "rm -rf %s", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "cannot remove %s\n", dir);
	free(cmd);
	strcpy(dir, "/tmp/check_tls.XXXXXX");
}

static void
set(char **field, const char *value)
{
	char	*copy = xstrdup(value);	/* value may be *field */

	free(*field);
	*field = copy;
}

/* A configuration on TLS with DIR/CERT.pem and DIR/KEY.key. */
static struct config *
tls_conf(const char *cert, const char *key)
{
	struct config	*cfg = config_default();
	char		*p;

	set(&cfg->tls_listen, "127.0.0.1:0");
	xasprintf(&p, "%s/%s.pem", dir, cert);
	set(&cfg->tls_certificate, p);
	free(p);
	xasprintf(&p, "%s/%s.key", dir, key);
	set(&cfg->tls_key, p);
	free(p);
	return (cfg);
}

START_TEST(test_disabled)
{
	struct config	*cfg = config_default();
	char		*cause = NULL;

	ck_assert_int_eq(tls_enabled(cfg), 0);
	ck_assert_int_eq(tls_check(cfg, &cause), 0);
	ck_assert_int_eq(tls_configure(cfg, &cause), 0);
	ck_assert_ptr_null(cause);
	config_free(cfg);
}
END_TEST

START_TEST(test_good_pair)
{
	struct config	*cfg = tls_conf("a", "a");
	char		*cause = NULL;

	ck_assert_int_eq(tls_enabled(cfg), 1);
	ck_assert_int_eq(tls_check(cfg, &cause), 0);
	set(&cfg->tls_protocols, "TLSv1.3");
	ck_assert_int_eq(tls_check(cfg, &cause), 0);
	set(&cfg->tls_ciphers, "ECDHE-ECDSA-AES128-GCM-SHA256");
	ck_assert_int_eq(tls_check(cfg, &cause), 0);
	ck_assert_ptr_null(cause);
	config_free(cfg);
}
END_TEST

START_TEST(test_mismatch)
{
	struct config	*cfg = tls_conf("a", "b");
	char		*cause = NULL, *want;

	ck_assert_int_eq(tls_check(cfg, &cause), -1);
	xasprintf(&want, "tls-key %s does not match the certificate in "
	    "tls-certificate %s", cfg->tls_key, cfg->tls_certificate);
	ck_assert_str_eq(cause, want);
	free(want);
	free(cause);
	config_free(cfg);
}
END_TEST

START_TEST(test_bad_files)
{
	struct config	*cfg;
	char		*cause = NULL, *want;

	cfg = tls_conf("none", "a");
	ck_assert_int_eq(tls_check(cfg, &cause), -1);
	xasprintf(&want, "tls-certificate %s: ", cfg->tls_certificate);
	ck_assert_int_eq(strncmp(cause, want, strlen(want)), 0);
	free(want);
	free(cause);
	config_free(cfg);

	cfg = tls_conf("a", "none");
	ck_assert_int_eq(tls_check(cfg, &cause), -1);
	xasprintf(&want, "tls-key %s: ", cfg->tls_key);
	ck_assert_int_eq(strncmp(cause, want, strlen(want)), 0);
	free(want);
	free(cause);
	config_free(cfg);

	/* A certificate file given as the key. */
	cfg = tls_conf("a", "a");
	set(&cfg->tls_key, cfg->tls_certificate);
	ck_assert_int_eq(tls_check(cfg, &cause), -1);
	free(cause);

	free(cfg->tls_key);
	xasprintf(&cfg->tls_key, "%s/a.key", dir);
	set(&cfg->tls_ciphers, "NO-SUCH-CIPHER");
	ck_assert_int_eq(tls_check(cfg, &cause), -1);
	ck_assert_int_eq(strncmp(cause, "tls-ciphers: \"NO-SUCH-CIPHER\": ",
	    31), 0);
	free(cause);
	config_free(cfg);
}
END_TEST

/* A failed reload keeps the context: connections can still be made. */
START_TEST(test_reload_keeps)
{
	struct config		*good = tls_conf("a", "a"), *bad;
	struct event_base	*base;
	struct bufferevent	*bev;
	char			*cause = NULL;
	int			 sv[2];

	ck_assert_ptr_nonnull(base = event_base_new());
	ck_assert_int_eq(tls_configure(good, &cause), 0);
	bad = tls_conf("a", "b");
	ck_assert_int_eq(tls_configure(bad, &cause), -1);
	free(cause);
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	bev = tls_accept(base, sv[0]);
	ck_assert_ptr_nonnull(bev);
	bufferevent_free(bev);
	close(sv[1]);
	tls_free();
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	ck_assert_ptr_null(tls_accept(base, sv[0]));
	close(sv[0]);
	close(sv[1]);
	event_base_free(base);
	config_free(good);
	config_free(bad);
}
END_TEST

Suite *
tls_suite(void)
{
	Suite	*s = suite_create("tls");
	TCase	*tc;

	tc = tcase_create("context");
	tcase_add_checked_fixture(tc, tls_setup, tls_teardown);
	tcase_add_test(tc, test_disabled);
	tcase_add_test(tc, test_good_pair);
	tcase_add_test(tc, test_mismatch);
	tcase_add_test(tc, test_bad_files);
	tcase_add_test(tc, test_reload_keeps);
	tcase_set_timeout(tc, 10);
	suite_add_tcase(s, tc);
	return (s);
}

int
main(void)
{
	return (testutil_run(tls_suite()));
}
