/*
 * glibc's malloc introspection functions as slitter answers them:
 * mallinfo2 and mallinfo after known malloc/free sequences, malloc_info's
 * XML, mallopt's accepted and refused options, malloc_trim, and
 * malloc_stats (whose table tests/stats.rs finds on stderr).
 *
 * tests/stats.rs builds this without slitter and runs it under
 * LD_PRELOAD=libslitter.so. The checks follow slitter's documented mapping
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

static void *volatile objects[COUNT];

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

static void check_malloc_info(void)
{
	static char xml[1 << 16];
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
	malloc_stats();
	for (int i = COUNT / 2; i < COUNT; i++)
		free(objects[i]);
	printf("glibc_stats: ok\n");
	return 0;
}
