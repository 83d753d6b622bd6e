/* SPDX-License-Identifier: ISC */
/* racerd: helpers shared by the Check unit tests. */
#include <stdlib.h>

#include <check.h>

#include "testutil.h"

/*
 * Run a suite (CK_RUN_SUITE, CK_VERBOSITY etc. are honoured) and return
 * the exit status for main: EXIT_SUCCESS only if every test passed.
 */
int
testutil_run(Suite *s)
{
	SRunner	*sr;
	int	 failed;

	sr = srunner_create(s);
	srunner_run_all(sr, CK_ENV);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return (failed == 0 ? EXIT_SUCCESS : EXIT_FAILURE);
}
