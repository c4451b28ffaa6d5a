/*
 * The statistics of a forked child count only the threads it has.
 *
 * Two threads allocate, then wait while the main thread forks; the child
 * allocates a little and leaves with exit(0), so that SLITTER_STATS=1
 * prints its table; the parent waits for it, then stops and joins its
 * threads and exits (its table: no other thread either). Run by
 * tests/malloc.rs, which checks that no table mentions other running
 * threads. Prints "fork_stats: ok" last (the parent); a failure prints
 * "fork_stats: FAIL ..." and exits 1.
 */
#define _GNU_SOURCE

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "allocator_probe.h"

#define TEST_NAME "fork_stats"
#include "test_support.h"

#define THREADS 2
#define OBJECTS 100

static atomic_int ready;
static atomic_bool stop;

static void allocate_and_free(size_t size)
{
	void *objects[OBJECTS];
	for (size_t i = 0; i < OBJECTS; i++) {
		objects[i] = malloc(size);
		CHECK(objects[i] != NULL, "malloc(%zu) failed", size);
		memset(objects[i], 1, size);
	}
	for (size_t i = 0; i < OBJECTS; i++)
		free(objects[i]);
}

static void *worker(void *arg)
{
	(void)arg;
	allocate_and_free(64);
	atomic_fetch_add(&ready, 1);
	while (!atomic_load(&stop))
		usleep(1000);
	return NULL;
}

int main(void)
{
	probe_report_allocator();
	pthread_t threads[THREADS];
	for (int i = 0; i < THREADS; i++)
		CHECK(pthread_create(&threads[i], NULL, worker, NULL) == 0,
		      "pthread_create failed");
	while (atomic_load(&ready) < THREADS)
		usleep(1000);

	fflush(NULL);
	pid_t pid = fork();
	CHECK(pid >= 0, "fork failed");
	if (pid == 0) {
		allocate_and_free(32);
		exit(0);
	}
	int status;
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid failed");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "the child failed (status %#x)", status);

	atomic_store(&stop, true);
	for (int i = 0; i < THREADS; i++)
		CHECK(pthread_join(threads[i], NULL) == 0,
		      "pthread_join failed");
	printf(TEST_NAME ": ok\n");
	return 0;
}
