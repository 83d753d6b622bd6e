/* SPDX-License-Identifier: ISC */
/* racerd: shared, reference-counted server frames. */
/*
 * A message delivered to a chat is encoded once, header and payload in
 * one block, and queued on every member's output buffer by reference
 * (evbuffer_add_reference); the last buffer to let go of it frees it.
 * Server frames are never masked (RFC 6455 §5.1), so the bytes are the
 * same for every member.
 */
#include <stdlib.h>
#include <string.h>

#include "racerd.h"
#include "proto.h"

/* A text frame holding len bytes of buf; its one reference is the caller's. */
struct frame *
frame_text(const char *buf, size_t len)
{
	struct frame	*f;
	uint8_t		 hdr[10];
	size_t		 hlen;

	hlen = proto_ws_header(hdr, 0x1, len);
	f = xmalloc(sizeof *f + hlen + len);
	f->refs = 1;
	f->len = hlen + len;
	memcpy(f->data, hdr, hlen);
	memcpy(f->data + hlen, buf, len);
	return (f);
}

/*
 * Frames f[0..n-1] one after another in one block, to be written to
 * members as one; its one reference is the caller's.
 */
struct frame *
frame_join(struct frame **f, u_int n)
{
	struct frame	*all;
	size_t		 len = 0;
	u_int		 i;

	for (i = 0; i < n; i++)
		len += f[i]->len;
	all = xmalloc(sizeof *all + len);
	all->refs = 1;
	all->len = 0;
	for (i = 0; i < n; i++) {
		memcpy(all->data + all->len, f[i]->data, f[i]->len);
		all->len += f[i]->len;
	}
	return (all);
}

void
frame_ref(struct frame *f)
{
	f->refs++;
}

void
frame_unref(struct frame *f)
{
	RD_ASSERT(f->refs > 0);
	if (--f->refs == 0)
		free(f);
}

/* evbuffer cleanup callback: an output buffer lets go of its reference. */
void
frame_release(__unused const void *data, __unused size_t len, void *arg)
{
	frame_unref(arg);
}
