/* SPDX-License-Identifier: ISC */
/* racerd: helpers shared by the Check unit tests. */
#ifndef RACERD_TESTUTIL_H
#define RACERD_TESTUTIL_H

#include <check.h>

int	testutil_run(Suite *);

#endif
