/* SPDX-License-Identifier: ISC */
/* racerd: portability shims. */
#ifndef RACERD_COMPAT_H
#define RACERD_COMPAT_H

#ifndef __unused
#define __unused __attribute__((__unused__))
#endif
#ifndef __dead
#define __dead __attribute__((__noreturn__))
#endif
#ifndef nitems
#define nitems(a) (sizeof (a) / sizeof (a)[0])
#endif
#ifndef TAILQ_FOREACH_SAFE
#define TAILQ_FOREACH_SAFE(var, head, field, tvar)			\
	for ((var) = TAILQ_FIRST(head);					\
	    (var) != NULL && ((tvar) = TAILQ_NEXT(var, field), 1);	\
	    (var) = (tvar))
#endif

#endif
