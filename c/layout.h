/*
 * Layout constants of the slitter heap, as the C side sees them.
 *
 * The Rust side (src/constants.rs) defines the same values and compares them
 * with these at initialisation; any difference aborts with a message naming
 * the constant. SLITTER_SMALL_CONSTANTS matches the Rust feature
 * `test_only_small_constants`.
 */
#ifndef SLITTER_LAYOUT_H
#define SLITTER_LAYOUT_H

#include <stddef.h>
#include <stdint.h>

#ifdef SLITTER_SMALL_CONSTANTS
#define SLITTER_DATA_ALIGNMENT (32UL << 20)
#define SLITTER_GUARD_PAGE_SIZE (16UL << 10)
#define SLITTER_METADATA_PAGE_SIZE (64UL << 10)
#else
#define SLITTER_DATA_ALIGNMENT (1UL << 30)
#define SLITTER_GUARD_PAGE_SIZE (2UL << 20)
#define SLITTER_METADATA_PAGE_SIZE (2UL << 20)
#endif

#define SLITTER_SPAN_ALIGNMENT (16UL << 10)
#define SLITTER_MAGAZINE_SIZE 30

/* One span record per SLITTER_SPAN_ALIGNMENT bytes of chunk data. */
struct slitter_span_record {
	uint32_t class_id;     /* 0: unused slot */
	uint32_t object_count; /* number of objects in the span */
	uint64_t bump_index;   /* next object the press hands out (first record) */
	uint64_t begin;        /* address of the span's first object */
	uint64_t magic;        /* ceil(2^64 / object size) */
};

/* Per-thread cache header: the magazine arrays and their length. */
struct slitter_thread_state {
	void *alloc;
	void *release;
	uint64_t len;
	uint64_t flags;
	void *array;
};

_Static_assert(SLITTER_DATA_ALIGNMENT / SLITTER_SPAN_ALIGNMENT *
		       sizeof(struct slitter_span_record) <=
		   SLITTER_METADATA_PAGE_SIZE,
	       "span records must fit in the metadata region");

#endif
