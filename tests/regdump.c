/* SPDX-License-Identifier: ISC */
/* racerd: print a registry segment, for integration tests. */
/*
 * usage: regdump NAME
 * Prints "workers N", one "slot I pid P conns C" line per worker slot and
 * "rooms R members M".  Exit 1 if the segment cannot be attached.
 */
#include <stdio.h>
#include <stdlib.h>

#include "racerd.h"
#include "registry.h"

int
main(int argc, char **argv)
{
	struct reg_stats	 st;
	struct reg_worker_info	 info;
	struct reg		*reg;
	char			*cause = NULL;
	uint32_t		 i;

	if (argc != 2) {
		fprintf(stderr, "usage: regdump NAME\n");
		return (2);
	}
	if ((reg = reg_attach(argv[1], &cause)) == NULL) {
		fprintf(stderr, "regdump: %s\n", cause);
		free(cause);
		return (1);
	}
	if (reg_stats(reg, &st) != 0) {
		fprintf(stderr, "regdump: cannot read stats\n");
		return (1);
	}
	printf("master %ld generation %u\n", (long)st.master, st.generation);
	printf("workers %u\n", st.workers);
	for (i = 0; i < st.workers; i++) {
		if (reg_worker_info(reg, i, &info) != 0)
			continue;
		printf("slot %u pid %ld conns %u\n", i, (long)info.pid,
		    info.connections);
	}
	printf("rooms %u members %llu\n", st.rooms,
	    (unsigned long long)st.members);
	reg_close(reg);
	return (0);
}
