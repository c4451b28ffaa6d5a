/*
 * glibc's malloc introspection functions as slitter answers them:
 * mallinfo2 and mallinfo after known malloc/free sequences, malloc_info's
 * XML, mallopt's accepted and refused options, malloc_trim (of large
 * blocks, then of 64 MiB of freed 64-byte objects, whose purged spans
 * leave mallinfo2's arena and show in malloc_info), and malloc_stats
 * (whose table tests/stats.rs finds on stderr, with those purged bytes).
 *
 * tests/stats.rs builds this without slitter and runs it under
 * LD_PRELOAD=libslitter.so with SLITTER_PURGE_DELAY=off, so that only
 * malloc_trim purges. The checks follow slitter's documented mapping
 * (src/malloc/glibc_extras.rs), so they fail against glibc's malloc. Prints the
 * allocator_probe.h line, one "introspection:" line naming the objects
 * that define mallinfo2 and malloc_info, and "glibc_stats: ok" last; a
 * failed check prints a FAIL line to stderr and exits 1.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <limits.h>
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allocator_probe.h"

#define TEST_NAME "glibc_stats"
#include "test_support.h"

#define COUNT 1000
#define SIZE 48
#define LARGE (1 << 20)

/* 64 MiB of 64-byte objects, freed then trimmed: at least half of it
 * must be purged (the rest of their spans may hold other objects). */
#define PURGE_SIZE 64
#define PURGE_COUNT ((64 << 20) / PURGE_SIZE)
#define PURGE_ENOUGH ((size_t)32 << 20)

static void *volatile objects[COUNT];
static void *volatile purge_objects[PURGE_COUNT];

static void check_mallinfo(void)
{
	struct mallinfo2 before, filled, freed, large;
	struct mallinfo old;
	/* Volatile: the compiler may not drop the malloc/free pairs. */
	void *volatile block;

	before = mallinfo2();
	for (int i = 0; i < COUNT; i++)
		objects[i] = malloc(SIZE);
	filled = mallinfo2();
	for (int i = 0; i < COUNT / 2; i++)
		free(objects[i]);
	freed = mallinfo2();
	block = malloc(LARGE);
	large = mallinfo2();

	/* Nothing else allocates on this one thread between the calls. */
	CHECK(filled.uordblks - before.uordblks == COUNT * SIZE,
	      "uordblks grew by %zu for %d objects of %d bytes",
	      filled.uordblks - before.uordblks, COUNT, SIZE);
	CHECK(filled.uordblks - freed.uordblks == COUNT / 2 * SIZE,
	      "uordblks shrank by %zu", filled.uordblks - freed.uordblks);
	CHECK(freed.arena >= freed.uordblks &&
		      freed.fordblks == freed.arena - freed.uordblks,
	      "arena %zu uordblks %zu fordblks %zu", freed.arena,
	      freed.uordblks, freed.fordblks);
	CHECK(freed.ordblks - filled.ordblks == COUNT / 2,
	      "free objects grew by %zu", freed.ordblks - filled.ordblks);
	CHECK(large.hblks == freed.hblks + 1 &&
		      large.hblkhd >= freed.hblkhd + LARGE,
	      "hblks %zu -> %zu, hblkhd %zu -> %zu", freed.hblks,
	      large.hblks, freed.hblkhd, large.hblkhd);
	CHECK(large.smblks == 0 && large.fsmblks == 0 && large.usmblks == 0,
	      "fields slitter does not have are not 0");

	/* mallinfo is deprecated for its int fields, not gone. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wdeprecated-declarations"
	old = mallinfo();
#pragma GCC diagnostic pop
	CHECK(old.hblks == (int)large.hblks &&
		      (size_t)old.uordblks ==
			      (large.uordblks > INT_MAX ? INT_MAX : large.uordblks),
	      "mallinfo disagrees with mallinfo2");
	memset((void *)block, 1, LARGE);
	free(block);
	CHECK(mallinfo2().hblks == freed.hblks, "the large block is still live");

	/* Its pages are kept for reuse: keepcost counts them, malloc_trim
	 * gives them back. */
	CHECK(mallinfo2().keepcost >= LARGE, "keepcost %zu after freeing %d bytes",
	      mallinfo2().keepcost, LARGE);
	CHECK(malloc_trim(0) == 1, "malloc_trim released nothing");
	CHECK(mallinfo2().keepcost == 0, "keepcost %zu after malloc_trim",
	      mallinfo2().keepcost);
	CHECK(malloc_trim(0) == 0, "a second malloc_trim released memory");
}

static char xml[1 << 16];

/* malloc_info's XML, into xml; its length. */
static size_t read_malloc_info(void)
{
	FILE *file = tmpfile();
	size_t length;

	CHECK(file != NULL, "tmpfile failed");
	CHECK(malloc_info(0, file) == 0, "malloc_info failed");
	rewind(file);
	length = fread(xml, 1, sizeof(xml) - 1, file);
	xml[length] = '\0';
	errno = 0;
	CHECK(malloc_info(1, file) == -1 && errno == EINVAL,
	      "options other than 0 are refused with EINVAL");
	fclose(file);
	return length;
}

/* The size of the element starting with `start` in the XML at `from`;
 * where the search for the next one may go on. */
static const char *size_of_element(const char *from, const char *start,
				   size_t *size)
{
	const char *element = strstr(from, start);

	CHECK(element != NULL &&
		      sscanf(element + strlen(start), "%zu", size) == 1,
	      "no %s...\" in:\n%s", start, xml);
	return element + strlen(start);
}

static void check_malloc_info(void)
{
	size_t length = read_malloc_info();

	static const char start[] = "<malloc version=\"1\">\n<heap nr=\"0\">\n<sizes>\n";

	CHECK(strncmp(xml, start, strlen(start)) == 0, "unexpected start:\n%s",
	      xml);
	/* The 48-byte class serves 33 to 48 bytes and holds free objects. */
	CHECK(strstr(xml, "  <size from=\"33\" to=\"48\" total=\"") != NULL,
	      "no size element for the 48-byte class:\n%s", xml);
	CHECK(strstr(xml, "<total type=\"mmap\" count=\"") != NULL,
	      "no mmap total:\n%s", xml);
	CHECK(length > 10 && strcmp(xml + length - 10, "</malloc>\n") == 0,
	      "unexpected end:\n%s", xml);
}

/* Frees PURGE_COUNT objects of PURGE_SIZE bytes: nothing is purged
 * before malloc_trim, then their spans leave mallinfo2's arena (and their
 * objects its free count) and malloc_info reports them purged. */
static void check_purge(void)
{
	static const char purged[] = "<aspace type=\"purged\" size=\"";
	static const char current[] = "<system type=\"current\" size=\"";
	struct mallinfo2 filled, freed, trimmed;
	size_t heap_current, heap_purged, all_purged, ignored;
	const char *next;

	for (int i = 0; i < PURGE_COUNT; i++) {
		purge_objects[i] = malloc(PURGE_SIZE);
		CHECK(purge_objects[i] != NULL, "malloc(%d) failed", PURGE_SIZE);
	}
	filled = mallinfo2();
	for (int i = 0; i < PURGE_COUNT; i++)
		free(purge_objects[i]);
	freed = mallinfo2();
	CHECK(freed.arena == filled.arena,
	      "arena %zu -> %zu before malloc_trim with SLITTER_PURGE_DELAY=off",
	      filled.arena, freed.arena);
	CHECK(freed.ordblks - filled.ordblks == PURGE_COUNT,
	      "free objects grew by %zu for %d freed",
	      freed.ordblks - filled.ordblks, PURGE_COUNT);

	CHECK(malloc_trim(0) == 1, "malloc_trim released nothing");
	trimmed = mallinfo2();
	CHECK(trimmed.arena + PURGE_ENOUGH <= freed.arena,
	      "arena %zu -> %zu after malloc_trim", freed.arena, trimmed.arena);
	CHECK(trimmed.fordblks == trimmed.arena - trimmed.uordblks,
	      "arena %zu uordblks %zu fordblks %zu", trimmed.arena,
	      trimmed.uordblks, trimmed.fordblks);
	CHECK(trimmed.ordblks + PURGE_ENOUGH / PURGE_SIZE <= freed.ordblks,
	      "free objects %zu -> %zu: purged spans' objects still counted",
	      freed.ordblks, trimmed.ordblks);

	/* The heap's elements, then the top level's. slitter counts the top
	 * level's first: a purged span that stdio takes back while the heap
	 * is written lowers only the heap's purged bytes. */
	read_malloc_info();
	next = size_of_element(xml, current, &heap_current);
	next = size_of_element(next, purged, &heap_purged);
	next = size_of_element(next, current, &ignored);
	size_of_element(next, purged, &all_purged);
	CHECK(heap_purged >= PURGE_ENOUGH && all_purged >= heap_purged,
	      "purged: heap %zu, all %zu:\n%s", heap_purged, all_purged, xml);
	CHECK(heap_current + PURGE_ENOUGH <= freed.arena,
	      "the heap's current size %zu, arena %zu before malloc_trim:\n%s",
	      heap_current, freed.arena, xml);
}

static void check_mallopt_and_trim(void)
{
	static const int accepted[] = { M_MXFAST,	  M_TRIM_THRESHOLD,
					M_TOP_PAD,	  M_MMAP_THRESHOLD,
					M_MMAP_MAX,	  M_ARENA_TEST,
					M_ARENA_MAX };

	for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++)
		CHECK(mallopt(accepted[i], 2) == 1, "mallopt(%d) refused",
		      accepted[i]);
	CHECK(mallopt(M_CHECK_ACTION, 1) == 0, "M_CHECK_ACTION accepted");
	CHECK(mallopt(M_PERTURB, 0x55) == 0, "M_PERTURB accepted");
	CHECK(mallopt(12345, 1) == 0, "an unknown option accepted");
}

int main(void)
{
	struct mallinfo2 (*volatile mallinfo2_ref)(void) = mallinfo2;
	int (*volatile malloc_info_ref)(int, FILE *) = malloc_info;

	probe_report_allocator();
	printf("introspection: mallinfo2=%s malloc_info=%s\n",
	       probe_definer("mallinfo2", (void *)mallinfo2_ref),
	       probe_definer("malloc_info", (void *)malloc_info_ref));
	fflush(stdout);
	check_mallinfo();
	check_malloc_info();
	check_mallopt_and_trim();
	check_purge();
	malloc_stats();
	for (int i = COUNT / 2; i < COUNT; i++)
		free(objects[i]);
	printf("glibc_stats: ok\n");
	return 0;
}
