/*
 * Multithreaded malloc stress: 4 threads allocate objects of random sizes
 * from 1 byte to 4 MiB (mostly small) with malloc, calloc, realloc,
 * posix_memalign and aligned_alloc, fill every object with a pattern derived
 * from its id, verify it before every realloc and free, and swap objects
 * through a shared, locked exchange array so that many objects are freed or
 * reallocated by a thread other than the one that allocated them.
 *
 *   malloc_stress [ops per thread [seed]]
 *
 * Built without slitter and run under LD_PRELOAD=libslitter.so by
 * tests/malloc.rs; passes against glibc's malloc too. Prints the
 * allocator_probe.h line first, a line of counts, and "malloc_stress: ok"
 * last. A failed check prints "malloc_stress: FAIL file:line: ..." to stderr
 * and exits 1.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allocator_probe.h"

#define TEST_NAME "malloc_stress"
#include "test_support.h"

#define THREADS 4
#define LOCAL_SLOTS 256
#define EXCHANGE_SLOTS 64
#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
/* Objects up to this size are patterned in full; larger ones at their
 * first and last 4 KiB and every 1 KiB in between. */
#define FULL_PATTERN_LIMIT (64 * KIB)

struct object {
	unsigned char *p;
	size_t size;
	uint64_t id; /* (allocating thread + 1) << 48 | sequence */
};

struct thread_state {
	int index;
	uint64_t rng;
	uint64_t sequence;
	long ops;
	struct object local[LOCAL_SLOTS];
	/* Counts, for the summary line. */
	long allocations, frees, reallocs, sends, foreign_frees;
	long foreign_reallocs;
	pthread_t thread;
};

static struct object exchange[EXCHANGE_SLOTS];
static pthread_mutex_t exchange_lock = PTHREAD_MUTEX_INITIALIZER;
static struct thread_state threads[THREADS];

/* 1 byte to 4 MiB, skewed towards small sizes. */
static size_t random_size(uint64_t *rng)
{
	uint64_t r = next_random(rng);
	unsigned bucket = (unsigned)(r % 1000);
	uint64_t v = r >> 16;

	if (bucket < 700)
		return 1 + v % 128;
	if (bucket < 900)
		return 129 + v % (4 * KIB - 128);
	if (bucket < 980)
		return 4 * KIB + v % (60 * KIB);
	if (bucket < 996)
		return 64 * KIB + v % (MIB - 64 * KIB);
	return MIB + v % (3 * MIB + 1);
}

static uint8_t pattern(uint64_t id, size_t i)
{
	uint64_t h = (id + 1) * 0x9E3779B97F4A7C15ull;
	return (uint8_t)((h >> 56) ^ (h >> 24) ^ (i * 131u) ^ (i >> 10));
}

/* Runs `body` for every patterned byte offset `i` of an object of `size`. */
#define FOR_PATTERNED(size, i, body)                                          \
	do {                                                                  \
		if ((size) <= FULL_PATTERN_LIMIT) {                           \
			for (size_t i = 0; i < (size); i++)                   \
				body;                                         \
		} else {                                                      \
			for (size_t i = 0; i < 4 * KIB; i++)                  \
				body;                                         \
			for (size_t i = 4 * KIB; i < (size)-4 * KIB;          \
			     i += KIB)                                        \
				body;                                         \
			for (size_t i = (size)-4 * KIB; i < (size); i++)      \
				body;                                         \
		}                                                             \
	} while (0)

static void stamp(const struct object *o)
{
	FOR_PATTERNED(o->size, i, o->p[i] = pattern(o->id, i));
}

/* Checks the patterned bytes of the object below `limit`. */
static void verify(const struct object *o, size_t limit, const char *when)
{
	FOR_PATTERNED(o->size, i,
		      CHECK(i >= limit || o->p[i] == pattern(o->id, i),
			    "object %p id %#llx size %zu: byte %zu "
			    "corrupted (%#x, expected %#x) %s",
			    (void *)o->p, (unsigned long long)o->id, o->size,
			    i, o->p[i], pattern(o->id, i), when));
}

static void check_alignment(const void *p, size_t size, size_t alignment,
			    const char *what)
{
	size_t natural = size >= 16 ? 16 : size >= 8 ? 8 : size >= 4 ? 4 : 1;
	if (alignment < natural)
		alignment = natural;
	CHECK(((uintptr_t)p & (alignment - 1)) == 0,
	      "%s(%zu) = %p is not %zu-aligned", what, size, p, alignment);
	CHECK(malloc_usable_size((void *)p) >= size,
	      "%s(%zu) = %p: usable size %zu", what, size, p,
	      malloc_usable_size((void *)p));
}

static bool all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != 0)
			return false;
	return true;
}

static void allocate(struct thread_state *t, struct object *o)
{
	size_t size = random_size(&t->rng);
	uint64_t r = next_random(&t->rng);
	unsigned how = (unsigned)(r % 10);
	size_t alignment = 1;
	void *p = NULL;
	const char *what;

	if (how < 4) {
		what = "malloc";
		p = malloc(size);
	} else if (how < 6) {
		what = "calloc";
		size_t count = size / 8 ? size / 8 : 1;
		size = count * 8;
		p = calloc(count, 8);
		CHECK(p != NULL, "calloc(%zu, 8) returned NULL", count);
		/* Sample the zeroing: the whole of small objects, a few
		 * hundred bytes spread over large ones. */
		if (size <= FULL_PATTERN_LIMIT) {
			CHECK(all_zero(p, size), "calloc(%zu) not zeroed",
			      size);
		} else {
			for (size_t i = 0; i < size; i += 4093)
				CHECK(((unsigned char *)p)[i] == 0,
				      "calloc(%zu) byte %zu not zeroed", size,
				      i);
			CHECK(all_zero((unsigned char *)p + size - 64, 64),
			      "calloc(%zu) tail not zeroed", size);
		}
	} else if (how < 7) {
		what = "realloc(NULL)";
		p = realloc(NULL, size);
	} else if (how < 9) {
		what = "posix_memalign";
		alignment = (size_t)8 << (r >> 8) % (size > 64 * KIB ? 14 : 10);
		int ret = posix_memalign(&p, alignment, size);
		CHECK(ret == 0, "posix_memalign(%zu, %zu) returned %d",
		      alignment, size, ret);
	} else {
		what = "aligned_alloc";
		alignment = (size_t)1 << (r >> 8) % 13;
		p = aligned_alloc(alignment, size);
	}
	CHECK(p != NULL, "%s(%zu) returned NULL (errno %d)", what, size, errno);
	check_alignment(p, size, alignment, what);

	o->p = p;
	o->size = size;
	o->id = ((uint64_t)(t->index + 1) << 48) | t->sequence++;
	stamp(o);
	t->allocations++;
}

static int owner_of(const struct object *o)
{
	return (int)(o->id >> 48) - 1;
}

static void release(struct thread_state *t, struct object *o)
{
	verify(o, SIZE_MAX, "before free");
	if (owner_of(o) != t->index)
		t->foreign_frees++;
	free(o->p);
	o->p = NULL;
	t->frees++;
}

static void reallocate(struct thread_state *t, struct object *o)
{
	size_t size = random_size(&t->rng);
	/* Often a small change, to hit the in-place path. */
	if (next_random(&t->rng) % 3 == 0)
		size = o->size + next_random(&t->rng) % 32;
	if (size == 0)
		size = 1;

	verify(o, SIZE_MAX, "before realloc");
	unsigned char *p = realloc(o->p, size);
	CHECK(p != NULL, "realloc(%zu -> %zu) returned NULL", o->size, size);
	check_alignment(p, size, 1, "realloc");
	o->p = p;
	/* The common prefix survived; then re-stamp with a new id. */
	size_t kept = o->size < size ? o->size : size;
	verify(o, kept, "after realloc");
	if (owner_of(o) != t->index)
		t->foreign_reallocs++;
	o->size = size;
	o->id = ((uint64_t)(t->index + 1) << 48) | t->sequence++;
	stamp(o);
	t->reallocs++;
}

/* Swaps the object in `o` (possibly empty) with a random exchange slot. */
static void swap_with_exchange(struct thread_state *t, struct object *o)
{
	size_t slot = next_random(&t->rng) % EXCHANGE_SLOTS;

	pthread_mutex_lock(&exchange_lock);
	struct object theirs = exchange[slot];
	exchange[slot] = *o;
	*o = theirs;
	pthread_mutex_unlock(&exchange_lock);
	t->sends++;
}

static void *run(void *arg)
{
	struct thread_state *t = arg;

	for (long op = 0; op < t->ops; op++) {
		struct object *o =
			&t->local[next_random(&t->rng) % LOCAL_SLOTS];
		unsigned action = (unsigned)(next_random(&t->rng) % 100);

		if (o->p == NULL) {
			if (action < 80)
				allocate(t, o);
			else
				swap_with_exchange(t, o);
		} else if (action < 40) {
			release(t, o);
		} else if (action < 65) {
			reallocate(t, o);
		} else {
			swap_with_exchange(t, o);
		}
	}
	for (size_t i = 0; i < LOCAL_SLOTS; i++)
		if (t->local[i].p != NULL)
			release(t, &t->local[i]);
	return NULL;
}

int main(int argc, char **argv)
{
	long ops = argc > 1 ? strtol(argv[1], NULL, 10) : 150000;
	uint64_t seed = argc > 2 ? strtoull(argv[2], NULL, 0) : 0x5EED;

	probe_report_allocator();
	CHECK(ops > 0, "bad op count %s", argv[1]);
	for (int i = 0; i < THREADS; i++) {
		threads[i].index = i;
		threads[i].ops = ops;
		threads[i].rng = (seed + 1) * 0x9E3779B97F4A7C15ull + (uint64_t)i * 0xD1B54A32D192ED03ull;
		if (threads[i].rng == 0)
			threads[i].rng = 1;
		CHECK(pthread_create(&threads[i].thread, NULL, run,
				     &threads[i]) == 0,
		      "pthread_create");
	}
	long allocations = 0, frees = 0, reallocs = 0, sends = 0;
	long foreign_frees = 0, foreign_reallocs = 0;
	for (int i = 0; i < THREADS; i++) {
		CHECK(pthread_join(threads[i].thread, NULL) == 0,
		      "pthread_join");
		allocations += threads[i].allocations;
		frees += threads[i].frees;
		reallocs += threads[i].reallocs;
		sends += threads[i].sends;
		foreign_frees += threads[i].foreign_frees;
		foreign_reallocs += threads[i].foreign_reallocs;
	}
	/* The main thread frees what is left in the exchange. */
	struct thread_state leftovers = { .index = THREADS };
	for (size_t i = 0; i < EXCHANGE_SLOTS; i++)
		if (exchange[i].p != NULL)
			release(&leftovers, &exchange[i]);
	frees += leftovers.frees;
	foreign_frees += leftovers.foreign_frees;

	printf("malloc_stress: threads=%d ops=%ld seed=%#llx allocations=%ld "
	       "frees=%ld reallocs=%ld exchanges=%ld cross_thread_frees=%ld "
	       "cross_thread_reallocs=%ld\n",
	       THREADS, ops, (unsigned long long)seed, allocations, frees,
	       reallocs, sends, foreign_frees, foreign_reallocs);
	CHECK(allocations == frees, "%ld allocations but %ld frees",
	      allocations, frees);
	CHECK(foreign_frees > 0 && foreign_reallocs > 0,
	      "no object crossed threads");
	printf("malloc_stress: ok\n");
	return 0;
}
