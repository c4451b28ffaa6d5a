/*
 * The per-thread cache header, as an initial-exec thread-local, and the
 * read-only sentinel entries every thread starts with.
 *
 * Rust's own thread-locals use the general-dynamic model in a shared object,
 * which costs a call to __tls_get_addr on every access. Declaring the
 * variable here with tls_model("initial-exec") lets src/cache/thread_cache.rs reach it
 * with one %fs-relative load. It has no destructor: thread exit is handled
 * with a pthread key (see src/cache/thread_cache.rs).
 *
 * A thread starts with every class's allocation entry at the top of an
 * always-empty sentinel magazine and every release entry at the top of an
 * always-full one, so the fast paths need no length or null check: the
 * first use of each class falls to the slow path, which gives the thread
 * its own entry arrays. The sentinels and initial arrays are never written.
 */
#include "layout.h"

#define HIDDEN __attribute__((visibility("hidden")))

HIDDEN const struct slitter_magazine slitter_empty_sentinel = { .count = 0 };
HIDDEN const struct slitter_magazine slitter_full_sentinel = {
	.count = SLITTER_MAGAZINE_SIZE,
};

static struct slitter_magazine_slot *const initial_alloc[SLITTER_MAX_CLASSES] = {
	[0 ... SLITTER_MAX_CLASSES - 1] =
		(struct slitter_magazine_slot *)&slitter_empty_sentinel.slots[0],
};

static struct slitter_magazine_slot *const initial_release[SLITTER_MAX_CLASSES] = {
	[0 ... SLITTER_MAX_CLASSES - 1] = (struct slitter_magazine_slot *)
		&slitter_full_sentinel.slots[SLITTER_MAGAZINE_SIZE],
};

HIDDEN struct slitter_magazine_slot *const *const slitter_initial_alloc = initial_alloc;
HIDDEN struct slitter_magazine_slot *const *const slitter_initial_release = initial_release;

__attribute__((tls_model("initial-exec"), visibility("hidden"), aligned(8)))
__thread struct slitter_thread_state slitter_thread_state = {
	.alloc = initial_alloc,
	.release = initial_release,
};
