/*
 * The C allocation API, function by function and edge case by edge case, as
 * glibc defines it where the standard leaves room.
 *
 * tests/malloc.rs builds this without slitter and runs it under
 * LD_PRELOAD=libslitter.so, and also builds it with -lslitter. It passes
 * against glibc's own malloc too. The first line of output is the
 * allocator_probe.h line naming the object that serves malloc and free;
 * functions that may be missing (cfree, free_sized, free_aligned_sized) are
 * looked up at run time and reported as "malloc_api: skip: ..." when absent.
 * Prints "malloc_api: ok" last; a failed check prints
 * "malloc_api: FAIL file:line: ..." to stderr and exits 1.
 */
#define _GNU_SOURCE

#include <dlfcn.h>
#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <regex.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "allocator_probe.h"

#define TEST_NAME "malloc_api"
#include "test_support.h"

/* glibc's own entry points, which code inside libc and some programs call
 * directly; a replacement must provide them too. */
extern void *__libc_malloc(size_t size);
extern void __libc_free(void *ptr);
extern void *__libc_calloc(size_t nmemb, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);

/* Not declared by glibc's headers (cfree left the API in glibc 2.26; the
 * C23 sized frees arrived after glibc 2.36): weak, so the program links
 * without them and finds them at run time when some library defines them. */
extern void cfree(void *ptr) __attribute__((weak));
extern void free_sized(void *ptr, size_t size) __attribute__((weak));
extern void free_aligned_sized(void *ptr, size_t alignment, size_t size)
	__attribute__((weak));

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)

static size_t page_size;

/* Hides a value from the optimiser: no constant folding of sizes (and no
 * -Walloc-size-larger-than errors for the deliberately huge ones). */
static size_t opaque(size_t n)
{
	__asm__ volatile("" : "+r"(n));
	return n;
}

/* Makes the compiler believe `p` is used, so no malloc/free pair is elided. */
static void escape(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

/* The address of `p` as an integer the compiler cannot trace back to p (so
 * comparing it with realloc's result raises no -Wuse-after-free). */
static uintptr_t address_of(const void *p)
{
	uintptr_t address = (uintptr_t)p;
	__asm__ volatile("" : "+r"(address));
	return address;
}

static bool aligned_to(const void *p, size_t alignment)
{
	return ((uintptr_t)p & (alignment - 1)) == 0;
}

/* The alignment any allocation of `n` bytes must have: 16 from 16 bytes on,
 * else the largest power of two not above n (what an object of that size
 * may need). */
static size_t required_alignment(size_t n)
{
	size_t a = 1;

	if (n >= 16)
		return 16;
	while (a * 2 <= n)
		a *= 2;
	return a;
}

static size_t round_up(size_t n, size_t to)
{
	return (n + to - 1) / to * to;
}

static uint8_t pattern_byte(uint32_t seed, size_t i)
{
	return (uint8_t)(seed * 0x9E3779B1u + i * 31u + (i >> 8) * 7u +
			 (seed >> 7));
}

static void fill(void *p, size_t n, uint32_t seed)
{
	uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		b[i] = pattern_byte(seed, i);
}

/* The index of the first byte of p[0..n) that differs from the pattern of
 * `seed`, or n. */
static size_t first_mismatch(const void *p, size_t n, uint32_t seed)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i] != pattern_byte(seed, i))
			return i;
	return n;
}

#define CHECK_PATTERN(p, n, seed)                                             \
	do {                                                                  \
		size_t at_ = first_mismatch((p), (n), (seed));                \
		CHECK(at_ == (size_t)(n),                                     \
		      "%p: byte %zu of %zu lost its contents", (void *)(p),   \
		      at_, (size_t)(n));                                      \
	} while (0)

static bool all_zero(const void *p, size_t n)
{
	const uint8_t *b = p;
	for (size_t i = 0; i < n; i++)
		if (b[i] != 0)
			return false;
	return true;
}

/*
 * Checks a fresh allocation of `n` bytes: not NULL, aligned to `alignment`
 * (and to what its size requires), usable size at least n, and all of the
 * usable size writable. Returns the usable size.
 */
static size_t check_fresh(const char *what, void *p, size_t n,
			  size_t alignment)
{
	CHECK(p != NULL, "%s(%zu) returned NULL", what, n);
	CHECK(aligned_to(p, required_alignment(n)),
	      "%s(%zu) = %p is not %zu-aligned", what, n, p,
	      required_alignment(n));
	CHECK(aligned_to(p, alignment), "%s(%zu) = %p is not %zu-aligned",
	      what, n, p, alignment);
	size_t usable = malloc_usable_size(p);
	CHECK(usable >= n, "%s(%zu) = %p has usable size %zu", what, n, p,
	      usable);
	memset(p, 0xA5, usable);
	escape(p);
	return usable;
}

/* ---- malloc(0), free(NULL) ------------------------------------------- */

static void test_zero_sizes(void)
{
	enum { COUNT = 64 };
	void *ptrs[COUNT];

	for (int i = 0; i < COUNT; i++) {
		ptrs[i] = malloc(opaque(0));
		CHECK(ptrs[i] != NULL, "malloc(0) returned NULL");
		for (int j = 0; j < i; j++)
			CHECK(ptrs[i] != ptrs[j],
			      "malloc(0) returned %p twice while live",
			      ptrs[i]);
		memset(ptrs[i], 0x5A, malloc_usable_size(ptrs[i]));
	}
	for (int i = 0; i < COUNT; i++)
		free(ptrs[i]);

	void *p = calloc(opaque(0), 16);
	CHECK(p != NULL, "calloc(0, 16) returned NULL");
	free(p);
	p = calloc(16, opaque(0));
	CHECK(p != NULL, "calloc(16, 0) returned NULL");
	free(p);
	p = realloc(NULL, opaque(0));
	CHECK(p != NULL, "realloc(NULL, 0) returned NULL");
	free(p);

	free(NULL);
	free(NULL);
	CHECK(malloc_usable_size(NULL) == 0,
	      "malloc_usable_size(NULL) = %zu", malloc_usable_size(NULL));
}

/* ---- sizes, alignment, usable size --------------------------------- */

/* Appends to `sizes` every size from 1 to 1024, then around every power of
 * two up to 4 MiB; returns the count. */
static size_t size_table(size_t *sizes, size_t capacity)
{
	size_t count = 0;

	for (size_t n = 1; n <= 1024; n++)
		sizes[count++] = n;
	for (size_t base = 1024; base <= 4 * MIB; base *= 2) {
		const size_t above[] = { 1,	   8,	     15,       16,
					 17,	   base / 8, base / 4, base / 3,
					 base / 2, base / 2 + 8, 3 * base / 4 };
		const size_t below[] = { 17, 16, 1, 0 };

		for (size_t i = 0; i < sizeof(below) / sizeof(below[0]); i++) {
			CHECK(count < capacity, "size table overflow");
			sizes[count++] = base - below[i];
		}
		for (size_t i = 0; i < sizeof(above) / sizeof(above[0]); i++) {
			CHECK(count < capacity, "size table overflow");
			if (base + above[i] <= 4 * MIB)
				sizes[count++] = base + above[i];
		}
	}
	return count;
}

static void test_alignment_table(void)
{
	enum { LIVE = 16 };
	static size_t sizes[2048];
	size_t count = size_table(sizes, sizeof(sizes) / sizeof(sizes[0]));
	struct {
		void *p;
		size_t usable;
		uint32_t seed;
	} live[LIVE] = { { 0 } };

	for (size_t i = 0; i < count; i++) {
		size_t n = sizes[i];
		size_t slot = i % LIVE;

		if (live[slot].p != NULL) {
			CHECK_PATTERN(live[slot].p, live[slot].usable,
				      live[slot].seed);
			free(live[slot].p);
		}
		void *p = malloc(opaque(n));
		size_t usable = check_fresh("malloc", p, n, 1);
		/* Live objects never overlap: each keeps its own pattern
		 * over its whole usable size until freed. */
		fill(p, usable, (uint32_t)i);
		live[slot].p = p;
		live[slot].usable = usable;
		live[slot].seed = (uint32_t)i;
	}
	for (size_t slot = 0; slot < LIVE; slot++) {
		CHECK_PATTERN(live[slot].p, live[slot].usable,
			      live[slot].seed);
		free(live[slot].p);
	}
}

/* Many live objects of mixed sizes, each filled over its usable size, all
 * checked: no two overlap and no usable size reaches into a neighbour. */
static void test_neighbours(void)
{
	enum { COUNT = 3000 };
	static void *ptrs[COUNT];
	static size_t usable[COUNT];
	uint64_t state = 0x2545F4914F6CDD1Dull;

	for (size_t i = 0; i < COUNT; i++) {
		state ^= state << 13;
		state ^= state >> 7;
		state ^= state << 17;
		size_t n = (state >> 11) % 4 == 0 ? state % (64 * KIB)
						   : state % 512;
		ptrs[i] = malloc(opaque(n));
		usable[i] = check_fresh("malloc", ptrs[i], n, 1);
		fill(ptrs[i], usable[i], (uint32_t)i);
	}
	for (size_t i = 0; i < COUNT; i++)
		CHECK_PATTERN(ptrs[i], usable[i], (uint32_t)i);
	/* Free in a scrambled order. */
	for (size_t k = 0; k < COUNT; k++) {
		size_t i = (k * 7919) % COUNT;
		CHECK_PATTERN(ptrs[i], usable[i], (uint32_t)i);
		free(ptrs[i]);
	}
}

/* ---- calloc ----------------------------------------------------------- */

static void test_calloc(void)
{
	static const size_t sizes[] = { 1,	  8,	    16,	       24,
					100,	  128,	    1000,      4096,
					5000,	  40000,    200 * KIB, 1 * MIB,
					3 * MIB + 5 };

	/* Zeroed, also when the memory was used and dirtied before. */
	for (int round = 0; round < 4; round++) {
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			size_t n = sizes[i];
			void *dirty = malloc(opaque(n));
			CHECK(dirty != NULL, "malloc(%zu) returned NULL", n);
			memset(dirty, 0xEE, malloc_usable_size(dirty));
			escape(dirty);
			free(dirty);

			unsigned char *p = calloc(1, opaque(n));
			CHECK(p != NULL, "calloc(1, %zu) returned NULL", n);
			CHECK(all_zero(p, n), "calloc(1, %zu) = %p not zeroed",
			      n, (void *)p);
			CHECK(aligned_to(p, required_alignment(n)),
			      "calloc(1, %zu) = %p misaligned", n, (void *)p);
			CHECK(malloc_usable_size(p) >= n,
			      "calloc(1, %zu): usable size %zu", n,
			      malloc_usable_size(p));
			memset(p, 0xEE, malloc_usable_size(p));
			free(p);

			/* The same total as an array. */
			size_t count = n / 8 + 1;
			p = calloc(opaque(count), 8);
			CHECK(p != NULL, "calloc(%zu, 8) returned NULL", count);
			CHECK(all_zero(p, count * 8),
			      "calloc(%zu, 8) not zeroed", count);
			free(p);
		}
	}

	/* Overflow of nmemb * size: NULL and ENOMEM, never an abort. */
	const size_t overflows[][2] = {
		{ SIZE_MAX, 2 },
		{ 2, SIZE_MAX },
		{ (size_t)1 << 32, (size_t)1 << 32 },
		{ SIZE_MAX / 16 + 1, 16 },
		{ SIZE_MAX, SIZE_MAX },
	};
	for (size_t i = 0; i < sizeof(overflows) / sizeof(overflows[0]); i++) {
		errno = 0;
		void *p = calloc(opaque(overflows[i][0]),
				 opaque(overflows[i][1]));
		CHECK(p == NULL, "calloc(%zu, %zu) overflowed into %p",
		      overflows[i][0], overflows[i][1], p);
		CHECK(errno == ENOMEM, "calloc(%zu, %zu): errno %d, not ENOMEM",
		      overflows[i][0], overflows[i][1], errno);
	}
	/* No overflow, just too big. */
	errno = 0;
	CHECK(calloc(1, opaque(SIZE_MAX / 2)) == NULL,
	      "calloc(1, SIZE_MAX / 2) succeeded");
	CHECK(errno == ENOMEM, "calloc(1, SIZE_MAX / 2): errno %d", errno);
}

/* ---- huge requests ------------------------------------------------- */

static void test_huge(void)
{
	const size_t huge[] = {
		SIZE_MAX,	   SIZE_MAX - 1,      SIZE_MAX - 4095,
		SIZE_MAX - 65536,  SIZE_MAX / 2 + 1,  SIZE_MAX / 2,
		(size_t)PTRDIFF_MAX - 4096,	      (size_t)1 << 62,
	};

	for (size_t i = 0; i < sizeof(huge) / sizeof(huge[0]); i++) {
		size_t n = huge[i];

		errno = 0;
		CHECK(malloc(opaque(n)) == NULL, "malloc(%zu) succeeded", n);
		CHECK(errno == ENOMEM, "malloc(%zu): errno %d", n, errno);

		errno = 0;
		CHECK(aligned_alloc(64, opaque(n)) == NULL,
		      "aligned_alloc(64, %zu) succeeded", n);
		CHECK(errno == ENOMEM, "aligned_alloc(64, %zu): errno %d", n,
		      errno);

		errno = 0;
		CHECK(memalign(4096, opaque(n)) == NULL,
		      "memalign(4096, %zu) succeeded", n);
		CHECK(errno == ENOMEM, "memalign(4096, %zu): errno %d", n,
		      errno);

		errno = 0;
		CHECK(valloc(opaque(n)) == NULL, "valloc(%zu) succeeded", n);
		CHECK(errno == ENOMEM, "valloc(%zu): errno %d", n, errno);

		/* pvalloc rounds up to a page: must not wrap around. */
		errno = 0;
		CHECK(pvalloc(opaque(n)) == NULL, "pvalloc(%zu) succeeded", n);
		CHECK(errno == ENOMEM, "pvalloc(%zu): errno %d", n, errno);

		void *sentinel = (void *)(uintptr_t)0xDEADBEEF;
		void *out = sentinel;
		int ret = posix_memalign(&out, 64, opaque(n));
		CHECK(ret == ENOMEM, "posix_memalign(64, %zu) returned %d", n,
		      ret);
		CHECK(out == sentinel,
		      "posix_memalign(64, %zu) failed but wrote %p", n, out);

		/* A failed realloc leaves the block alone. */
		unsigned char *p = malloc(100);
		CHECK(p != NULL, "malloc(100) returned NULL");
		fill(p, 100, 77);
		errno = 0;
		CHECK(realloc(p, opaque(n)) == NULL,
		      "realloc(p, %zu) succeeded", n);
		CHECK(errno == ENOMEM, "realloc(p, %zu): errno %d", n, errno);
		CHECK_PATTERN(p, 100, 77);
		free(p);
	}
}

/* ---- reallocarray -------------------------------------------------- */

static void test_reallocarray(void)
{
	int *a = reallocarray(NULL, opaque(10), sizeof(int));
	CHECK(a != NULL, "reallocarray(NULL, 10, 4) returned NULL");
	for (int i = 0; i < 10; i++)
		a[i] = i * i;
	a = reallocarray(a, opaque(100000), sizeof(int));
	CHECK(a != NULL, "reallocarray(a, 100000, 4) returned NULL");
	for (int i = 0; i < 10; i++)
		CHECK(a[i] == i * i, "reallocarray lost a[%d] = %d", i, a[i]);
	for (int i = 10; i < 100000; i++)
		a[i] = i;

	const size_t overflows[][2] = {
		{ SIZE_MAX / 2, 3 },
		{ SIZE_MAX, SIZE_MAX },
		{ (size_t)1 << 33, (size_t)1 << 33 },
	};
	for (size_t i = 0; i < sizeof(overflows) / sizeof(overflows[0]); i++) {
		errno = 0;
		void *p = reallocarray(a, opaque(overflows[i][0]),
				       opaque(overflows[i][1]));
		CHECK(p == NULL, "reallocarray(a, %zu, %zu) overflowed to %p",
		      overflows[i][0], overflows[i][1], p);
		CHECK(errno == ENOMEM, "reallocarray(a, %zu, %zu): errno %d",
		      overflows[i][0], overflows[i][1], errno);
		errno = 0;
		p = reallocarray(NULL, opaque(overflows[i][0]),
				 opaque(overflows[i][1]));
		CHECK(p == NULL && errno == ENOMEM,
		      "reallocarray(NULL, %zu, %zu) = %p, errno %d",
		      overflows[i][0], overflows[i][1], p, errno);
	}
	for (int i = 0; i < 100000; i++)
		CHECK(a[i] == (i < 10 ? i * i : i),
		      "a failed reallocarray changed a[%d]", i);
	free(a);
}

/* ---- posix_memalign, aligned_alloc, memalign, valloc, pvalloc ------ */

static void test_posix_memalign(void)
{
	const size_t invalid[] = { 0,  1,  2,  3,  4,	 5,	6,
				   12, 24, 40, 48, 100, 4097, (size_t)3 << 20,
				   SIZE_MAX, SIZE_MAX / 2 + 1 + 8 };
	void *sentinel = (void *)(uintptr_t)0x1234567;

	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		void *out = sentinel;
		int ret = posix_memalign(&out, opaque(invalid[i]), 64);
		CHECK(ret == EINVAL,
		      "posix_memalign(alignment %zu) returned %d, not EINVAL",
		      invalid[i], ret);
		CHECK(out == sentinel,
		      "posix_memalign(alignment %zu) failed but wrote %p",
		      invalid[i], out);
	}

	for (size_t alignment = sizeof(void *); alignment <= MIB;
	     alignment *= 2) {
		const size_t sizes[] = { 0,
					 1,
					 8,
					 alignment - 1,
					 alignment,
					 alignment + 1,
					 100,
					 5000,
					 3 * alignment + 24,
					 100 * KIB };
		enum { N = sizeof(sizes) / sizeof(sizes[0]) };
		void *ptrs[N];
		size_t usable[N];

		for (size_t i = 0; i < N; i++) {
			void *out = sentinel;
			int ret = posix_memalign(&out, opaque(alignment),
						 opaque(sizes[i]));
			CHECK(ret == 0, "posix_memalign(%zu, %zu) returned %d",
			      alignment, sizes[i], ret);
			CHECK(out != sentinel && out != NULL,
			      "posix_memalign(%zu, %zu) gave %p", alignment,
			      sizes[i], out);
			usable[i] = check_fresh("posix_memalign", out, sizes[i],
						alignment);
			fill(out, usable[i], (uint32_t)(alignment + i));
			ptrs[i] = out;
		}
		for (size_t i = 0; i < N; i++) {
			CHECK_PATTERN(ptrs[i], usable[i],
				      (uint32_t)(alignment + i));
			free(ptrs[i]);
		}
	}
}

static void test_aligned_alloc_and_memalign(void)
{
	for (size_t alignment = 1; alignment <= MIB; alignment *= 2) {
		/* Multiples of the alignment (C11) and not (C17). */
		const size_t sizes[] = { alignment, 2 * alignment, 1, 100,
					 alignment + 8, 3 * alignment + 1 };
		for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
			size_t n = sizes[i];
			void *p = aligned_alloc(opaque(alignment), opaque(n));
			check_fresh("aligned_alloc", p, n, alignment);
			void *q = memalign(opaque(alignment), opaque(n));
			check_fresh("memalign", q, n, alignment);
			void *r = __libc_memalign(opaque(alignment), opaque(n));
			check_fresh("__libc_memalign", r, n, alignment);
			free(q);
			free(p);
			free(r);
		}
	}

	/* glibc rounds a memalign alignment that is not a power of two up
	 * to the next one; failing with EINVAL is also acceptable. */
	errno = 0;
	void *p = memalign(opaque(24), 100);
	if (p == NULL)
		CHECK(errno == EINVAL, "memalign(24, 100): NULL, errno %d",
		      errno);
	else
		check_fresh("memalign(24)", p, 100, 32);
	free(p);

	/* An alignment above the largest power of two is invalid (glibc:
	 * EINVAL), not a request too large. */
	const size_t invalid[] = { SIZE_MAX / 2 + 2, SIZE_MAX - 4095,
				   SIZE_MAX };
	for (size_t i = 0; i < sizeof(invalid) / sizeof(invalid[0]); i++) {
		errno = 0;
		CHECK(memalign(opaque(invalid[i]), 16) == NULL,
		      "memalign(%zu, 16) succeeded", invalid[i]);
		CHECK(errno == EINVAL, "memalign(%zu, 16): errno %d",
		      invalid[i], errno);
	}
}

static void test_valloc_pvalloc(void)
{
	const size_t sizes[] = { 1,		  100,	      page_size - 1,
				 page_size,	  page_size + 1,
				 10 * page_size + 7, 100000,  MIB + 1 };

	for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); i++) {
		size_t n = sizes[i];
		void *v = valloc(opaque(n));
		check_fresh("valloc", v, n, page_size);
		void *p = pvalloc(opaque(n));
		size_t usable = check_fresh("pvalloc", p, n, page_size);
		CHECK(usable >= round_up(n, page_size),
		      "pvalloc(%zu): usable size %zu, not a whole page count",
		      n, usable);
		free(v);
		free(p);
	}
}

/* ---- realloc --------------------------------------------------------- */

static void test_realloc_basics(void)
{
	/* realloc(NULL, n) is malloc(n). */
	void *p = realloc(NULL, opaque(100));
	check_fresh("realloc(NULL)", p, 100, 16);

	/* realloc(p, 0) frees p and returns NULL (glibc). */
	CHECK(realloc(p, opaque(0)) == NULL,
	      "realloc(p, 0) did not return NULL");
	p = malloc(opaque(5 * MIB));
	CHECK(p != NULL, "malloc(5 MiB) returned NULL");
	memset(p, 1, 5 * MIB);
	CHECK(realloc(p, opaque(0)) == NULL,
	      "realloc(large p, 0) did not return NULL");

	/* A chain of shrinks and growths keeps the common prefix. */
	const size_t chain[] = { 1,	 7,	16,	  17,	   100,
				 1000,	 4000,	5000,	  70000,   MIB,
				 3 * MIB, 100,	10,	  2 * MIB, 4 * MIB + 3,
				 64 * KIB, 24,	1 };
	size_t old = 0;
	unsigned char *q = NULL;
	for (size_t i = 0; i < sizeof(chain) / sizeof(chain[0]); i++) {
		size_t n = chain[i];
		unsigned char *r = realloc(q, opaque(n));
		CHECK(r != NULL, "realloc(q, %zu) returned NULL", n);
		CHECK(aligned_to(r, required_alignment(n)),
		      "realloc(q, %zu) = %p misaligned", n, (void *)r);
		CHECK(malloc_usable_size(r) >= n,
		      "realloc(q, %zu): usable size %zu", n,
		      malloc_usable_size(r));
		CHECK_PATTERN(r, old < n ? old : n, (uint32_t)i);
		fill(r, n, (uint32_t)i + 1);
		q = r;
		old = n;
	}
	free(q);
}

/* realloc to a size that fits the object's usable size keeps it in place. */
static void test_realloc_in_place(void)
{
	size_t sizes[600];
	size_t count = 0;

	for (size_t n = 1; n <= 2048; n += (n < 256 ? 1 : 13))
		sizes[count++] = n;
	for (size_t n = 2048; n <= 256 * KIB && count < 600; n = n * 5 / 4)
		sizes[count++] = n;

	for (size_t i = 0; i < count; i++) {
		size_t n = sizes[i];
		unsigned char *p = malloc(opaque(n));
		CHECK(p != NULL, "malloc(%zu) returned NULL", n);
		size_t usable = malloc_usable_size(p);
		fill(p, n, (uint32_t)n);
		uintptr_t where = address_of(p);

		if (n + 1 <= usable) {
			p = realloc(p, opaque(n + 1));
			CHECK((uintptr_t)p == where,
			      "realloc of a %zu-byte object (usable %zu) to "
			      "%zu moved it",
			      n, usable, n + 1);
			CHECK_PATTERN(p, n, (uint32_t)n);
		}
		p = realloc(p, opaque(usable));
		CHECK((uintptr_t)p == where,
		      "realloc of a %zu-byte object to its usable size %zu "
		      "moved it",
		      n, usable);
		CHECK_PATTERN(p, n, (uint32_t)n);
		memset(p, 0x11, usable);
		free(p);
	}

	/* The case the issue names. */
	unsigned char *p = malloc(opaque(100));
	CHECK(p != NULL, "malloc(100) returned NULL");
	fill(p, 100, 100);
	uintptr_t where = address_of(p);
	bool fits = malloc_usable_size(p) >= 101;
	p = realloc(p, opaque(101));
	CHECK(p != NULL, "realloc(p, 101) returned NULL");
	if (fits)
		CHECK((uintptr_t)p == where, "realloc(100 -> 101) moved");
	CHECK_PATTERN(p, 100, 100);
	free(p);
}

/* Large blocks grown 1 MiB -> 64 MiB and back keep their contents. */
static void test_realloc_large(void)
{
	size_t n = MIB;
	unsigned char *p = malloc(opaque(n));
	CHECK(p != NULL, "malloc(1 MiB) returned NULL");
	fill(p, n, 9);

	while (n < 64 * MIB) {
		size_t next = n * 2;
		unsigned char *q = realloc(p, opaque(next));
		CHECK(q != NULL, "realloc(%zu -> %zu) returned NULL", n, next);
		CHECK(aligned_to(q, 16), "realloc(%zu) = %p misaligned", next,
		      (void *)q);
		CHECK_PATTERN(q, MIB, 9);
		/* Only the first MiB carries the pattern; the rest of the
		 * old size holds the byte of its doubling step. */
		for (size_t at = MIB; at < n; at *= 2)
			CHECK(q[at] == (unsigned char)(at / MIB) &&
				      q[2 * at - 1] == (unsigned char)(at / MIB),
			      "realloc(%zu -> %zu) lost bytes at %zu", n,
			      next, at);
		memset(q + n, (unsigned char)(n / MIB), next - n);
		p = q;
		n = next;
	}
	while (n > MIB / 4) {
		size_t next = n / 4;
		unsigned char *q = realloc(p, opaque(next));
		CHECK(q != NULL, "realloc(%zu -> %zu) returned NULL", n, next);
		CHECK_PATTERN(q, next < MIB ? next : MIB, 9);
		p = q;
		n = next;
	}
	free(p);
}

/* ---- cfree, free_sized, free_aligned_sized ------------------------- */

/* `weak` if the program linked it, else what dlsym finds, else NULL. */
static void *resolve(void *weak, const char *name)
{
	return weak != NULL ? weak : dlsym(RTLD_DEFAULT, name);
}

static void test_sized_frees(void)
{
	void (*cfree_fn)(void *) =
		(void (*)(void *))resolve((void *)cfree, "cfree");
	void (*free_sized_fn)(void *, size_t) = (void (*)(void *, size_t))
		resolve((void *)free_sized, "free_sized");
	void (*free_aligned_sized_fn)(void *, size_t, size_t) =
		(void (*)(void *, size_t, size_t))resolve(
			(void *)free_aligned_sized, "free_aligned_sized");
	const size_t sizes[] = { 0,   1,    8,	  16,	  17,	   100,
				 256, 1000, 4096, 40000, 300000, 5 * MIB };
	enum { N = sizeof(sizes) / sizeof(sizes[0]) };

	if (cfree_fn == NULL) {
		printf("malloc_api: skip: cfree not available\n");
	} else {
		cfree_fn(NULL);
		for (size_t i = 0; i < N; i++) {
			void *p = malloc(opaque(sizes[i]));
			check_fresh("malloc", p, sizes[i], 1);
			cfree_fn(p);
		}
	}

	if (free_sized_fn == NULL) {
		printf("malloc_api: skip: free_sized not available\n");
	} else {
		free_sized_fn(NULL, 0);
		for (int round = 0; round < 50; round++) {
			for (size_t i = 0; i < N; i++) {
				size_t n = sizes[i];
				void *p = malloc(opaque(n));
				check_fresh("malloc", p, n, 1);
				void *c = calloc(1, opaque(n));
				check_fresh("calloc", c, n, 1);
				/* (realloc to 0 would free.) */
				void *r = realloc(NULL, opaque(n / 2));
				if (n > 0)
					r = realloc(r, opaque(n));
				check_fresh("realloc", r, n, 1);
				/* Shrunk by a third: the size it was last given. */
				size_t shrunk = n - n / 3;
				r = realloc(r, opaque(shrunk > 0 ? shrunk : 1));
				CHECK(r != NULL, "realloc to %zu", shrunk);
				free_sized_fn(p, n);
				free_sized_fn(c, n);
				free_sized_fn(r, shrunk > 0 ? shrunk : 1);
			}
		}
	}

	if (free_aligned_sized_fn == NULL) {
		printf("malloc_api: skip: free_aligned_sized not available\n");
	} else {
		free_aligned_sized_fn(NULL, 64, 0);
		for (size_t alignment = 1; alignment <= MIB; alignment *= 4) {
			for (size_t i = 0; i < N; i++) {
				size_t n = round_up(sizes[i] + 1, alignment);
				void *p = aligned_alloc(opaque(alignment),
							opaque(n));
				check_fresh("aligned_alloc", p, n, alignment);
				free_aligned_sized_fn(p, alignment, n);
			}
		}
	}
}

/* ---- glibc's __libc_* entry points ---------------------------------- */

/* They are the same allocator as the public names: memory from one is
 * freed, reallocated and measured by the other. */
static void test_libc_aliases(void)
{
	for (size_t n = 1; n <= 8 * MIB; n = n * 3 + 1) {
		unsigned char *a = __libc_malloc(opaque(n));
		check_fresh("__libc_malloc", a, n, 1);
		fill(a, n, 1);
		a = __libc_realloc(a, opaque(n + 100));
		CHECK(a != NULL, "__libc_realloc(%zu) returned NULL", n + 100);
		CHECK_PATTERN(a, n, 1);
		a = realloc(a, opaque(n * 2));
		CHECK(a != NULL, "realloc(%zu) returned NULL", n * 2);
		CHECK_PATTERN(a, n, 1);
		free(a);

		unsigned char *c = __libc_calloc(opaque(n), 1);
		CHECK(c != NULL && all_zero(c, n),
		      "__libc_calloc(%zu, 1) = %p not zeroed", n, (void *)c);
		__libc_free(c);

		void *m = malloc(opaque(n));
		check_fresh("malloc", m, n, 1);
		m = __libc_realloc(m, opaque(n / 2 + 1));
		CHECK(m != NULL, "__libc_realloc(%zu) returned NULL", n / 2);
		__libc_free(m);

		void *al = __libc_memalign(opaque(4096), opaque(n));
		check_fresh("__libc_memalign", al, n, 4096);
		free(al);
	}
	__libc_free(NULL);
	CHECK(__libc_realloc(__libc_malloc(10), 0) == NULL,
	      "__libc_realloc(p, 0) did not return NULL");

	errno = 0;
	CHECK(__libc_calloc(opaque(SIZE_MAX), 2) == NULL && errno == ENOMEM,
	      "__libc_calloc overflow: errno %d", errno);
	errno = 0;
	CHECK(__libc_malloc(opaque(SIZE_MAX / 2)) == NULL && errno == ENOMEM,
	      "__libc_malloc(SIZE_MAX / 2): errno %d", errno);
}

/* ---- memory that libc allocates for the program --------------------- */

static int compare_ints(const void *a, const void *b)
{
	int x = *(const int *)a, y = *(const int *)b;
	return (x > y) - (x < y);
}

static void test_libc_allocations(void)
{
	char *s = strdup("the quick brown fox");
	CHECK(s != NULL && malloc_usable_size(s) >= 20, "strdup");
	char *t = strndup("jumps over the lazy dog", 5);
	CHECK(t != NULL && strcmp(t, "jumps") == 0, "strndup");
	s = realloc(s, 4000);
	CHECK(s != NULL && strcmp(s, "the quick brown fox") == 0,
	      "realloc of strdup memory");
	free(s);
	free(t);

	char *formatted = NULL;
	int len = asprintf(&formatted, "%d-%s-%0500d", 42, "x", 7);
	CHECK(len == 505 && formatted != NULL, "asprintf returned %d", len);
	CHECK(malloc_usable_size(formatted) >= 506, "asprintf buffer size");
	free(formatted);

	char *cwd = getcwd(NULL, 0);
	CHECK(cwd != NULL, "getcwd(NULL, 0)");
	char *real = realpath(".", NULL);
	CHECK(real != NULL, "realpath(\".\", NULL)");
	free(real);
	free(cwd);

	char *buffer = NULL;
	size_t size = 0;
	FILE *stream = open_memstream(&buffer, &size);
	CHECK(stream != NULL, "open_memstream");
	for (int i = 0; i < 20000; i++)
		fprintf(stream, "line %d\n", i);
	CHECK(fclose(stream) == 0, "fclose(memstream)");
	CHECK(size > 100000 && buffer != NULL, "memstream size %zu", size);

	stream = fmemopen(buffer, size, "r");
	CHECK(stream != NULL, "fmemopen");
	char *line = NULL;
	size_t line_capacity = 0;
	int lines = 0;
	while (getline(&line, &line_capacity, stream) > 0)
		lines++;
	CHECK(lines == 20000, "getline read %d lines", lines);
	fclose(stream);
	free(line);
	free(buffer);

	regex_t regex;
	CHECK(regcomp(&regex, "^(a|b)+c[0-9]{2,5}$", REG_EXTENDED) == 0,
	      "regcomp");
	CHECK(regexec(&regex, "ababbac123", 0, NULL, 0) == 0, "regexec");
	CHECK(regexec(&regex, "abc1", 0, NULL, 0) == REG_NOMATCH, "regexec");
	regfree(&regex);

	/* qsort of a big array uses a malloc'd scratch buffer. */
	enum { ELEMENTS = 200000 };
	int *values = malloc(ELEMENTS * sizeof(int));
	CHECK(values != NULL, "malloc for qsort");
	for (int i = 0; i < ELEMENTS; i++)
		values[i] = (int)((i * 2654435761u) % 1000003u);
	qsort(values, ELEMENTS, sizeof(int), compare_ints);
	for (int i = 1; i < ELEMENTS; i++)
		CHECK(values[i - 1] <= values[i], "qsort left %d before %d",
		      values[i - 1], values[i]);
	free(values);
}

/* ---- allocation before main and after exit ------------------------- */

static void *early[3];

__attribute__((constructor)) static void allocate_before_main(void)
{
	early[0] = malloc(24);
	early[1] = calloc(100, 100);
	early[2] = malloc(2 * MIB);
	for (int i = 0; i < 3; i++)
		if (early[i] != NULL)
			memset(early[i], 0x77, i == 0 ? 24 : i == 1 ? 10000 : 2 * MIB);
}

__attribute__((destructor)) static void allocate_after_exit(void)
{
	void *p = malloc(1000);
	if (p == NULL)
		abort();
	memset(p, 1, 1000);
	free(p);
}

static void test_early(void)
{
	for (int i = 0; i < 3; i++)
		CHECK(early[i] != NULL, "allocation %d before main failed", i);
	unsigned char *bytes = early[2];
	CHECK(bytes[0] == 0x77 && bytes[2 * MIB - 1] == 0x77,
	      "memory allocated before main changed");
	for (int i = 0; i < 3; i++)
		free(early[i]);
}

int main(void)
{
	probe_report_allocator();
	page_size = (size_t)sysconf(_SC_PAGESIZE);

	test_early();
	test_zero_sizes();
	test_alignment_table();
	test_neighbours();
	test_calloc();
	test_huge();
	test_reallocarray();
	test_posix_memalign();
	test_aligned_alloc_and_memalign();
	test_valloc_pvalloc();
	test_realloc_basics();
	test_realloc_in_place();
	test_realloc_large();
	test_sized_frees();
	test_libc_aliases();
	test_libc_allocations();

	printf("malloc_api: ok\n");
	return 0;
}
