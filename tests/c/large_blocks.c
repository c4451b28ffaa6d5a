/*
 * Large blocks: many live at once, memory kept for reuse decaying back,
 * malloc_trim, and realloc across the size classes.
 *
 *   large_blocks [live]
 *
 * 1. `live` (default 20,000) blocks of 64 KiB live at once: all distinct,
 *    each holding its bytes, and at most 1,500 lines in /proc/self/maps
 *    while they live when `live` is 20,000 (the kernel allows 65,530
 *    mappings: a mapping or two per block would not do).
 * 2. Decay: a 1 GiB peak of 256 KiB blocks, every page touched, all
 *    freed, then about 1 s of light activity (a large malloc/free every
 *    10 ms): at most 32 MiB more resident than before the peak.
 * 3. malloc_trim(0): 64 MiB of 256 KiB blocks touched and freed, then
 *    trimmed at once: at most 8 MiB more resident than before.
 * 4. realloc from 40 KiB to 8 MiB and back to 33 KiB in steps that cross
 *    the size classes (and the 1 MiB boundary between grouped blocks and
 *    blocks with guards of their own), the contents kept at every step.
 *
 * Built without slitter and run under LD_PRELOAD=libslitter.so by
 * tests/malloc.rs. Prints the allocator_probe.h line first, one line per
 * part, and "large_blocks: ok" last; a failure prints
 * "large_blocks: FAIL ..." to stderr and exits 1.
 */
#define _GNU_SOURCE

#include <malloc.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "allocator_probe.h"

#define TEST_NAME "large_blocks"
#include "test_support.h"

#define MIB (1024L * 1024)

static long resident_bytes(void)
{
	FILE *f = fopen("/proc/self/statm", "r");
	long size = 0, resident = 0;
	CHECK(f != NULL, "cannot open /proc/self/statm");
	CHECK(fscanf(f, "%ld %ld", &size, &resident) == 2, "bad statm");
	fclose(f);
	return resident * sysconf(_SC_PAGESIZE);
}

static int mapping_count(void)
{
	FILE *f = fopen("/proc/self/maps", "r");
	int lines = 0, c;
	CHECK(f != NULL, "cannot open /proc/self/maps");
	while ((c = fgetc(f)) != EOF)
		lines += c == '\n';
	fclose(f);
	return lines;
}

static void many_live(long live)
{
	enum { SIZE = 64 * 1024 };
	char **blocks = calloc(live, sizeof(*blocks));
	CHECK(blocks != NULL, "calloc failed");
	for (long i = 0; i < live; i++) {
		blocks[i] = malloc(SIZE);
		CHECK(blocks[i] != NULL, "malloc %ld of %ld failed", i, live);
		blocks[i][0] = (char)i;
		blocks[i][SIZE - 1] = (char)(i >> 8);
	}
	int maps = mapping_count();
	for (long i = 0; i < live; i++) {
		CHECK(blocks[i][0] == (char)i && blocks[i][SIZE - 1] == (char)(i >> 8),
		      "block %ld overwritten", i);
		free(blocks[i]);
	}
	free(blocks);
	printf("live 64 KiB blocks: %ld, mappings: %d\n", live, maps);
	if (live <= 20000)
		CHECK(maps <= 1500, "%d mappings for %ld live blocks", maps, live);
}

static void touch_and_free_peak(long bytes)
{
	enum { SIZE = 256 * 1024 };
	long count = bytes / SIZE;
	char **blocks = calloc(count, sizeof(*blocks));
	CHECK(blocks != NULL, "calloc failed");
	for (long i = 0; i < count; i++) {
		blocks[i] = malloc(SIZE);
		CHECK(blocks[i] != NULL, "malloc failed");
		memset(blocks[i], 1, SIZE);
	}
	for (long i = 0; i < count; i++)
		free(blocks[i]);
	free(blocks);
}

static void decay(void)
{
	long before = resident_bytes();
	touch_and_free_peak(1024 * MIB);
	long peak = resident_bytes();
	struct timespec pause = { 0, 10 * 1000 * 1000 };
	for (int i = 0; i < 100; i++) {
		char *p = malloc(100000);
		CHECK(p != NULL, "malloc failed");
		p[0] = 1;
		free(p);
		nanosleep(&pause, NULL);
	}
	long after = resident_bytes();
	printf("decay: resident %ld MiB before, %ld MiB after the peak, %ld MiB 1 s later\n",
	       before / MIB, peak / MIB, after / MIB);
	CHECK(after - before <= 32 * MIB, "%ld MiB kept", (after - before) / MIB);
}

static void trim(void)
{
	long before = resident_bytes();
	touch_and_free_peak(64 * MIB);
	long freed = resident_bytes();
	malloc_trim(0);
	long after = resident_bytes();
	printf("trim: resident %ld MiB before, %ld MiB after the frees, %ld MiB trimmed\n",
	       before / MIB, freed / MIB, after / MIB);
	CHECK(after - before <= 8 * MIB, "%ld MiB kept", (after - before) / MIB);
}

static void check_pattern(const unsigned char *p, size_t size, const char *when)
{
	for (size_t i = 0; i < size; i += 509)
		CHECK(p[i] == (unsigned char)(i * 7), "byte %zu lost %s", i, when);
	CHECK(p[size - 1] == (unsigned char)((size - 1) * 7), "last byte lost %s", when);
}

static void fill_pattern(unsigned char *p, size_t from, size_t size)
{
	for (size_t i = from; i < size; i++)
		p[i] = (unsigned char)(i * 7);
}

static void resizes(void)
{
	size_t size = 40 * 1024;
	unsigned char *p = malloc(size);
	CHECK(p != NULL, "malloc failed");
	fill_pattern(p, 0, size);
	int steps = 0;
	while (size < 8 * MIB) {
		size_t next = size + size / 3 + 4096 * 3 + 16;
		p = realloc(p, next);
		CHECK(p != NULL, "realloc to %zu failed", next);
		check_pattern(p, size, "growing");
		CHECK(malloc_usable_size(p) >= next, "usable size below %zu", next);
		fill_pattern(p, size, next);
		size = next;
		steps++;
	}
	while (size > 33 * 1024) {
		size_t next = size - size / 3 - 16;
		if (next < 33 * 1024)
			next = 33 * 1024;
		p = realloc(p, next);
		CHECK(p != NULL, "realloc to %zu failed", next);
		check_pattern(p, next, "shrinking");
		size = next;
		steps++;
	}
	free(p);
	printf("realloc: %d steps\n", steps);
}

int main(int argc, char **argv)
{
	probe_report_allocator();
	long live = argc > 1 ? atol(argv[1]) : 20000;
	many_live(live);
	resizes();
	decay();
	trim();
	printf(TEST_NAME ": ok\n");
	return 0;
}
