/* SPDX-License-Identifier: ISC */
/* racerd: libFuzzer harness for the configuration parser (config.c). */
/*
 * The input is a configuration file.  It is written to a memfd and read
 * through /proc/self/fd, as config_load opens a path.  A file that loads
 * must resolve or be refused with a message; a refusal must say why.
 */
#include <sys/mman.h>

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "racerd.h"

int	LLVMFuzzerTestOneInput(const uint8_t *, size_t);

static int	fuzz_fd = -1;
static char	fuzz_path[64];

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t len)
{
	struct config	*cfg;
	char		*cause = NULL;

	if (fuzz_fd == -1) {
		if ((fuzz_fd = memfd_create("racerd-fuzz", 0)) == -1)
			abort();
		snprintf(fuzz_path, sizeof fuzz_path, "/proc/self/fd/%d",
		    fuzz_fd);
	}
	if (ftruncate(fuzz_fd, 0) != 0 || pwrite(fuzz_fd, data, len, 0) !=
	    (ssize_t)len)
		abort();
	cfg = config_load(fuzz_path, &cause);
	if (cfg == NULL) {
		if (cause == NULL || *cause == '\0')
			abort();
		free(cause);
		return (0);
	}
	if (config_resolve(cfg, &cause) != 0) {
		if (cause == NULL)
			abort();
		free(cause);
	} else if (config_workers(cfg) < 1)
		abort();
	config_free(cfg);
	return (0);
}
