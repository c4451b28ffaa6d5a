/*
 * Layout constants of the slitter heap, as the C side sees them.
 *
 * The Rust side (src/layout/constants.rs) defines the same values and compares them
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
#define SLITTER_RECORDS_SIZE (128UL << 10)
#else
#define SLITTER_DATA_ALIGNMENT (1UL << 30)
#define SLITTER_GUARD_PAGE_SIZE (2UL << 20)
#define SLITTER_RECORDS_SIZE (4UL << 20)
#endif

#define SLITTER_SPAN_ALIGNMENT (16UL << 10)
#define SLITTER_GRANULE 16UL
/* The metadata region: span records, the tag table (a 16-bit entry for
 * each 16-bit state), one two-byte object state per granule of data, then
 * one held bit per granule. */
#define SLITTER_METADATA_SIZE                                                  \
	(SLITTER_RECORDS_SIZE + (2UL << 16) +                                  \
	 SLITTER_DATA_ALIGNMENT / SLITTER_GRANULE * 2UL +                      \
	 SLITTER_DATA_ALIGNMENT / SLITTER_GRANULE / 8UL)
#define SLITTER_MAGAZINE_SIZE 31
#define SLITTER_MAGAZINE_ALIGNMENT 512
#define SLITTER_MAX_CLASSES 1024

/* One span record per SLITTER_SPAN_ALIGNMENT bytes of chunk data. */
struct slitter_span_record {
	uint32_t class_id;     /* 0: unused slot */
	uint32_t object_count; /* number of objects in the span */
	uint64_t begin;        /* address of the span's first object */
	uint8_t tag;           /* the class's tag in this chunk */
	uint8_t unused[7];
	uint64_t bump_index;   /* next object the press hands out */
	uint64_t status;       /* held objects, owned and list flags */
	uint32_t cursor;       /* where the owner looks for held objects */
	uint32_t emptied_at;   /* when the span became wholly free (ms) */
	uint64_t next;         /* links of the press's span lists */
	uint64_t prev;
};

/* A magazine slot: a free object and its state. */
struct slitter_magazine_slot {
	void *object;
	void *state;
};

/* A magazine: a header, then SLITTER_MAGAZINE_SIZE slots. */
struct slitter_magazine {
	uint32_t count;
	uint32_t base; /* slots below it are unused (a bounded magazine) */
	uint64_t link;
	struct slitter_magazine_slot slots[SLITTER_MAGAZINE_SIZE];
} __attribute__((aligned(SLITTER_MAGAZINE_ALIGNMENT)));

/*
 * Per-thread cache header: for each class id, the "top" of the allocation
 * and of the release magazine (the address of the first unused slot).
 */
struct slitter_thread_state {
	struct slitter_magazine_slot *const *alloc;
	struct slitter_magazine_slot *const *release;
	uint64_t flags;
	void *array;
};

_Static_assert(sizeof(struct slitter_magazine) == SLITTER_MAGAZINE_ALIGNMENT,
	       "a magazine fills its alignment exactly");

_Static_assert(SLITTER_DATA_ALIGNMENT / SLITTER_SPAN_ALIGNMENT *
		       sizeof(struct slitter_span_record) <=
		   SLITTER_RECORDS_SIZE,
	       "span records must fit in their part of the metadata region");

#endif
