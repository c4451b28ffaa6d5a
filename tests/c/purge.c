/*
 * purge CASE [OPTION]: wholly free spans of small objects give their pages
 * back, for tests/purge.rs. Linked against libslitter.so (so malloc,
 * malloc_trim and the class API are slitter's). Each case sets up its
 * objects, frees them, and reads with mincore(2) which of the pages that
 * held them are still resident; tests/purge.rs runs each with the
 * SLITTER_PURGE_DELAY it needs (noted at each case).
 *
 *   purge-at-once        (delay 0) 64 MiB of 64-byte objects freed: once
 *                        some other mallocs ran slow paths, at least 90% of
 *                        their pages are gone, without waiting.
 *   trim                 (delay off) the same pages stay resident, until
 *                        malloc_trim(0) returns 1 and they go; a second
 *                        malloc_trim(0) returns 0.
 *   purge-after-delay    (delay 300) the pages stay while the freed spans
 *                        have not waited the delay, and go once they have.
 *   purge-reuse          (delay 0) purged spans are reused: new objects of
 *                        the size come from them, distinct and usable, and
 *                        calloc hands out zeroes, for several sizes.
 *   bounded-cache        (delay 0) 64 MiB of 4, 16 and 32 KiB objects freed
 *                        so that the last frees fall in distinct spans: the
 *                        thread cache keeps at most two magazines of each
 *                        class (31 objects, 32 KiB of objects, one if
 *                        larger), so at no time do more of those spans
 *                        (plus the one the thread owns) stay resident.
 *   class-opt-in-trim    (delay off) classes of 64-byte objects, one
 *                        with .purge = 1: after malloc_trim(0) its pages are
 *                        gone and its released objects read zeroes; the
 *                        default class's pages stay, holding their bytes; a
 *                        zero_init class that purges hands out zeroes after
 *                        the purge; a "file" class that asks to purge
 *                        keeps its bytes (that mapper never gives memory
 *                        back).
 *   class-opt-in-decay   (delay 0) the same without malloc_trim: the decay
 *                        purges the opted-in class only.
 *   threads-exit [no-trim]  (delay 0) 2000 threads, 50 at a time, each
 *                        allocating 1000 objects of assorted sizes, freeing
 *                        half itself and leaving half for the main thread:
 *                        afterwards (and a malloc_trim(0), unless no-trim)
 *                        the resident set is back within 16 MiB of where it
 *                        was before the threads, and so are the live
 *                        objects, spans and magazines.
 *   idle-reclaim [keep]  (delay off) a thread idle for a second loses the
 *                        span it owns to malloc_trim(0): the main thread
 *                        then draws the objects the idle thread freed.
 *   zero-size-after-purge  (delay off) malloc(0) objects freed, purged and
 *                        handed out again: no address twice.
 *   fork-purging         (any delay) 200 forks while a thread allocates,
 *                        frees and trims 8 MiB of 64-byte objects in a
 *                        loop: every child checks inherited objects,
 *                        allocates and frees its own, trims and exits 0
 *                        (a child still running after 10 s is killed by
 *                        its alarm, SIGALRM).
 *
 * Prints what it measured and "<case>: ok" last; a failure prints
 * "purge: FAIL file:line: ..." to stderr and exits 1; 2 for an unknown
 * case. Measurements are written with write(2) from a stack buffer, so
 * that stdio allocates and frees nothing between two malloc_trim calls.
 */
#define _GNU_SOURCE
#include <fcntl.h>
#include <malloc.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "slitter.h"

#define TEST_NAME "purge"
#include "test_support.h"

#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)

DEFINE_SLITTER_CLASS(purging_class, .name = "purge-opted-in", .size = 64,
		     .purge = 1);
DEFINE_SLITTER_CLASS(keeping_class, .name = "purge-default", .size = 64);
DEFINE_SLITTER_CLASS(zeroing_class, .name = "purge-zeroing", .size = 64,
		     .zero_init = 1, .purge = 1);
DEFINE_SLITTER_CLASS(file_class, .name = "purge-file", .size = 64,
		     .mapper_name = "file", .purge = 1);

/* ------------------------------------------------------------------ */
/* Helpers that allocate nothing from malloc. */

/* printf into a stack buffer, then write(2) to stdout. */
__attribute__((format(printf, 1, 2))) static void say(const char *format, ...)
{
	char line[512];
	va_list args;
	va_start(args, format);
	int len = vsnprintf(line, sizeof(line), format, args);
	va_end(args);
	if (len > (int)sizeof(line) - 1)
		len = sizeof(line) - 1;
	for (int done = 0; done < len;) {
		ssize_t n = write(STDOUT_FILENO, line + done, (size_t)(len - done));
		CHECK(n > 0, "write to stdout failed");
		done += (int)n;
	}
}

/* Anonymous memory straight from mmap, for the test's own bookkeeping. */
static void *map(size_t bytes)
{
	void *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
		       MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	CHECK(p != MAP_FAILED, "mmap of %zu bytes failed", bytes);
	return p;
}

static void unmap(void *p, size_t bytes)
{
	CHECK(munmap(p, bytes) == 0, "munmap failed");
}

static long now_ms(void)
{
	struct timespec t;
	clock_gettime(CLOCK_MONOTONIC, &t);
	return t.tv_sec * 1000 + t.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
	struct timespec t = { .tv_sec = ms / 1000,
			      .tv_nsec = (ms % 1000) * 1000000 };
	while (nanosleep(&t, &t) != 0)
		;
}

/* Keeps the compiler from dropping writes to an object about to be freed. */
static void *launder(void *p)
{
	__asm__ volatile("" : "+r"(p) : : "memory");
	return p;
}

static size_t page_size(void)
{
	return (size_t)sysconf(_SC_PAGESIZE);
}

/* Sorts n addresses in place (radix sort; qsort may call malloc). */
static void sort_addresses(uintptr_t *a, size_t n)
{
	static size_t counts[1 << 16];
	uintptr_t *tmp = map(n * sizeof(*a) + 1);
	for (int shift = 0; shift < 64; shift += 16) {
		memset(counts, 0, sizeof(counts));
		for (size_t i = 0; i < n; i++)
			counts[(a[i] >> shift) & 0xffff]++;
		size_t sum = 0;
		for (size_t d = 0; d < (1 << 16); d++) {
			size_t c = counts[d];
			counts[d] = sum;
			sum += c;
		}
		for (size_t i = 0; i < n; i++)
			tmp[counts[(a[i] >> shift) & 0xffff]++] = a[i];
		memcpy(a, tmp, n * sizeof(*a));
	}
	unmap(tmp, n * sizeof(*a) + 1);
}

static bool contains(const uintptr_t *sorted, size_t n, uintptr_t x)
{
	size_t lo = 0, hi = n;
	while (lo < hi) {
		size_t mid = lo + (hi - lo) / 2;
		if (sorted[mid] < x)
			lo = mid + 1;
		else if (sorted[mid] > x)
			hi = mid;
		else
			return true;
	}
	return false;
}

/* The pages that hold a set of objects, and how many are resident. */
struct residency {
	size_t pages;
	size_t resident;
};

/* Adds the pages [lo, hi) (a run of pages holding objects) to *r. */
static void count_run(uintptr_t lo, uintptr_t hi, struct residency *r)
{
	static unsigned char vec[4096];
	size_t page = page_size();
	for (uintptr_t at = lo; at < hi;) {
		size_t pages = (hi - at) / page;
		if (pages > sizeof(vec))
			pages = sizeof(vec);
		CHECK(mincore((void *)at, pages * page, vec) == 0,
		      "mincore of %zu pages at %#lx failed", pages,
		      (unsigned long)at);
		for (size_t i = 0; i < pages; i++)
			r->resident += vec[i] & 1;
		r->pages += pages;
		at += pages * page;
	}
}

/* The residency of the pages holding the n objects of `size` bytes at the
 * addresses of `sorted` (ascending). Only pages an object overlaps are
 * looked at, in runs of adjacent pages. */
static struct residency residency_of(const uintptr_t *sorted, size_t n,
				     size_t size)
{
	struct residency r = { 0, 0 };
	uintptr_t mask = ~(uintptr_t)(page_size() - 1);
	uintptr_t run_lo = 0, run_hi = 0;
	for (size_t i = 0; i < n; i++) {
		uintptr_t lo = sorted[i] & mask;
		uintptr_t hi = (sorted[i] + size + page_size() - 1) & mask;
		if (run_hi != 0 && lo <= run_hi) {
			if (hi > run_hi)
				run_hi = hi;
			continue;
		}
		if (run_hi != 0)
			count_run(run_lo, run_hi, &r);
		run_lo = lo;
		run_hi = hi;
	}
	if (run_hi != 0)
		count_run(run_lo, run_hi, &r);
	return r;
}

/* Percent of the pages of r that are not resident. */
static double released_percent(struct residency r)
{
	return r.pages == 0 ? 0 : 100.0 * (double)(r.pages - r.resident) /
					  (double)r.pages;
}

static void report(const char *what, struct residency r)
{
	say("%s: pages=%zu resident=%zu released=%.1f%%\n", what, r.pages,
	    r.resident, released_percent(r));
}

/* A set of objects of one size: their addresses in allocation order and
 * sorted. */
struct objects {
	uintptr_t *at;
	uintptr_t *sorted;
	size_t n;
	size_t size;
};

/* The word written at index i of the object at addr, for `seed`. */
static uint64_t pattern(uintptr_t addr, size_t i, uint64_t seed)
{
	return (addr + i * 8) * 0x9E3779B97F4A7C15ull ^ seed;
}

static void fill(void *p, size_t size, uint64_t seed)
{
	uint64_t *words = p;
	for (size_t i = 0; i < size / 8; i++)
		words[i] = pattern((uintptr_t)p, i, seed);
	launder(p);
}

static bool holds(const void *p, size_t size, uint64_t seed)
{
	const uint64_t *words = p;
	for (size_t i = 0; i < size / 8; i++)
		if (words[i] != pattern((uintptr_t)p, i, seed))
			return false;
	return true;
}

static bool all_zero(const void *p, size_t size)
{
	const uint64_t *words = p;
	for (size_t i = 0; i < size / 8; i++)
		if (words[i] != 0)
			return false;
	return true;
}

/* `bytes` of objects of `size` bytes, from malloc, filled with `seed`'s
 * pattern (every page written). */
static struct objects malloc_objects(size_t size, size_t bytes, uint64_t seed)
{
	struct objects o = { .n = bytes / size, .size = size };
	o.at = map(o.n * sizeof(uintptr_t));
	o.sorted = map(o.n * sizeof(uintptr_t));
	for (size_t i = 0; i < o.n; i++) {
		void *p = malloc(size);
		CHECK(p != NULL, "malloc(%zu) failed", size);
		fill(p, size, seed);
		o.at[i] = o.sorted[i] = (uintptr_t)p;
	}
	sort_addresses(o.sorted, o.n);
	return o;
}

/* The same from a class. */
static struct objects class_objects(struct slitter_class class, size_t size,
				    size_t bytes, uint64_t seed)
{
	struct objects o = { .n = bytes / size, .size = size };
	o.at = map(o.n * sizeof(uintptr_t));
	o.sorted = map(o.n * sizeof(uintptr_t));
	for (size_t i = 0; i < o.n; i++) {
		void *p = slitter_allocate(class);
		CHECK(p != NULL, "slitter_allocate failed");
		fill(p, size, seed);
		o.at[i] = o.sorted[i] = (uintptr_t)p;
	}
	sort_addresses(o.sorted, o.n);
	return o;
}

static void forget(struct objects *o)
{
	unmap(o->at, o->n * sizeof(uintptr_t));
	unmap(o->sorted, o->n * sizeof(uintptr_t));
}

static void free_all(const struct objects *o)
{
	for (size_t i = 0; i < o->n; i++)
		free(launder((void *)o->at[i]));
}

static void release_all(struct slitter_class class, const struct objects *o)
{
	for (size_t i = 0; i < o->n; i++)
		slitter_release(class, (void *)o->at[i]);
}

static struct residency residency(const struct objects *o)
{
	return residency_of(o->sorted, o->n, o->size);
}

/* Distinct, non-overlapping objects (sorted addresses at least `size`
 * apart). */
static void check_distinct(const struct objects *o)
{
	for (size_t i = 1; i < o->n; i++)
		CHECK(o->sorted[i] - o->sorted[i - 1] >= o->size,
		      "objects %#lx and %#lx of %zu bytes overlap",
		      (unsigned long)o->sorted[i - 1],
		      (unsigned long)o->sorted[i], o->size);
}

/* Slow paths of the thread cache (which tick the decay): rounds of 2,000
 * mallocs and frees of 200 bytes, a size no case measures. */
static void run_slow_paths(int rounds)
{
	enum { N = 2000 };
	static void *v[N];
	for (int r = 0; r < rounds; r++) {
		for (int i = 0; i < N; i++) {
			v[i] = malloc(200);
			CHECK(v[i] != NULL, "malloc(200) failed");
			memset(v[i], r, 200);
		}
		for (int i = 0; i < N; i++)
			free(launder(v[i]));
	}
}

static struct slitter_stats process_stats(void)
{
	struct slitter_stats s = { .size = sizeof(s) };
	CHECK(slitter_stats(&s) == 0, "slitter_stats failed");
	return s;
}

/* Resident set size in bytes, from /proc/self/statm (read with read(2)). */
static size_t rss_bytes(void)
{
	char text[256];
	int fd = open("/proc/self/statm", O_RDONLY);
	CHECK(fd >= 0, "cannot open /proc/self/statm");
	ssize_t n = read(fd, text, sizeof(text) - 1);
	CHECK(n > 0, "cannot read /proc/self/statm");
	close(fd);
	text[n] = 0;
	unsigned long size, resident;
	CHECK(sscanf(text, "%lu %lu", &size, &resident) == 2,
	      "cannot parse /proc/self/statm: %s", text);
	return resident * page_size();
}

/* Words at every 512 bytes of an object, and its last one: enough to
 * touch every page, cheaper than fill for many objects. */
static void stamp(void *p, size_t size, uint64_t seed)
{
	uint64_t *words = p;
	for (size_t i = 0; i < size / 8; i += 64)
		words[i] = pattern((uintptr_t)p, i, seed);
	words[size / 8 - 1] = pattern((uintptr_t)p, size / 8 - 1, seed);
	launder(p);
}

/* Whether the first and last words of a stamped object are as stamp left
 * them (the cheap check, for many objects). */
static bool stamped(const void *p, size_t size, uint64_t seed)
{
	const uint64_t *words = p;
	return words[0] == pattern((uintptr_t)p, 0, seed) &&
	       words[size / 8 - 1] == pattern((uintptr_t)p, size / 8 - 1, seed);
}

/* ------------------------------------------------------------------ */
/* Purging the malloc size classes. */

/* 64 MiB of 64-byte objects, written and freed. */
static struct objects write_and_free_64(void)
{
	struct objects o = malloc_objects(64, 64 * MIB, 1);
	struct residency written = residency(&o);
	report("written", written);
	CHECK(released_percent(written) < 10,
	      "the objects' pages were not resident after being written");
	free_all(&o);
	return o;
}

/* Run with SLITTER_PURGE_DELAY=0: the spans are purged on the next slow
 * paths, with no waiting. */
static void purge_at_once(void)
{
	struct objects o = write_and_free_64();
	run_slow_paths(10);
	struct residency freed = residency(&o);
	report("freed", freed);
	CHECK(released_percent(freed) >= 90,
	      "only %.1f%% of the freed objects' pages were given back",
	      released_percent(freed));
	forget(&o);
}

/* Run with SLITTER_PURGE_DELAY=off: nothing is purged until malloc_trim. */
static void trim(void)
{
	struct objects o = write_and_free_64();
	run_slow_paths(10);
	struct residency freed = residency(&o);
	report("freed", freed);
	CHECK(released_percent(freed) < 10,
	      "%.1f%% of the freed objects' pages were given back without "
	      "malloc_trim",
	      released_percent(freed));
	/* Nothing between the two calls allocates or frees. */
	int first = malloc_trim(0);
	struct residency trimmed = residency(&o);
	int second = malloc_trim(0);
	report("trimmed", trimmed);
	say("malloc_trim: first=%d second=%d\n", first, second);
	CHECK(first == 1, "malloc_trim(0) returned %d", first);
	CHECK(released_percent(trimmed) >= 90,
	      "only %.1f%% of the freed objects' pages were given back by "
	      "malloc_trim",
	      released_percent(trimmed));
	CHECK(second == 0, "a second malloc_trim(0) right after returned %d",
	      second);
	forget(&o);
}

/* Run with SLITTER_PURGE_DELAY=<ms>: the spans stay until they waited. */
static void purge_after_delay(void)
{
	const char *setting = getenv("SLITTER_PURGE_DELAY");
	long delay = setting ? atol(setting) : 0;
	CHECK(delay > 0, "run with SLITTER_PURGE_DELAY set to a delay");
	struct objects o = malloc_objects(64, 64 * MIB, 1);
	long start = now_ms();
	free_all(&o);
	run_slow_paths(10);
	long end = now_ms();
	struct residency early = residency(&o);
	report("freed", early);
	/* No span was wholly free before `start` (2 ms for the clocks'
	 * rounding). */
	if (end - start + 2 < delay)
		CHECK(released_percent(early) < 10,
		      "%.1f%% of the pages were given back %ld ms after the "
		      "first free, before the delay of %ld ms",
		      released_percent(early), end - start, delay);
	else
		say("freeing took %ld ms, not under the delay: early check "
		    "skipped\n",
		    end - start);
	/* Every span has waited the delay; the ticks (one per millisecond,
	 * a few spans each) purge them on the next slow paths. */
	sleep_ms(delay + 50);
	long waited = now_ms();
	struct residency late;
	do {
		run_slow_paths(1);
		sleep_ms(1);
		late = residency(&o);
	} while (released_percent(late) < 90 && now_ms() - waited < 5000);
	report("after the delay", late);
	say("purged within %ld ms of the delay\n", now_ms() - waited);
	CHECK(released_percent(late) >= 90,
	      "only %.1f%% of the pages were given back after the delay",
	      released_percent(late));
	forget(&o);
}

/* After a purge, `bytes` of objects of `size` come from the purged spans,
 * distinct and usable; calloc hands out zeroes, whether the object is one
 * just freed or one of a purged span. */
static void purge_reuse_size(size_t size, size_t bytes)
{
	say("size %zu:\n", size);
	struct objects a = malloc_objects(size, bytes, 1);
	free_all(&a);
	malloc_trim(0);
	struct residency purged = residency(&a);
	report("purged", purged);
	CHECK(released_percent(purged) >= 90, "the spans were not purged");

	struct objects b = malloc_objects(size, bytes, 2);
	size_t reused = 0;
	for (size_t i = 0; i < b.n; i++)
		reused += contains(a.sorted, a.n, b.at[i]);
	say("reused %zu of %zu addresses\n", reused, b.n);
	CHECK(reused >= b.n * 9 / 10,
	      "only %zu of %zu objects came from the purged spans", reused,
	      b.n);
	check_distinct(&b);
	for (size_t i = 0; i < b.n; i++)
		CHECK(holds((void *)b.at[i], size, 2),
		      "object %#lx (%zu bytes) lost what was written to it",
		      (unsigned long)b.at[i], size);

	/* Every other one freed, and calloc'd again. */
	for (size_t i = 0; i < b.n; i += 2)
		free(launder((void *)b.at[i]));
	for (size_t i = 0; i < b.n; i += 2) {
		void *p = calloc(1, size);
		CHECK(p != NULL, "calloc(1, %zu) failed", size);
		CHECK(all_zero(p, size), "calloc(1, %zu) gave %p, not zeroed",
		      size, p);
		fill(p, size, 3);
		b.at[i] = (uintptr_t)p;
	}
	memcpy(b.sorted, b.at, b.n * sizeof(uintptr_t));
	sort_addresses(b.sorted, b.n);
	check_distinct(&b);
	for (size_t i = 0; i < b.n; i++)
		CHECK(holds((void *)b.at[i], size, i % 2 ? 2 : 3),
		      "object %#lx (%zu bytes) was overwritten",
		      (unsigned long)b.at[i], size);
	free_all(&b);

	/* calloc from purged spans. */
	malloc_trim(0);
	for (size_t i = 0; i < b.n; i++) {
		void *p = calloc(1, size);
		CHECK(p != NULL, "calloc(1, %zu) failed", size);
		CHECK(all_zero(p, size), "calloc(1, %zu) gave %p, not zeroed",
		      size, p);
		fill(p, size, 4);
		b.at[i] = (uintptr_t)p;
	}
	for (size_t i = 0; i < b.n; i++)
		CHECK(holds((void *)b.at[i], size, 4),
		      "object %#lx (%zu bytes) was overwritten",
		      (unsigned long)b.at[i], size);
	free_all(&b);
	forget(&a);
	forget(&b);
}

/* Run with SLITTER_PURGE_DELAY=0. */
static void purge_reuse(void)
{
	purge_reuse_size(64, 16 * MIB);
	purge_reuse_size(1000, 16 * MIB);
	purge_reuse_size(20000, 16 * MIB);
}

/* How many of the n objects at `at` have their first page resident. */
static size_t resident_objects(const uintptr_t *at, size_t n)
{
	size_t count = 0;
	for (size_t i = 0; i < n; i++) {
		unsigned char v;
		uintptr_t page = at[i] & ~(uintptr_t)(page_size() - 1);
		CHECK(mincore((void *)page, 1, &v) == 0, "mincore failed");
		count += v & 1;
	}
	return count;
}

/* Run with SLITTER_PURGE_DELAY=0. 64 MiB of objects of `size` bytes (4
 * KiB or more), written, then freed in STRIDE rounds: round r frees the
 * objects whose index is r modulo STRIDE. No span of these sizes holds
 * more than STRIDE objects, so every span still has an object live when
 * the last round starts, and the objects of the last round are each in a
 * span of their own, which becomes wholly free when the program frees it.
 * Then the span is purged at once, unless the thread still owns it (the
 * span it took its last objects from) or its object waits in the thread's
 * cache, which holds at most two magazines of the class, of at most
 * `capacity` objects each (31, and 32 KiB of objects, at least one). So
 * after every free of the last round, and at the end, at most 2 * capacity
 * + 1 of the last round's objects have their page resident (checked with
 * one of margin). The last round frees more objects than that, so a cache
 * that held more would keep more spans. */
static void bounded_cache_size(size_t size)
{
	enum { STRIDE = 256 };
	struct objects o = malloc_objects(size, 64 * MIB, 1);
	for (size_t round = 0; round < STRIDE - 1; round++)
		for (size_t i = round; i < o.n; i += STRIDE)
			free(launder((void *)o.at[i]));
	/* The last round, in o.at[0..last). */
	size_t last = 0;
	for (size_t i = STRIDE - 1; i < o.n; i += STRIDE)
		o.at[last++] = o.at[i];
	size_t capacity = 32 * KIB / size;
	capacity = capacity < 1 ? 1 : capacity > 31 ? 31 : capacity;
	size_t bound = 2 * capacity + 2;
	CHECK(last > bound, "the last round frees too few objects to tell");
	size_t most = 0;
	for (size_t k = 0; k < last; k++) {
		free(launder((void *)o.at[k]));
		size_t kept = resident_objects(o.at, k + 1);
		most = kept > most ? kept : most;
	}
	run_slow_paths(10);
	size_t kept = resident_objects(o.at, last);
	struct residency r = residency(&o);
	say("malloc-%zu: magazines of %zu; the last round freed %zu objects, "
	    "of which at most %zu kept their span at once, %zu at the end "
	    "(bound %zu); resident %zu KiB of the %zu KiB freed\n",
	    size, capacity, last, most, kept, bound,
	    r.resident * page_size() / KIB, r.pages * page_size() / KIB);
	CHECK(most <= bound && kept <= bound,
	      "up to %zu spans of malloc-%zu objects freed by the program stayed "
	      "(%zu at the end), more than two magazines of %zu objects and the "
	      "span the thread owns",
	      most, size, kept, capacity);
	forget(&o);
}

static void bounded_cache(void)
{
	bounded_cache_size(4 * KIB);
	bounded_cache_size(16 * KIB);
	bounded_cache_size(32 * KIB);
}

/* ------------------------------------------------------------------ */
/* The class API's opt-in. */

/* How many of the objects read as zeroes. */
static size_t zeroed(const struct objects *o)
{
	size_t count = 0;
	for (size_t i = 0; i < o->n; i++)
		count += all_zero((void *)o->at[i], o->size);
	return count;
}

/* Run with SLITTER_PURGE_DELAY=off if `trim`, else with 0. */
static void class_opt_in(bool trim)
{
	struct objects purging = class_objects(purging_class, 64, 32 * MIB, 1);
	struct objects keeping = class_objects(keeping_class, 64, 32 * MIB, 2);
	struct objects zeroing = class_objects(zeroing_class, 64, 32 * MIB, 3);
	struct objects filed = class_objects(file_class, 64, 1 * MIB, 4);
	release_all(purging_class, &purging);
	release_all(keeping_class, &keeping);
	release_all(zeroing_class, &zeroing);
	release_all(file_class, &filed);
	if (trim) {
		struct residency before = residency(&purging);
		report("opted in, released", before);
		CHECK(released_percent(before) < 10,
		      "the opted-in class gave back pages without malloc_trim");
		int trimmed = malloc_trim(0);
		CHECK(trimmed == 1, "malloc_trim(0) returned %d", trimmed);
	} else {
		run_slow_paths(10);
	}
	struct residency p = residency(&purging);
	struct residency k = residency(&keeping);
	struct residency z = residency(&zeroing);
	report("opted in", p);
	report("default", k);
	report("zero_init, opted in", z);
	CHECK(released_percent(p) >= 90,
	      "only %.1f%% of the opted-in class's pages were given back",
	      released_percent(p));
	CHECK(released_percent(k) < 10,
	      "%.1f%% of the default class's pages were given back",
	      released_percent(k));
	CHECK(released_percent(z) >= 90,
	      "only %.1f%% of the zero_init opted-in class's pages were given "
	      "back",
	      released_percent(z));

	/* Type-stable memory: the default class's released objects hold
	 * what was written to them, byte for byte, and so do the file
	 * class's (its mapper keeps its memory). */
	for (size_t i = 0; i < keeping.n; i++)
		CHECK(holds((void *)keeping.at[i], 64, 2),
		      "released object %#lx of the default class changed",
		      (unsigned long)keeping.at[i]);
	for (size_t i = 0; i < filed.n; i++)
		CHECK(holds((void *)filed.at[i], 64, 4),
		      "released object %#lx of the file class changed",
		      (unsigned long)filed.at[i]);
	/* The opted-in class's released objects read zeroes where purged. */
	size_t zeroes = zeroed(&purging);
	say("opted in: %zu of %zu released objects read zeroes\n", zeroes,
	    purging.n);
	CHECK(zeroes >= purging.n * 9 / 10,
	      "only %zu of %zu purged objects read zeroes", zeroes, purging.n);

	/* Objects handed out again: the zero_init class's read zeroes; the
	 * opted-in class's are usable and distinct. Both reuse their spans. */
	struct objects again = { .n = zeroing.n, .size = 64 };
	again.at = map(again.n * sizeof(uintptr_t));
	again.sorted = map(again.n * sizeof(uintptr_t));
	size_t reused = 0;
	for (size_t i = 0; i < again.n; i++) {
		void *q = slitter_allocate(zeroing_class);
		CHECK(all_zero(q, 64), "zero_init object %p not zeroed", q);
		reused += contains(zeroing.sorted, zeroing.n, (uintptr_t)q);
		again.at[i] = (uintptr_t)q;
	}
	CHECK(reused >= again.n * 9 / 10,
	      "only %zu of %zu zero_init objects reused purged spans", reused,
	      again.n);
	release_all(zeroing_class, &again);
	reused = 0;
	for (size_t i = 0; i < again.n; i++) {
		void *q = slitter_allocate(purging_class);
		fill(q, 64, 5);
		reused += contains(purging.sorted, purging.n, (uintptr_t)q);
		again.at[i] = again.sorted[i] = (uintptr_t)q;
	}
	sort_addresses(again.sorted, again.n);
	check_distinct(&again);
	for (size_t i = 0; i < again.n; i++)
		CHECK(holds((void *)again.at[i], 64, 5),
		      "object %#lx of the opted-in class was overwritten",
		      (unsigned long)again.at[i]);
	say("opted in: reused %zu of %zu addresses\n", reused, again.n);
	CHECK(reused >= again.n * 9 / 10,
	      "only %zu of %zu objects reused purged spans", reused, again.n);
	release_all(purging_class, &again);
	forget(&again);
	forget(&purging);
	forget(&keeping);
	forget(&zeroing);
	forget(&filed);
}

/* ------------------------------------------------------------------ */
/* Threads exiting by the thousand. */

enum { THREADS = 2000, WAVE = 50, PER_THREAD = 1000, WARM_WAVES = 5 };

static const size_t thread_sizes[] = { 16,  24,  32,  48,  64,   80,   96,  128,
				       160, 256, 384, 512, 1000, 2000, 4000, 16000 };
#define THREAD_SIZES (sizeof(thread_sizes) / sizeof(thread_sizes[0]))

struct job {
	uint32_t number;
	bool failed;
	void *kept[PER_THREAD / 2];
	size_t kept_size[PER_THREAD / 2];
};
static struct job jobs[WAVE];

/* Allocates PER_THREAD objects of assorted sizes, frees half of them and
 * keeps the other half for the main thread to free. */
static void *job_main(void *arg)
{
	struct job *job = arg;
	uint64_t rng = job->number + 1;
	void *mine[PER_THREAD];
	size_t sizes[PER_THREAD];
	for (size_t i = 0; i < PER_THREAD; i++) {
		uint64_t r = next_random(&rng);
		/* 16 KiB objects one time in 64. */
		sizes[i] = thread_sizes[r % 64 == 0 ? THREAD_SIZES - 1 :
						      (r >> 8) % (THREAD_SIZES - 1)];
		mine[i] = malloc(sizes[i]);
		if (mine[i] == NULL) {
			job->failed = true;
			return NULL;
		}
		stamp(mine[i], sizes[i], job->number);
	}
	for (size_t i = 0; i < PER_THREAD; i++) {
		if (!stamped(mine[i], sizes[i], job->number)) {
			job->failed = true;
			return NULL;
		}
		if (i % 2 == 0) {
			free(mine[i]);
		} else {
			job->kept[i / 2] = mine[i];
			job->kept_size[i / 2] = sizes[i];
		}
	}
	return NULL;
}

/* Run with SLITTER_PURGE_DELAY=0. With `trim`, malloc_trim(0) after the
 * last thread: then the resident set must be back within 16 MiB of the
 * baseline. */
static void threads_exit(bool trim)
{
	pthread_attr_t attr;
	CHECK(pthread_attr_init(&attr) == 0, "pthread_attr_init");
	CHECK(pthread_attr_setstacksize(&attr, 256 * KIB) == 0,
	      "pthread_attr_setstacksize");
	malloc_trim(0);
	size_t rss_before = rss_bytes(), rss_peak = rss_before;
	struct slitter_stats before = process_stats(), warm = before;
	for (uint32_t started = 0; started < THREADS; started += WAVE) {
		pthread_t threads[WAVE];
		for (int i = 0; i < WAVE; i++) {
			jobs[i].number = started + (uint32_t)i;
			jobs[i].failed = false;
			int err = pthread_create(&threads[i], &attr, job_main,
						 &jobs[i]);
			CHECK(err == 0, "pthread_create failed (%d) after %u threads",
			      err, started + (uint32_t)i);
		}
		for (int i = 0; i < WAVE; i++) {
			CHECK(pthread_join(threads[i], NULL) == 0, "pthread_join");
			CHECK(!jobs[i].failed,
			      "thread %u: malloc failed or an object was overwritten",
			      jobs[i].number);
		}
		size_t rss = rss_bytes();
		if (rss > rss_peak)
			rss_peak = rss;
		for (int i = 0; i < WAVE; i++)
			for (int k = 0; k < PER_THREAD / 2; k++) {
				CHECK(stamped(jobs[i].kept[k], jobs[i].kept_size[k],
					      jobs[i].number),
				      "object %p kept by thread %u was overwritten",
				      jobs[i].kept[k], jobs[i].number);
				free(jobs[i].kept[k]);
			}
		if (started + WAVE == WARM_WAVES * WAVE)
			warm = process_stats();
	}
	if (trim)
		malloc_trim(0);
	size_t rss_after = rss_bytes();
	struct slitter_stats after = process_stats();
	say("rss before=%zu KiB peak=%zu KiB after=%zu KiB\n", rss_before / KIB,
	    rss_peak / KIB, rss_after / KIB);
	say("live before=%llu after=%llu; spans after %d waves=%llu after=%llu; "
	    "magazines after %d waves=%llu after=%llu; thread caches=%llu; "
	    "uncounted threads=%llu\n",
	    (unsigned long long)before.live, (unsigned long long)after.live,
	    WARM_WAVES, (unsigned long long)warm.spans,
	    (unsigned long long)after.spans, WARM_WAVES,
	    (unsigned long long)warm.magazines,
	    (unsigned long long)after.magazines,
	    (unsigned long long)after.thread_caches,
	    (unsigned long long)after.uncounted_threads);
	CHECK(after.uncounted_threads == 0,
	      "%llu exited threads' operations are not counted",
	      (unsigned long long)after.uncounted_threads);
	/* glibc keeps the stacks of exited threads for reuse, each with its
	 * thread's dynamic TLS vector (a calloc'd object): one per thread
	 * alive at once, at most. */
	CHECK(after.live <= before.live + WAVE + 64,
	      "%llu more objects live after the threads than before",
	      (unsigned long long)(after.live - before.live));
	/* Exited threads' caches are reused: entry arrays, magazines and
	 * spans. How many of each the process needs depends on how many
	 * threads run at once, at most WAVE, not on how many ran: once
	 * WARM_WAVES waves ran, the rest may take at most a few times what
	 * they took (a thread keeping its spans or magazines would make the
	 * count grow with the threads, 8 times over). */
	CHECK(after.thread_caches <= 2 * WAVE + 8,
	      "%llu thread caches for %d threads, %d at a time",
	      (unsigned long long)after.thread_caches, THREADS, WAVE);
	CHECK(after.spans <= 3 * warm.spans + 256,
	      "spans went from %llu after %d waves to %llu after %d",
	      (unsigned long long)warm.spans, WARM_WAVES,
	      (unsigned long long)after.spans, THREADS / WAVE);
	CHECK(after.magazines <= 3 * warm.magazines + 256,
	      "magazines went from %llu after %d waves to %llu after %d",
	      (unsigned long long)warm.magazines, WARM_WAVES,
	      (unsigned long long)after.magazines, THREADS / WAVE);
	CHECK(rss_after <= rss_before + 16 * MIB,
	      "the resident set went from %zu KiB before the threads to %zu "
	      "KiB after them (peak %zu KiB)",
	      rss_before / KIB, rss_after / KIB, rss_peak / KIB);
	pthread_attr_destroy(&attr);
}

/* ------------------------------------------------------------------ */
/* fork while spans are being purged. */

enum { FORKS = 200, BG_OBJECTS = 8 * MIB / 64, INHERITED = 2000 };

static atomic_bool stop_background;
/* Set while a child runs, so that the background thread (busy whenever the
 * parent forks) leaves the CPU to the child. */
static atomic_bool child_running;
static atomic_long background_rounds;
static void *background_objects[BG_OBJECTS];
static void *inherited[INHERITED];
static size_t inherited_size[INHERITED];

/* Allocates, writes and frees 8 MiB of 64-byte objects, then trims (so
 * that their spans are purged), in a loop. */
static void *background(void *arg)
{
	(void)arg;
	while (!atomic_load(&stop_background)) {
		for (size_t i = 0; i < BG_OBJECTS; i++) {
			if (i % 4096 == 0)
				while (atomic_load(&child_running) &&
				       !atomic_load(&stop_background))
					usleep(100);
			background_objects[i] = malloc(64);
			CHECK(background_objects[i] != NULL, "malloc(64) failed");
			stamp(background_objects[i], 64, 9);
		}
		for (size_t i = 0; i < BG_OBJECTS; i++) {
			CHECK(stamped(background_objects[i], 64, 9),
			      "background object %p overwritten",
			      background_objects[i]);
			free(background_objects[i]);
		}
		malloc_trim(0);
		atomic_fetch_add(&background_rounds, 1);
	}
	return NULL;
}

/* A check in a child: write(2) and _exit, no stdio or atexit handlers. */
#define CHILD_CHECK(cond, what)                                               \
	do {                                                                  \
		if (!(cond)) {                                                \
			static const char message[] =                         \
				"purge: FAIL in a child: " what "\n";         \
			ssize_t ignored =                                     \
				write(STDERR_FILENO, message, sizeof(message) - 1); \
			(void)ignored;                                        \
			_exit(1);                                             \
		}                                                             \
	} while (0)

static void child_main(uint64_t seed)
{
	enum { OWN = 1500 };
	static void *own[OWN];
	static size_t own_size[OWN];
	/* A child stuck on a lock is killed, and reported as such. */
	alarm(10);
	for (int i = 0; i < INHERITED; i++)
		CHILD_CHECK(stamped(inherited[i], inherited_size[i], 7),
			    "an inherited object was overwritten");
	/* 64-byte objects (the background thread's class, whose spans it
	 * was purging) and others. */
	uint64_t rng = seed;
	for (int i = 0; i < OWN; i++) {
		own_size[i] = i % 2 ? 64 : 16 + (next_random(&rng) % 1000) / 16 * 16;
		own[i] = malloc(own_size[i]);
		CHILD_CHECK(own[i] != NULL, "malloc failed");
		stamp(own[i], own_size[i], seed);
	}
	for (int i = 0; i < OWN; i += 2)
		free(own[i]);
	for (int i = 0; i < OWN; i += 2) {
		own[i] = calloc(1, 64);
		CHILD_CHECK(own[i] != NULL, "calloc failed");
		CHILD_CHECK(all_zero(own[i], 64), "calloc gave non-zero bytes");
		own_size[i] = 64;
		stamp(own[i], 64, seed);
	}
	for (int i = 0; i < OWN; i++) {
		CHILD_CHECK(stamped(own[i], own_size[i], seed),
			    "a child's object was overwritten");
		free(own[i]);
	}
	for (int i = 0; i < INHERITED; i++)
		free(inherited[i]);
	malloc_trim(0);
	/* And again, from the trimmed spans. */
	for (int i = 0; i < OWN; i++) {
		own[i] = malloc(64);
		CHILD_CHECK(own[i] != NULL, "malloc failed");
		stamp(own[i], 64, seed + 1);
	}
	for (int i = 0; i < OWN; i++) {
		CHILD_CHECK(stamped(own[i], 64, seed + 1),
			    "a child's object was overwritten");
		free(own[i]);
	}
	_exit(0);
}

static void fork_purging(void)
{
	uint64_t rng = 7;
	for (int i = 0; i < INHERITED; i++) {
		inherited_size[i] = 16 + (next_random(&rng) % 4000) / 16 * 16;
		inherited[i] = malloc(inherited_size[i]);
		CHECK(inherited[i] != NULL, "malloc failed");
		stamp(inherited[i], inherited_size[i], 7);
	}
	pthread_t thread;
	CHECK(pthread_create(&thread, NULL, background, NULL) == 0,
	      "pthread_create");
	while (atomic_load(&background_rounds) == 0)
		usleep(1000);
	long rounds_before = atomic_load(&background_rounds);
	long start = now_ms(), in_children = 0, slowest = 0;
	for (int f = 0; f < FORKS; f++) {
		long forked = now_ms();
		pid_t pid = fork();
		CHECK(pid >= 0, "fork failed");
		if (pid == 0)
			child_main((uint64_t)f + 100);
		atomic_store(&child_running, true);
		int status;
		CHECK(waitpid(pid, &status, 0) == pid, "waitpid");
		atomic_store(&child_running, false);
		long took = now_ms() - forked;
		in_children += took;
		slowest = took > slowest ? took : slowest;
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child %d: %s %d", f,
		      WIFEXITED(status) ? "exit status" : "killed by signal",
		      WIFEXITED(status) ? WEXITSTATUS(status) : WTERMSIG(status));
		/* Let the background thread get going again. */
		usleep(200);
	}
	atomic_store(&stop_background, true);
	CHECK(pthread_join(thread, NULL) == 0, "pthread_join");
	say("forks=%d in %ld ms (%ld ms from fork to exit, slowest %ld ms); "
	    "background rounds meanwhile=%ld\n",
	    FORKS, now_ms() - start, in_children, slowest,
	    atomic_load(&background_rounds) - rounds_before);
	for (int i = 0; i < INHERITED; i++) {
		CHECK(stamped(inherited[i], inherited_size[i], 7),
		      "inherited object %p overwritten", inherited[i]);
		free(inherited[i]);
	}
}

/* Run with SLITTER_PURGE_DELAY=off: a thread allocates 8 MiB and 2000
 * more 48-byte objects (a class nothing else here uses), frees them all,
 * and then sleeps (idle), still owning the span it drew its last objects
 * from: that span holds them free, but only its owner takes objects from
 * it. After more than a second, malloc_trim(0) takes the span from the
 * idle thread and lists it, so the main thread's next mallocs of that size
 * draw the idle thread's last objects. Without the reclaim ("idle-reclaim
 * keep", which trims before the thread counts as idle, so that the check
 * can be seen to fail) they come from other spans. */
static atomic_bool idle_go_on;
static struct objects idle_objects;

static void *idle_main(void *arg)
{
	(void)arg;
	idle_objects = malloc_objects(48, 8 * MIB + 2000 * 48, 3);
	free_all(&idle_objects);
	atomic_store(&idle_go_on, true);
	while (atomic_load(&idle_go_on))
		sleep_ms(10);
	return NULL;
}

static void idle_reclaim(bool wait_for_idle)
{
	pthread_t thread;
	CHECK(pthread_create(&thread, NULL, idle_main, NULL) == 0,
	      "pthread_create");
	while (!atomic_load(&idle_go_on))
		sleep_ms(1);
	if (wait_for_idle)
		sleep_ms(1500);
	CHECK(malloc_trim(0) == 1, "malloc_trim(0) released nothing");
	/* The thread's objects from its last span: the last run of objects
	 * allocated one right after the other (a span hands out fresh
	 * objects in address order). */
	const uintptr_t *at = idle_objects.at;
	size_t first = idle_objects.n - 1;
	while (first > 0 && at[first] - at[first - 1] == 48)
		first--;
	size_t in_span = idle_objects.n - first;
	uintptr_t *last = map(in_span * sizeof(uintptr_t));
	memcpy(last, at + first, in_span * sizeof(uintptr_t));
	sort_addresses(last, in_span);
	enum { TAKEN = 100 };
	CHECK(in_span >= TAKEN, "only %zu objects in the last span", in_span);
	void *mine[TAKEN];
	size_t reused = 0;
	for (int i = 0; i < TAKEN; i++) {
		mine[i] = launder(malloc(48));
		reused += contains(last, in_span, (uintptr_t)mine[i]);
	}
	say("objects of the idle thread's span reused: %zu of %d\n", reused,
	    TAKEN);
	for (int i = 0; i < TAKEN; i++)
		free(mine[i]);
	atomic_store(&idle_go_on, false);
	CHECK(pthread_join(thread, NULL) == 0, "pthread_join");
	CHECK(reused == TAKEN,
	      "only %zu of %d objects came from the idle thread's span", reused,
	      TAKEN);
	unmap(last, in_span * sizeof(uintptr_t));
	forget(&idle_objects);
}

/* malloc(0) objects (an inaccessible class) freed, purged by
 * malloc_trim, then handed out again: no address is handed out twice
 * while live. */
static void zero_size_after_purge(void)
{
	enum { N = 140000 };
	void **p = map(N * sizeof(void *));
	for (int i = 0; i < N; i++)
		p[i] = launder(malloc(0));
	for (int i = 0; i < N; i++)
		free(p[i]);
	CHECK(malloc_trim(0) == 1, "malloc_trim(0) released nothing");
	size_t live = 0;
	for (int i = 0; i < 1000; i++)
		p[live++] = launder(malloc(0));
	for (int i = 0; i < 500; i++)
		free(p[--live]);
	for (int i = 0; i < 20000; i++)
		p[live++] = launder(malloc(0));
	uintptr_t *sorted = map(live * sizeof(uintptr_t));
	for (size_t i = 0; i < live; i++)
		sorted[i] = (uintptr_t)p[i];
	sort_addresses(sorted, live);
	for (size_t i = 1; i < live; i++)
		CHECK(sorted[i] != sorted[i - 1],
		      "malloc(0) handed out %#lx twice", (unsigned long)sorted[i]);
	for (size_t i = 0; i < live; i++)
		free((void *)sorted[i]);
	unmap(sorted, live * sizeof(uintptr_t));
	unmap(p, N * sizeof(void *));
}

int main(int argc, char **argv)
{
	if (argc < 2)
		return 2;
	const char *c = argv[1];
	const char *option = argc > 2 ? argv[2] : "";
	if (strcmp(c, "purge-at-once") == 0)
		purge_at_once();
	else if (strcmp(c, "trim") == 0)
		trim();
	else if (strcmp(c, "purge-after-delay") == 0)
		purge_after_delay();
	else if (strcmp(c, "purge-reuse") == 0)
		purge_reuse();
	else if (strcmp(c, "bounded-cache") == 0)
		bounded_cache();
	else if (strcmp(c, "class-opt-in-trim") == 0)
		class_opt_in(true);
	else if (strcmp(c, "class-opt-in-decay") == 0)
		class_opt_in(false);
	else if (strcmp(c, "threads-exit") == 0)
		threads_exit(strcmp(option, "no-trim") != 0);
	else if (strcmp(c, "fork-purging") == 0)
		fork_purging();
	else if (strcmp(c, "idle-reclaim") == 0)
		idle_reclaim(strcmp(option, "keep") != 0);
	else if (strcmp(c, "zero-size-after-purge") == 0)
		zero_size_after_purge();
	else
		return 2;
	say("%s: ok\n", c);
	return 0;
}
