/*
 * misuse CASE: one heap misuse per case, of the malloc API or the class
 * API, for tests/misuse.rs. Linked against libslitter.so (so malloc is
 * slitter's too). Prints "ptr=<address>" (the address the report must
 * name) just before the misuse, then commits it; slitter must kill the
 * process (SIGABRT after one `slitter:` line, or SIGSEGV on a guard page or
 * inaccessible memory). Exits 0 only if the misuse went unnoticed, or was
 * reported and survived under SLITTER_CONTINUE_ON_MISUSE=1 (then it checks
 * that the allocator still works, check_sound, and prints "survived"); 2
 * for an unknown case, 1 if the set-up or that check failed.
 */
#define _GNU_SOURCE
#include <malloc.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "slitter.h"

/* Using pointers after free is what this program is for. */
#pragma GCC diagnostic ignored "-Wuse-after-free"

#define TEST_NAME "misuse"
#include "test_support.h"

DEFINE_SLITTER_CLASS(apple_class, .name = "misuse-apple", .size = 32);
DEFINE_SLITTER_CLASS(banana_class, .name = "misuse-banana", .size = 32);
DEFINE_SLITTER_CLASS(melon_class, .name = "misuse-melon", .size = 200);
/* A class whose wholly free spans are purged. */
DEFINE_SLITTER_CLASS(cherry_class, .name = "misuse-cherry", .size = 64,
		     .purge = 1);

void free_sized(void *ptr, size_t size);
void free_aligned_sized(void *ptr, size_t align, size_t size);

/* Hides where a pointer comes from, so the compiler neither warns about
 * the misuse nor optimises it away. */
static void *launder(void *p)
{
	__asm__ volatile("" : "+r"(p) : : "memory");
	return p;
}

static void tell(const void *p)
{
	printf("ptr=%p\n", p);
	fflush(stdout);
}

static long a_global;

/* Thousands of unrelated allocations and frees, of both APIs. */
static void churn(void)
{
	enum { SLOTS = 512 };
	static void *slots[SLOTS];
	uint64_t seed = 42;
	for (int i = 0; i < 20000; i++) {
		uint64_t r = next_random(&seed);
		void **slot = &slots[r % SLOTS];
		if (*slot) {
			free(*slot);
			*slot = NULL;
		} else {
			*slot = malloc(1 + (r >> 32) % 4096);
			CHECK(*slot != NULL, "malloc failed");
		}
		void *object = slitter_allocate(apple_class);
		slitter_release(apple_class, object);
	}
	for (int i = 0; i < SLOTS; i++)
		free(slots[i]);
}

/* An address in unmapped memory. */
static void *unmapped_address(void)
{
	void *p = mmap(NULL, 1 << 20, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED, "mmap failed");
	CHECK(munmap(p, 1 << 20) == 0, "munmap failed");
	return (char *)p + 4096;
}

/* Whether the page holding p is resident. */
static bool resident(const void *p)
{
	uintptr_t page = (uintptr_t)p & ~(uintptr_t)(sysconf(_SC_PAGESIZE) - 1);
	unsigned char v;
	CHECK(mincore((void *)page, 1, &v) == 0, "mincore failed");
	return v & 1;
}

/* 64-byte objects enough for three spans (of 1 MiB, or 64 KiB with the
 * small test constants), each written then freed (released); the one in
 * the middle is in a span that held only these, wholly free now. */
enum { PURGED_OBJECTS = 3 << 14 };
static void *purged_objects[PURGED_OBJECTS];

static char *freed_spans_of_malloc_64(void)
{
	for (int i = 0; i < PURGED_OBJECTS; i++) {
		purged_objects[i] = malloc(64);
		CHECK(purged_objects[i] != NULL, "malloc failed");
		memset(purged_objects[i], 0xab, 64);
	}
	for (int i = 0; i < PURGED_OBJECTS; i++)
		free(launder(purged_objects[i]));
	return launder(purged_objects[PURGED_OBJECTS / 2]);
}

static char *released_spans_of_cherry(void)
{
	for (int i = 0; i < PURGED_OBJECTS; i++) {
		purged_objects[i] = slitter_allocate(cherry_class);
		memset(purged_objects[i], 0xab, 64);
	}
	for (int i = 0; i < PURGED_OBJECTS; i++)
		slitter_release(cherry_class, purged_objects[i]);
	return launder(purged_objects[PURGED_OBJECTS / 2]);
}

/* Run with SLITTER_PURGE_DELAY=0: slow paths of another class, which
 * purge wholly free spans, until p's page is gone. */
static void wait_for_the_purge_of(const void *p)
{
	static void *v[1000];
	for (int round = 0; round < 100 && resident(p); round++) {
		for (int i = 0; i < 1000; i++)
			v[i] = malloc(200);
		for (int i = 0; i < 1000; i++)
			free(v[i]);
	}
}

static void *free_in_thread(void *p)
{
	free(p);
	return NULL;
}

static void *release_in_thread(void *p)
{
	slitter_release(apple_class, p);
	return NULL;
}

static void run_in_thread(void *(*body)(void *), void *arg)
{
	pthread_t thread;
	CHECK(pthread_create(&thread, NULL, body, arg) == 0, "pthread_create");
	CHECK(pthread_join(thread, NULL) == 0, "pthread_join");
}

/*
 * The double-free race (case harden-double-free-race): in each of
 * RACE_ROUNDS rounds, the main thread and a helper free the same object
 * at (nearly) the same instant, each after a delay that varies from round
 * to round, so that over the rounds the two frees overlap in every way,
 * down to both passing the liveness check together. Every round's second
 * free must be reported.
 */
enum { RACE_ROUNDS = 20000 };
static void *_Atomic race_object;
/* Arrivals at race_meet, two per meeting; each thread counts its own. */
static atomic_uint race_arrivals;

/* Waits until both threads arrived at their *met-th meeting. */
static void race_meet(unsigned *met)
{
	*met += 1;
	atomic_fetch_add(&race_arrivals, 1);
	while (atomic_load(&race_arrivals) < 2 * *met)
		;
}

/* Spins for a number of iterations from 0 to 63 that varies with n. */
static void race_delay(unsigned n)
{
	for (volatile unsigned i = 0; i < n % 64; i++)
		;
}

static void *race_helper(void *arg)
{
	unsigned met = 0;
	for (unsigned r = 0; r < RACE_ROUNDS; r++) {
		race_meet(&met);
		void *p = atomic_load(&race_object);
		race_delay(r * 7);
		free(p);
		race_meet(&met);
	}
	return arg;
}

static void race_double_frees(void)
{
	pthread_t helper;
	CHECK(pthread_create(&helper, NULL, race_helper, NULL) == 0,
	      "pthread_create");
	unsigned met = 0;
	for (unsigned r = 0; r < RACE_ROUNDS; r++) {
		void *p = launder(malloc(48));
		CHECK(p != NULL, "malloc");
		if (r == 0)
			tell(p);
		atomic_store(&race_object, p);
		race_meet(&met);
		race_delay(r * 3);
		free(p);
		race_meet(&met);
	}
	CHECK(pthread_join(helper, NULL) == 0, "pthread_join");
	printf("rounds=%d\n", RACE_ROUNDS);
}

/* Allocates and frees EXIT_OBJECTS objects of 1000 bytes, then exits. */
enum { EXIT_OBJECTS = 300, EXIT_THREADS = 4 };
static void *free_then_exit(void *arg)
{
	static char *objects[EXIT_THREADS][EXIT_OBJECTS];
	char **mine = objects[(intptr_t)arg];
	for (int i = 0; i < EXIT_OBJECTS; i++) {
		mine[i] = malloc(1000);
		CHECK(mine[i] != NULL, "malloc");
	}
	for (int i = 0; i < EXIT_OBJECTS; i++)
		free(mine[i]);
	return NULL;
}

/* Live objects of every class, as the statistics count them. */
static uint64_t live_objects(void)
{
	struct slitter_stats stats = { .size = sizeof(stats) };
	CHECK(slitter_stats(&stats) == 0, "slitter_stats");
	return stats.live;
}

/* A large allocation, its usable size in *size. */
static char *large(size_t *size)
{
	*size = 100000;
	char *p = malloc(*size);
	CHECK(p != NULL, "malloc failed");
	return launder(p);
}

static int malloc_case(const char *c)
{
	long local = 0;
	size_t size;
	if (strcmp(c, "free-stack") == 0) {
		void *p = launder(&local);
		tell(p);
		free(p);
	} else if (strcmp(c, "free-global") == 0) {
		void *p = launder(&a_global);
		tell(p);
		free(p);
	} else if (strcmp(c, "free-private-mmap") == 0) {
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
		CHECK(p != MAP_FAILED, "mmap failed");
		tell(p);
		free(launder(p));
	} else if (strcmp(c, "free-unmapped") == 0) {
		void *p = unmapped_address();
		tell(p);
		free(p);
	} else if (strcmp(c, "free-null-plus-one") == 0) {
		void *p = launder((char *)NULL + 1);
		tell(p);
		free(p);
	} else if (strcmp(c, "free-plus-1") == 0) {
		char *p = launder(malloc(64));
		tell(p + 1);
		free(p + 1);
	} else if (strcmp(c, "free-plus-16") == 0) {
		char *p = launder(malloc(64));
		tell(p + 16);
		free(p + 16);
	} else if (strcmp(c, "free-large-plus-4096") == 0) {
		char *p = launder(malloc(1 << 20));
		tell(p + 4096);
		free(p + 4096);
	} else if (strcmp(c, "double-free") == 0) {
		void *p = launder(malloc(48));
		tell(p);
		free(p);
		free(launder(p));
	} else if (strcmp(c, "double-free-delayed") == 0) {
		void *a = launder(malloc(48)), *b = launder(malloc(48));
		tell(a);
		free(a);
		free(b);
		free(launder(a));
	} else if (strcmp(c, "double-free-after-churn") == 0) {
		void *p = launder(malloc(48));
		tell(p);
		free(p);
		churn();
		free(launder(p));
	} else if (strcmp(c, "double-free-other-thread") == 0) {
		void *p = launder(malloc(48));
		tell(p);
		run_in_thread(free_in_thread, p);
		free(launder(p));
	} else if (strcmp(c, "double-free-purged") == 0) {
		/* malloc_trim purges the object's span: its states read "no
		 * object", and the free is refused. */
		char *p = freed_spans_of_malloc_64();
		CHECK(malloc_trim(0) == 1, "malloc_trim released nothing");
		CHECK(!resident(p), "the span of %p was not purged", (void *)p);
		tell(p);
		free(launder(p));
	} else if (strcmp(c, "double-free-purged-decay") == 0) {
		/* Run with SLITTER_PURGE_DELAY=0: the same, purged by the
		 * decay. */
		char *p = freed_spans_of_malloc_64();
		wait_for_the_purge_of(p);
		CHECK(!resident(p), "the span of %p was not purged", (void *)p);
		tell(p);
		free(launder(p));
	} else if (strcmp(c, "free-inside-freed-large") == 0) {
		/* Freed, the block is kept for reuse: not live. */
		char *p = launder(malloc(1 << 20));
		free(p);
		tell(p + 4096);
		free(p + 4096);
	} else if (strcmp(c, "double-free-large-guarded") == 0) {
		char *p = launder(malloc(2 << 20));
		tell(p);
		free(p);
		free(launder(p));
	} else if (strcmp(c, "double-free-large") == 0) {
		char *p = large(&size);
		tell(p);
		free(p);
		free(launder(p));
	} else if (strcmp(c, "double-free-large-delayed") == 0) {
		char *p = large(&size);
		tell(p);
		free(p);
		churn();
		char *q = large(&size);
		free(q);
		free(launder(p));
	} else if (strcmp(c, "double-free-large-other-thread") == 0) {
		char *p = large(&size);
		tell(p);
		run_in_thread(free_in_thread, p);
		free(launder(p));
	} else if (strcmp(c, "stale-after-realloc") == 0) {
		char *p = launder(malloc(20));
		char *q = realloc(p, 2000);
		CHECK(q != NULL && q != p, "realloc did not move");
		tell(p);
		free(launder(p));
	} else if (strcmp(c, "stale-after-large-realloc") == 0) {
		/* A block with another just above it cannot grow in place:
		 * try until realloc moves one. */
		char *p = NULL, *q = NULL;
		for (int i = 0; i < 64 && q == p; i++) {
			p = large(&size);
			CHECK(malloc(size) != NULL, "malloc failed");
			q = realloc(p, 8 << 20);
			CHECK(q != NULL, "realloc failed");
		}
		CHECK(q != p, "realloc never moved");
		tell(p);
		free(launder(p));
	} else if (strcmp(c, "realloc-freed") == 0) {
		void *p = launder(malloc(48));
		tell(p);
		free(p);
		void *volatile r = realloc(launder(p), 100);
		(void)r;
	} else if (strcmp(c, "realloc-interior") == 0) {
		char *p = launder(malloc(64));
		tell(p + 16);
		void *volatile r = realloc(p + 16, 100);
		(void)r;
	} else if (strcmp(c, "realloc-stack") == 0) {
		void *p = launder(&local);
		tell(p);
		void *volatile r = realloc(p, 100);
		(void)r;
	} else if (strcmp(c, "usable-size-freed") == 0) {
		void *p = launder(malloc(48));
		tell(p);
		free(p);
		printf("%zu\n", malloc_usable_size(launder(p)));
	} else if (strcmp(c, "usable-size-interior") == 0) {
		char *p = launder(malloc(64));
		tell(p + 8);
		printf("%zu\n", malloc_usable_size(p + 8));
	} else if (strcmp(c, "usable-size-stack") == 0) {
		void *p = launder(&local);
		tell(p);
		printf("%zu\n", malloc_usable_size(p));
	} else if (strcmp(c, "usable-size-large-freed") == 0) {
		char *p = large(&size);
		tell(p);
		free(p);
		printf("%zu\n", malloc_usable_size(launder(p)));
	} else if (strcmp(c, "free-class-object") == 0) {
		void *p = launder(slitter_allocate(apple_class));
		tell(p);
		free(p);
	} else if (strcmp(c, "free-sized-larger") == 0) {
		void *p = launder(malloc(100));
		tell(p);
		free_sized(p, 1000);
	} else if (strcmp(c, "free-sized-smaller") == 0) {
		void *p = launder(malloc(100));
		tell(p);
		free_sized(p, 16);
	} else if (strcmp(c, "free-sized-large") == 0) {
		char *p = large(&size);
		tell(p);
		free_sized(p, 100);
	} else if (strcmp(c, "free-sized-freed") == 0) {
		void *p = launder(malloc(100));
		tell(p);
		free(p);
		free_sized(launder(p), 100);
	} else if (strcmp(c, "free-aligned-sized") == 0) {
		void *p = launder(aligned_alloc(64, 256));
		tell(p);
		free_aligned_sized(p, 64, 64);
	} else if (strcmp(c, "free-aligned-sized-alignment") == 0) {
		void *p = launder(aligned_alloc(4096, 4096));
		tell(p);
		free_aligned_sized(p, 16, 4096 * 3);
	} else if (strcmp(c, "large-write-past-end") == 0) {
		/* 1 MiB and more: a block with guard pages of its own (smaller
		 * ones share a group, guarded at its ends only). */
		size = 1 << 20;
		char *p = launder(malloc(size));
		tell(p + size);
		p[size] = 1;
	} else if (strcmp(c, "large-small-write-past-end") == 0) {
		/* Under 1 MiB, blocks with mprotect guards share groups
		 * guarded at their ends: the second block lies below the
		 * first, so a write past its end faults only where every
		 * block has guards of its own (SLITTER_HARDEN=1, or
		 * MADV_GUARD_INSTALL). */
		size = 64 * 1024;
		char *a = launder(malloc(size));
		char *p = launder(malloc(size));
		CHECK(a != NULL && p != NULL, "malloc failed");
		tell(p + size);
		p[size] = 1;
		printf("survived\n");
	} else if (strcmp(c, "large-write-before-start") == 0) {
		/* The page holds slack before p: caught when p is freed. */
		char *p = large(&size);
		tell(p);
		((volatile char *)p)[-1] = 1;
		free(p);
	} else if (strcmp(c, "large-page-write-before-start") == 0) {
		/* A whole number of pages, a size class of 1 MiB or more: p
		 * starts just after the guard. */
		char *p = launder(malloc(256 * 4096));
		tell(p - 1);
		p[-1] = 1;
	} else if (strcmp(c, "large-read-after-free") == 0) {
		char *p = large(&size);
		p[0] = 1;
		free(p);
		tell(p);
		printf("read %d\n", ((volatile char *)p)[0]);
	} else if (strcmp(c, "large-write-after-free-reuse") == 0) {
		/* Where a freed block is reused at once, q is p and the write
		 * lands in it unseen. */
		char *p = large(&size);
		free(p);
		char *q = launder(malloc(size));
		CHECK(q != NULL, "malloc failed");
		tell(p);
		((volatile char *)p)[0] = 1;
		printf("survived\n");
	} else if (strcmp(c, "large-reuse-delay") == 0) {
		/* How many mallocs of its size until a freed block's address
		 * comes back (none of 32 frees and mallocs). */
		char *p = large(&size);
		free(p);
		int reused = -1;
		for (int i = 0; i < 32 && reused < 0; i++) {
			char *q = launder(malloc(size));
			CHECK(q != NULL, "malloc failed");
			if (q == p)
				reused = i;
			free(q);
		}
		printf("reused at %d\n", reused);
	} else if (strcmp(c, "large-write-into-rounding") == 0) {
		/* The bytes up to the next multiple of 16 before the guard. */
		char *p = launder(malloc(100001));
		tell(p);
		((volatile char *)p)[100001] = 1;
		free(p);
	} else if (strcmp(c, "malloc0-read") == 0) {
		volatile char *p = launder(malloc(0));
		CHECK(p != NULL, "malloc(0) gave NULL");
		tell((void *)p);
		printf("%d\n", p[0]);
	} else if (strcmp(c, "malloc0-write") == 0) {
		volatile char *p = launder(malloc(0));
		CHECK(p != NULL, "malloc(0) gave NULL");
		tell((void *)p);
		p[0] = 1;
	} else if (strcmp(c, "harden-write-after-free") == 0) {
		/* Run with SLITTER_HARDEN=1: freed objects are zeroed, and checked
		 * when handed out again, after the quarantine let them go. */
		char *p = launder(malloc(40));
		tell(p);
		free(p);
		((volatile char *)p)[3] = 1;
		for (int i = 0; i < 20000; i++)
			free(launder(malloc(40)));
	} else if (strcmp(c, "harden-canary") == 0) {
		/* Run with SLITTER_HARDEN=1: 40 bytes plus the canary fill a
		 * 48-byte slot; writing byte 40 hits the canary. */
		char *p = launder(malloc(40));
		CHECK(malloc_usable_size(p) == 40, "usable size %zu",
		      malloc_usable_size(p));
		tell(p);
		((volatile char *)p)[40] = 1;
		free(p);
	} else if (strcmp(c, "harden-double-free-race") == 0) {
		/* Run with SLITTER_HARDEN=1: exactly one free of each round
		 * wins, the other is reported (see race_double_frees). */
		race_double_frees();
	} else if (strcmp(c, "harden-canary-ends-strings") == 0) {
		/* Run with SLITTER_HARDEN=1: a string that fills an object's
		 * usable bytes, unterminated, reads as ending there: the
		 * canary's first byte is zero. */
		for (size_t n = 1; n <= 32768 - 8; n += n / 8 + 1) {
			char *p = launder(malloc(n));
			size_t usable = malloc_usable_size(p);
			CHECK(usable >= n, "usable size %zu of %zu", usable, n);
			memset(p, 'x', usable);
			CHECK(strlen(p) == usable, "strlen %zu of %zu usable bytes",
			      strlen(p), usable);
			free(p);
		}
		printf("harden-canary-ends-strings: ok\n");
	} else if (strcmp(c, "harden-read-after-free") == 0) {
		/* Run with SLITTER_HARDEN=1: a freed small object reads as
		 * zeroes (it waits in quarantine, zeroed). */
		for (size_t n = 1; n <= 32768 - 8; n += n / 8 + 1) {
			volatile unsigned char *p = launder(malloc(n));
			size_t usable = malloc_usable_size((void *)p);
			memset((void *)p, 0xab, usable);
			free((void *)p);
			for (size_t i = 0; i < usable; i++)
				CHECK(p[i] == 0, "byte %zu of %zu read %#x after free",
				      i, n, p[i]);
		}
		printf("harden-read-after-free: ok\n");
	} else if (strcmp(c, "harden-reuse-order") == 0) {
		/* Run with SLITTER_HARDEN=1: N objects freed in order come
		 * back in no predictable order. Counts, among the objects
		 * allocated next that are some of them, how often two in a
		 * row were freed one after the other (either way round): what
		 * a first-in first-out or last-in first-out reuse gives
		 * nearly every time, and a random order almost never. */
		enum { N = 8192 };
		static char *freed[N];
		for (int i = 0; i < N; i++)
			freed[i] = malloc(64);
		for (int i = 0; i < N; i++)
			free(freed[i]);
		int reused = 0, neighbours = 0, last = -2;
		for (int i = 0; i < N; i++) {
			char *q = malloc(64);
			int at = -1;
			for (int k = 0; k < N && at < 0; k++)
				if (freed[k] == q)
					at = k;
			if (at < 0)
				continue;
			reused++;
			if (at == last + 1 || at == last - 1)
				neighbours++;
			last = at;
		}
		printf("reused=%d neighbours=%d\n", reused, neighbours);
		CHECK(reused >= N / 2, "only %d of %d freed objects reused",
		      reused, N);
		CHECK(neighbours < reused / 20,
		      "%d of %d reused objects follow their neighbour in the "
		      "order of the frees",
		      neighbours, reused);
		printf("harden-reuse-order: ok\n");
	} else if (strcmp(c, "harden-thread-exit") == 0) {
		/* Run with SLITTER_HARDEN=1: the objects a thread freed, which
		 * wait in its quarantine, are released when it exits: the
		 * statistics count them as released once the threads are gone
		 * (all but the few that glibc's thread creation keeps live). */
		uint64_t before = live_objects();
		pthread_t threads[EXIT_THREADS];
		for (intptr_t t = 0; t < EXIT_THREADS; t++)
			CHECK(pthread_create(&threads[t], NULL, free_then_exit,
					     (void *)t) == 0,
			      "pthread_create");
		for (int t = 0; t < EXIT_THREADS; t++)
			CHECK(pthread_join(threads[t], NULL) == 0, "pthread_join");
		uint64_t after = live_objects();
		printf("live before=%llu after=%llu\n", (unsigned long long)before,
		       (unsigned long long)after);
		CHECK(after < before + EXIT_OBJECTS / 10,
		      "%llu objects more live after the threads exited",
		      (unsigned long long)(after - before));
		printf("harden-thread-exit: ok\n");
	} else if (strcmp(c, "harden-correct") == 0) {
		/* Run with SLITTER_HARDEN=1: a correct program passes, freed
		 * objects are not reused at once, and reused ones (once more
		 * than the thread's quarantine holds, 1024 objects, were
		 * freed) read as zero although they were filled before their
		 * free. */
		enum { ROUNDS = 6000 };
		static char *seen[ROUNDS];
		int reused = 0;
		char *first = malloc(100);
		CHECK(first != NULL, "malloc");
		memset(first, 0xab, malloc_usable_size(first));
		free(first);
		for (int i = 0; i < ROUNDS; i++) {
			char *q = malloc(100);
			CHECK(q != NULL, "malloc (%d)", i);
			/* Not within the next thousand allocations. */
			CHECK(i >= 1000 || q != first, "reused at once (%d)", i);
			for (int k = 0; k < i; k++)
				if (seen[k] == q) {
					reused++;
					break;
				}
			seen[i] = q;
			for (size_t j = 0; j < 100; j++)
				CHECK(q[j] == 0, "byte %zu not zero", j);
			memset(q, 0xcd, 100);
			free(q);
		}
		CHECK(reused > 0, "no freed object came back in %d rounds", ROUNDS);
		/* Growth room near the top of the classes stays small, so the
		 * sized free of the realloc's size is accepted. */
		char *grown = realloc(malloc(22000), 30000);
		CHECK(grown != NULL, "realloc to 30000");
		free_sized(grown, 30000);
		printf("harden-correct: ok\n");
	} else {
		return 2;
	}
	return 0;
}

static int class_case(const char *c)
{
	long local = 0;
	if (strcmp(c, "release-other-class") == 0) {
		void *p = launder(slitter_allocate(melon_class));
		tell(p);
		slitter_release(apple_class, p);
	} else if (strcmp(c, "release-same-size-class") == 0) {
		void *p = launder(slitter_allocate(apple_class));
		tell(p);
		slitter_release(banana_class, p);
	} else if (strcmp(c, "release-malloc-pointer") == 0) {
		void *p = launder(malloc(32));
		tell(p);
		slitter_release(apple_class, p);
	} else if (strcmp(c, "release-large-malloc-pointer") == 0) {
		void *p = launder(malloc(1 << 20));
		tell(p);
		slitter_release(apple_class, p);
	} else if (strcmp(c, "release-interior") == 0) {
		char *p = launder(slitter_allocate(melon_class));
		tell(p + 8);
		slitter_release(melon_class, p + 8);
	} else if (strcmp(c, "release-stack") == 0) {
		void *p = launder(&local);
		tell(p);
		slitter_release(apple_class, p);
	} else if (strcmp(c, "release-unmapped") == 0) {
		void *p = unmapped_address();
		tell(p);
		slitter_release(apple_class, p);
	} else if (strcmp(c, "release-no-class-null") == 0) {
		/* A class handle still zero (no class): NULL is a no-op. */
		struct slitter_class none = { 0 };
		slitter_release(none, NULL);
		puts("survived");
	} else if (strcmp(c, "release-no-class-freed") == 0) {
		struct slitter_class none = { 0 };
		void *p = launder(slitter_allocate(apple_class));
		slitter_release(apple_class, p);
		tell(p);
		slitter_release(none, launder(p));
	} else if (strcmp(c, "release-no-class-stack") == 0) {
		struct slitter_class none = { 0 };
		void *p = launder(&local);
		tell(p);
		slitter_release(none, p);
	} else if (strcmp(c, "double-release") == 0) {
		void *p = launder(slitter_allocate(apple_class));
		tell(p);
		slitter_release(apple_class, p);
		slitter_release(apple_class, launder(p));
	} else if (strcmp(c, "double-release-delayed") == 0) {
		void *a = launder(slitter_allocate(apple_class));
		void *b = launder(slitter_allocate(apple_class));
		tell(a);
		slitter_release(apple_class, a);
		slitter_release(apple_class, b);
		slitter_release(apple_class, launder(a));
	} else if (strcmp(c, "double-release-after-churn") == 0) {
		void *p = launder(slitter_allocate(apple_class));
		tell(p);
		slitter_release(apple_class, p);
		churn();
		slitter_release(apple_class, launder(p));
	} else if (strcmp(c, "double-release-purged") == 0) {
		/* A class that opted in to purging, trimmed. */
		char *p = released_spans_of_cherry();
		CHECK(malloc_trim(0) == 1, "malloc_trim released nothing");
		CHECK(!resident(p), "the span of %p was not purged", (void *)p);
		tell(p);
		slitter_release(cherry_class, launder(p));
	} else if (strcmp(c, "double-release-other-thread") == 0) {
		void *p = launder(slitter_allocate(apple_class));
		tell(p);
		run_in_thread(release_in_thread, p);
		slitter_release(apple_class, launder(p));
	} else {
		return 2;
	}
	return 0;
}

/* After a misuse the program carried on from: both APIs still hand out
 * distinct memory that keeps what is written to it (an object handed out
 * twice, or a refused pointer put back on a free list, would show as one
 * object overwriting another), and free and release still work. */
static void check_sound(void)
{
	enum { OBJECTS = 2000, CLASS_OBJECTS = 100 };
	static uint64_t *objects[OBJECTS], *class_objects[CLASS_OBJECTS];
	for (uint64_t i = 0; i < OBJECTS; i++) {
		size_t size = 16 + (i * 37) % 5000 + (i % 100 == 0 ? 200000 : 0);
		objects[i] = malloc(size);
		CHECK(objects[i] != NULL, "malloc(%zu) failed", size);
		objects[i][0] = i;
	}
	for (uint64_t i = 0; i < CLASS_OBJECTS; i++) {
		class_objects[i] = slitter_allocate(apple_class);
		CHECK(class_objects[i] != NULL, "slitter_allocate failed");
		class_objects[i][0] = OBJECTS + i;
	}
	for (uint64_t i = 0; i < OBJECTS; i++)
		CHECK(objects[i][0] == i, "object %llu was overwritten",
		      (unsigned long long)i);
	for (uint64_t i = 0; i < CLASS_OBJECTS; i++) {
		CHECK(class_objects[i][0] == OBJECTS + i,
		      "class object %llu was overwritten", (unsigned long long)i);
		slitter_release(apple_class, class_objects[i]);
	}
	for (int i = 0; i < OBJECTS; i++)
		free(objects[i]);
	churn();
	puts("survived");
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	int result = strncmp(argv[1], "release", 7) == 0 ||
				     strncmp(argv[1], "double-release", 14) == 0 ?
			     class_case(argv[1]) :
			     malloc_case(argv[1]);
	if (result == 0 && getenv("SLITTER_CONTINUE_ON_MISUSE") != NULL)
		check_sound();
	return result;
}
