/*
 * Thread churn with bounded memory: 10,000 short threads (created and joined
 * in waves of 8, so at most 8 live at once) each allocate and free objects
 * of several sizes, and free the objects an earlier thread left behind (so
 * objects outlive their allocating thread and are freed elsewhere). VmRSS is
 * read after 1,000 threads and at the end; the final value may not exceed
 * twice the first plus 8 MiB, or the allocator leaks per thread (caches of
 * exited threads never reclaimed, per-thread metadata never reused).
 *
 *   thread_churn [threads]
 *
 * Built without slitter and run under LD_PRELOAD=libslitter.so by
 * tests/malloc.rs; passes against glibc's malloc too. Prints the
 * allocator_probe.h line first, a line with both RSS values, and
 * "thread_churn: ok" last; a failure prints "thread_churn: FAIL ..." to
 * stderr and exits 1.
 */
#define _GNU_SOURCE

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allocator_probe.h"

#define TEST_NAME "thread_churn"
#include "test_support.h"

#define WAVE 8
#define KEPT 6 /* objects each thread leaves for a later one */
#define BASELINE_THREADS 1000

static const size_t sizes[] = { 8, 24, 48, 100, 256, 1000, 4000, 20000, 70000 };
#define NSIZES (sizeof(sizes) / sizeof(sizes[0]))

/* Objects left behind by the previous wave, one row per thread slot. */
struct left {
	unsigned char *p[KEPT];
	size_t size[KEPT];
	uint32_t seed;
};
static struct left left_by_previous[WAVE];
static struct left left_by_current[WAVE];

struct job {
	uint32_t number;
	int slot;
	bool failed;
	char message[160];
};

static uint8_t pattern(uint32_t seed, size_t i)
{
	return (uint8_t)(seed * 2654435761u + i * 13 + (i >> 8));
}

static void *thread_main(void *arg)
{
	struct job *job = arg;
	struct left *inherited = &left_by_previous[job->slot];
	struct left *mine = &left_by_current[job->slot];
	unsigned char *temp[NSIZES * 2];

	/* Free (after checking) what a thread of the previous wave kept. */
	for (int k = 0; k < KEPT; k++) {
		unsigned char *p = inherited->p[k];
		if (p == NULL)
			continue;
		for (size_t i = 0; i < inherited->size[k]; i += 7) {
			if (p[i] != pattern(inherited->seed + k, i)) {
				snprintf(job->message, sizeof(job->message),
					 "object %p kept by an earlier thread "
					 "corrupted at byte %zu",
					 (void *)p, i);
				job->failed = true;
				return NULL;
			}
		}
		free(p);
		inherited->p[k] = NULL;
	}

	/* Short-lived objects of every size, freed by this thread. */
	for (size_t i = 0; i < NSIZES * 2; i++) {
		size_t size = sizes[i % NSIZES] + job->number % 16;
		temp[i] = i % 3 == 0 ? calloc(1, size) : malloc(size);
		if (temp[i] == NULL) {
			snprintf(job->message, sizeof(job->message),
				 "allocation of %zu bytes failed", size);
			job->failed = true;
			return NULL;
		}
		memset(temp[i], (int)i, size);
	}
	for (size_t i = 0; i < NSIZES * 2; i++)
		free(temp[NSIZES * 2 - 1 - i]);

	/* Objects for a thread of the next wave to free. */
	mine->seed = job->number * 8;
	for (int k = 0; k < KEPT; k++) {
		size_t size = sizes[(job->number + (uint32_t)k) % NSIZES];
		unsigned char *p = malloc(size);
		if (p == NULL) {
			snprintf(job->message, sizeof(job->message),
				 "allocation of %zu bytes failed", size);
			job->failed = true;
			return NULL;
		}
		for (size_t i = 0; i < size; i += 7)
			p[i] = pattern(mine->seed + (uint32_t)k, i);
		mine->p[k] = p;
		mine->size[k] = size;
	}
	return NULL;
}

/* VmRSS from /proc/self/status, in KiB. */
static long rss_kib(void)
{
	FILE *status = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	CHECK(status != NULL, "cannot open /proc/self/status");
	while (fgets(line, sizeof(line), status) != NULL)
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(status);
	CHECK(kib > 0, "no VmRSS in /proc/self/status");
	return kib;
}

int main(int argc, char **argv)
{
	long total = argc > 1 ? atol(argv[1]) : 10000;
	long baseline = -1;
	struct job jobs[WAVE];
	pthread_t threads[WAVE];

	probe_report_allocator();
	CHECK(total >= 2 * BASELINE_THREADS, "need at least %d threads",
	      2 * BASELINE_THREADS);

	for (long started = 0; started < total; started += WAVE) {
		int wave = total - started < WAVE ? (int)(total - started)
						  : WAVE;
		for (int i = 0; i < wave; i++) {
			jobs[i] = (struct job){ .number = (uint32_t)(started + i),
						.slot = i };
			int err = pthread_create(&threads[i], NULL, thread_main,
						 &jobs[i]);
			CHECK(err == 0, "pthread_create failed (%d) after %ld "
			      "threads", err, started + i);
		}
		for (int i = 0; i < wave; i++) {
			CHECK(pthread_join(threads[i], NULL) == 0,
			      "pthread_join");
			CHECK(!jobs[i].failed, "thread %u: %s", jobs[i].number,
			      jobs[i].message);
		}
		memcpy(left_by_previous, left_by_current,
		       sizeof(left_by_previous));
		memset(left_by_current, 0, sizeof(left_by_current));
		if (started + wave == BASELINE_THREADS)
			baseline = rss_kib();
	}
	long final = rss_kib();
	for (int i = 0; i < WAVE; i++)
		for (int k = 0; k < KEPT; k++)
			free(left_by_previous[i].p[k]);

	printf("thread_churn: threads=%ld rss_after_%d_threads_kib=%ld "
	       "rss_final_kib=%ld\n",
	       total, BASELINE_THREADS, baseline, final);
	CHECK(baseline > 0, "no RSS reading after %d threads",
	      BASELINE_THREADS);
	CHECK(final <= 2 * baseline + 8 * 1024,
	      "RSS grew from %ld KiB after %d threads to %ld KiB after %ld",
	      baseline, BASELINE_THREADS, final, total);
	printf("thread_churn: ok\n");
	return 0;
}
