/* SPDX-License-Identifier: ISC */
/* racerd: real-time chat server -- main. */
/*
 * Parses the command line, loads and checks the configuration (-t tests it
 * and exits), and hands over to the master.  Everything that can be wrong
 * with the configuration is reported here, on the terminal, before the
 * process detaches.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "racerd.h"

#define RACERD_CONF	SYSCONFDIR "/racerd/racerd.conf"

static __dead void
usage(int status)
{
	fprintf(status ? stderr : stdout,
	    "usage: racerd [-ftvh] [-c file]\n"
	    "  -c file  configuration file (default " RACERD_CONF ")\n"
	    "  -f       stay in the foreground and log to stderr\n"
	    "  -t       check the configuration and exit\n"
	    "  -v       print the version and exit\n"
	    "  -h       print this help and exit\n");
	exit(status);
}

int
main(int argc, char **argv)
{
	struct config	*cfg;
	const char	*path = NULL;
	char		*cause = NULL, *warn = NULL;
	int		 ch, test = 0, foreground = 0;

	while ((ch = getopt(argc, argv, "c:fthv")) != -1) {
		switch (ch) {
		case 'c':
			path = optarg;
			break;
		case 'f':
			foreground = 1;
			break;
		case 't':
			test = 1;
			break;
		case 'v':
			printf("racerd %s\n", PACKAGE_VERSION);
			return (0);
		case 'h':
			usage(0);
		default:
			usage(1);
		}
	}
	if (optind != argc)
		usage(1);

	/* Without -c, a missing default file means built-in defaults. */
	if (path == NULL && access(RACERD_CONF, F_OK) == 0)
		path = RACERD_CONF;
	cfg = master_load(path, &warn, &cause);
	if (cfg != NULL && test && tls_check(cfg, &cause) != 0) {
		config_free(cfg);
		cfg = NULL;
	}
	if (warn != NULL) {
		fprintf(stderr, "racerd: warning: %s\n", warn);
		free(warn);
	}
	if (cfg == NULL) {
		fprintf(stderr, "racerd: %s\n", cause);
		free(cause);
		return (1);
	}
	if (test) {
		printf("racerd: configuration %s is valid\n",
		    path != NULL ? path : "(built-in defaults)");
		config_free(cfg);
		return (0);
	}
	return (master_main(cfg, foreground));
}
