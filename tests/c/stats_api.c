/*
 * Checks the statistics C API through include/slitter.h only: per-class
 * counts after known allocate/release sequences (on this thread and on a
 * thread that exits), the process and mapper statistics, the versioned
 * structs (a caller that knows only a prefix of a struct, sizes too small,
 * NULL, unknown classes) and slitter_stats_print.
 *
 * Built and run by tests/stats.rs against the cdylib and the staticlib
 * (also with SLITTER_STATS=1, to check the table printed at exit). Prints
 * "stats_api: ok" at the end; a failed check prints a FAIL line to stderr
 * and exits 1.
 */
#define _POSIX_C_SOURCE 200809L

#include "slitter.h"

#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define TEST_NAME "stats_api"
#include "test_support.h"

DEFINE_SLITTER_CLASS(stats_class, .name = "stats-node", .size = 40); /* rounded up to 48 */

#define MAIN_ALLOCATIONS 1000
#define MAIN_RELEASES 300
#define THREAD_ALLOCATIONS 500
#define THREAD_RELEASES 200

static void *objects[MAIN_ALLOCATIONS];

static struct slitter_class_stats class_stats(void)
{
	struct slitter_class_stats stats = { .size = sizeof(stats) };

	CHECK(slitter_class_stats(stats_class, &stats) == 0,
	      "slitter_class_stats failed");
	CHECK(stats.size == sizeof(stats), "filled %u bytes of %zu",
	      stats.size, sizeof(stats));
	CHECK(stats.version == SLITTER_STATS_VERSION, "version %u",
	      stats.version);
	return stats;
}

static void check_counts(const struct slitter_class_stats *stats,
			 uint64_t allocations, uint64_t releases)
{
	CHECK(stats->allocations == allocations &&
		      stats->releases == releases &&
		      stats->live == allocations - releases,
	      "allocations %llu releases %llu live %llu, expected %llu %llu",
	      (unsigned long long)stats->allocations,
	      (unsigned long long)stats->releases,
	      (unsigned long long)stats->live,
	      (unsigned long long)allocations, (unsigned long long)releases);
}

/* Allocates THREAD_ALLOCATIONS objects, releases THREAD_RELEASES, exits. */
static void *thread_main(void *arg)
{
	static void *mine[THREAD_ALLOCATIONS];

	(void)arg;
	for (int i = 0; i < THREAD_ALLOCATIONS; i++)
		mine[i] = slitter_allocate(stats_class);
	for (int i = 0; i < THREAD_RELEASES; i++)
		slitter_release(stats_class, mine[i]);
	return NULL;
}

static void check_versioned_structs(void)
{
	/* A caller built against a header that only had the first fields. */
	struct {
		uint32_t size;
		uint32_t version;
		uint32_t id;
		uint32_t canary;
	} prefix = { .size = 12, .canary = 0xdeadbeef };
	struct slitter_class_stats too_small = { .size = 7 };
	struct slitter_class_stats stats = { .size = sizeof(stats) };
	struct slitter_class unknown = { .id = 0 };

	CHECK(slitter_class_stats(stats_class,
				  (struct slitter_class_stats *)&prefix) == 0,
	      "prefix refused");
	CHECK(prefix.size == 12 && prefix.version == SLITTER_STATS_VERSION &&
		      prefix.id == stats_class.id,
	      "prefix filled as size %u version %u id %u", prefix.size,
	      prefix.version, prefix.id);
	CHECK(prefix.canary == 0xdeadbeef,
	      "bytes past the caller's size were written");
	CHECK(slitter_class_stats(stats_class, &too_small) == EINVAL,
	      "a size below the header is refused");
	CHECK(slitter_class_stats(stats_class, NULL) == EINVAL,
	      "NULL is refused");
	CHECK(slitter_class_stats(unknown, &stats) == ENOENT,
	      "an unknown class is reported");
}

static void check_process_and_mappers(void)
{
	struct slitter_stats process = { .size = sizeof(process) };
	struct slitter_mapper_stats mapper = { .size = sizeof(mapper) };

	CHECK(slitter_stats(&process) == 0, "slitter_stats failed");
	CHECK(process.size == sizeof(process) &&
		      process.version == SLITTER_STATS_VERSION,
	      "process stats header %u %u", process.size, process.version);
	CHECK(process.classes >= 1 && process.classes_used >= 1,
	      "classes %llu used %llu", (unsigned long long)process.classes,
	      (unsigned long long)process.classes_used);
	CHECK(process.allocations >= MAIN_ALLOCATIONS + THREAD_ALLOCATIONS,
	      "process allocations %llu",
	      (unsigned long long)process.allocations);
	CHECK(process.uncounted_threads == 0,
	      "%llu threads with uncounted operations in a one-thread process",
	      (unsigned long long)process.uncounted_threads);
	CHECK(process.uncounted_bound > 0, "no uncounted bound");
	CHECK(process.chunks >= 1 && process.reserved_bytes >= process.span_bytes,
	      "chunks %llu reserved %llu spans %llu",
	      (unsigned long long)process.chunks,
	      (unsigned long long)process.reserved_bytes,
	      (unsigned long long)process.span_bytes);
	CHECK(process.purged_bytes <= process.span_bytes,
	      "purged %llu of %llu span bytes",
	      (unsigned long long)process.purged_bytes,
	      (unsigned long long)process.span_bytes);

	CHECK(slitter_mapper_stats(0, &mapper) == 0, "mapper 0 failed");
	CHECK(strcmp(mapper.name, "default") == 0, "mapper 0 is %s",
	      mapper.name);
	CHECK(mapper.chunks >= 1 && mapper.span_bytes > 0,
	      "default mapper: %llu chunks, %llu span bytes",
	      (unsigned long long)mapper.chunks,
	      (unsigned long long)mapper.span_bytes);
	CHECK(slitter_mapper_stats(99, &mapper) == ENOENT,
	      "mapper 99 exists");
}

/* The table slitter_stats_print writes holds this class's exact line. */
static void check_print(void)
{
	char table[65536];
	char expected[256];
	FILE *file = tmpfile();
	size_t length;

	CHECK(file != NULL, "tmpfile failed");
	CHECK(slitter_stats_print(fileno(file)) == 0, "print failed");
	rewind(file);
	length = fread(table, 1, sizeof(table) - 1, file);
	table[length] = '\0';
	fclose(file);
	snprintf(expected, sizeof(expected), "slitter: %-24s %5u %8d %12d %12d %12d",
		 "stats-node", stats_class.id, 48,
		 MAIN_ALLOCATIONS + THREAD_ALLOCATIONS,
		 MAIN_RELEASES + THREAD_RELEASES,
		 MAIN_ALLOCATIONS + THREAD_ALLOCATIONS - MAIN_RELEASES -
			 THREAD_RELEASES);
	CHECK(strstr(table, expected) != NULL, "no line \"%s\" in:\n%s",
	      expected, table);
	CHECK(strstr(table, "slitter: counts are exact\n") != NULL,
	      "counts not exact in:\n%s", table);
	CHECK(slitter_stats_print(-1) == EBADF, "printing to fd -1");
}

int main(void)
{
	struct slitter_class_stats stats = class_stats();
	pthread_t thread;

	CHECK(strcmp(stats.name, "stats-node") == 0, "name %s", stats.name);
	CHECK(stats.id == stats_class.id && stats.object_size == 48,
	      "id %u size %llu", stats.id,
	      (unsigned long long)stats.object_size);
	check_counts(&stats, 0, 0);
	CHECK(stats.spans == 0, "spans before any allocation");

	for (int i = 0; i < MAIN_ALLOCATIONS; i++)
		objects[i] = slitter_allocate(stats_class);
	stats = class_stats();
	check_counts(&stats, MAIN_ALLOCATIONS, 0);
	CHECK(stats.spans >= 1 && stats.span_bytes >= MAIN_ALLOCATIONS * 40,
	      "spans %llu bytes %llu", (unsigned long long)stats.spans,
	      (unsigned long long)stats.span_bytes);
	/* The class does not opt in to purging. */
	CHECK(stats.purged_bytes == 0, "purged %llu bytes",
	      (unsigned long long)stats.purged_bytes);
	for (int i = 0; i < MAIN_RELEASES; i++)
		slitter_release(stats_class, objects[i]);
	stats = class_stats();
	check_counts(&stats, MAIN_ALLOCATIONS, MAIN_RELEASES);

	CHECK(pthread_create(&thread, NULL, thread_main, NULL) == 0,
	      "pthread_create");
	CHECK(pthread_join(thread, NULL) == 0, "pthread_join");
	stats = class_stats();
	check_counts(&stats, MAIN_ALLOCATIONS + THREAD_ALLOCATIONS,
		     MAIN_RELEASES + THREAD_RELEASES);

	check_versioned_structs();
	check_process_and_mappers();
	check_print();
	printf("stats_api: ok\n");
	return 0;
}
