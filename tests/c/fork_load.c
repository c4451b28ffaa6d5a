/*
 * fork() under allocation load: while 3 threads loop on malloc, calloc,
 * realloc and free of random sizes, the main thread forks repeatedly. Each
 * child (whose copies of the allocating threads vanished, possibly in the
 * middle of a malloc) checks and frees objects it inherited, allocates and
 * frees a few hundred objects small and large, sometimes from a new thread
 * too, and leaves with _exit(0). The parent waits for every child and fails
 * unless each exited with status 0. A child that hangs (say on a lock
 * inherited in the locked state) is killed by its own alarm after 10 s.
 *
 *   fork_load [forks]
 *
 * Built without slitter and run under LD_PRELOAD=libslitter.so by
 * tests/malloc.rs; passes against glibc's malloc too. Prints the
 * allocator_probe.h line first and "fork_load: ok" last; a failure prints
 * "fork_load: FAIL file:line: ..." to stderr and exits 1.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "allocator_probe.h"

#define TEST_NAME "fork_load"
#include "test_support.h"

#define WORKERS 3
#define KIB ((size_t)1 << 10)
#define MIB ((size_t)1 << 20)
#define INHERITED 64

/* Exit statuses of a child that found a problem. */
enum { CHILD_NULL = 2, CHILD_CORRUPT = 3, CHILD_THREAD = 4 };

static atomic_bool stop;
/* Set while a child runs, so that the workers (which must be busy when the
 * parent forks) do not starve the child of CPU afterwards. */
static atomic_bool child_running;
static atomic_long worker_ops;

/* Mostly small, sometimes up to 2 MiB. */
static size_t random_size(uint64_t *rng)
{
	uint64_t r = next_random(rng);
	switch (r % 64) {
	case 0:
		return 64 * KIB + (r >> 8) % (2 * MIB);
	case 1:
	case 2:
		return 1 + (r >> 8) % (64 * KIB);
	default:
		return 1 + (r >> 8) % 512;
	}
}

static void *worker(void *arg)
{
	uint64_t rng = (uintptr_t)arg * 0x9E3779B97F4A7C15ull + 1;
	void *slots[32] = { 0 };

	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		if (atomic_load_explicit(&child_running, memory_order_relaxed)) {
			usleep(100);
			continue;
		}
		size_t i = next_random(&rng) % 32;
		size_t size = random_size(&rng);

		switch (next_random(&rng) % 4) {
		case 0:
			free(slots[i]);
			slots[i] = malloc(size);
			break;
		case 1:
			free(slots[i]);
			slots[i] = calloc(1, size);
			break;
		case 2: {
			void *p = realloc(slots[i], size);
			if (p != NULL)
				slots[i] = p;
			break;
		}
		default:
			free(slots[i]);
			slots[i] = NULL;
			break;
		}
		if (slots[i] != NULL)
			memset(slots[i], 0x3C, size < 256 ? size : 256);
		atomic_fetch_add_explicit(&worker_ops, 1, memory_order_relaxed);
	}
	for (size_t i = 0; i < 32; i++)
		free(slots[i]);
	return NULL;
}

static uint8_t pattern(uint64_t seed, size_t i)
{
	return (uint8_t)(seed * 131 + i * 7 + (i >> 9));
}

/* Objects the parent allocated before forking; children check and free
 * their copies. */
static unsigned char *inherited[INHERITED];
static size_t inherited_size[INHERITED];

static int child_allocations(uint64_t seed)
{
	uint64_t rng = seed * 0xD1B54A32D192ED03ull + 7;
	enum { LIVE = 48 };
	unsigned char *live[LIVE] = { 0 };
	size_t size[LIVE] = { 0 };

	for (int round = 0; round < 300; round++) {
		size_t i = next_random(&rng) % LIVE;
		if (live[i] != NULL) {
			for (size_t b = 0; b < size[i]; b += 61)
				if (live[i][b] != pattern(i, b))
					return CHILD_CORRUPT;
			free(live[i]);
		}
		size[i] = round % 50 == 0 ? MIB + round * 1000
					  : random_size(&rng);
		live[i] = malloc(size[i]);
		if (live[i] == NULL)
			return CHILD_NULL;
		for (size_t b = 0; b < size[i]; b += 61)
			live[i][b] = pattern(i, b);
	}
	for (size_t i = 0; i < LIVE; i++)
		free(live[i]);
	return 0;
}

static void *child_thread(void *arg)
{
	return (void *)(intptr_t)child_allocations((uintptr_t)arg);
}

static int child(int n)
{
	alarm(10);
	for (size_t i = 0; i < INHERITED; i++) {
		for (size_t b = 0; b < inherited_size[i]; b++)
			if (inherited[i][b] != pattern(1000 + i, b))
				return CHILD_CORRUPT;
		free(inherited[i]);
	}
	int status = child_allocations((uint64_t)n);
	if (status != 0)
		return status;
	if (n % 8 == 0) {
		pthread_t thread;
		void *result;
		if (pthread_create(&thread, NULL, child_thread,
				   (void *)(uintptr_t)(n + 1)) != 0 ||
		    pthread_join(thread, &result) != 0)
			return CHILD_THREAD;
		if (result != NULL)
			return (int)(intptr_t)result;
	}
	return 0;
}

int main(int argc, char **argv)
{
	int forks = argc > 1 ? atoi(argv[1]) : 150;
	pthread_t workers[WORKERS];

	probe_report_allocator();
	CHECK(forks > 0, "bad fork count");
	alarm(120);

	for (size_t i = 0; i < INHERITED; i++) {
		inherited_size[i] = i % 16 == 0 ? 300 * KIB + i : 8 + i * 37;
		inherited[i] = malloc(inherited_size[i]);
		CHECK(inherited[i] != NULL, "malloc(%zu)", inherited_size[i]);
		for (size_t b = 0; b < inherited_size[i]; b++)
			inherited[i][b] = pattern(1000 + i, b);
	}
	for (uintptr_t i = 0; i < WORKERS; i++)
		CHECK(pthread_create(&workers[i], NULL, worker,
				     (void *)(i + 1)) == 0,
		      "pthread_create");

	for (int n = 0; n < forks; n++) {
		/* Let the workers get going between forks. */
		long before = atomic_load(&worker_ops);
		while (atomic_load(&worker_ops) < before + 200)
			sched_yield();

		pid_t pid = fork();
		CHECK(pid >= 0, "fork: %s", strerror(errno));
		if (pid == 0)
			_exit(child(n));
		atomic_store(&child_running, true);

		int status;
		CHECK(waitpid(pid, &status, 0) == pid, "waitpid: %s",
		      strerror(errno));
		atomic_store(&child_running, false);
		CHECK(!WIFSIGNALED(status),
		      "child %d (pid %d) killed by signal %d%s", n, (int)pid,
		      WTERMSIG(status),
		      WTERMSIG(status) == SIGALRM ? " (hung for 10 s)" : "");
		CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
		      "child %d (pid %d) exited with status %d", n, (int)pid,
		      WEXITSTATUS(status));
	}

	atomic_store(&stop, true);
	for (int i = 0; i < WORKERS; i++)
		CHECK(pthread_join(workers[i], NULL) == 0, "pthread_join");
	for (size_t i = 0; i < INHERITED; i++)
		free(inherited[i]);

	printf("fork_load: forks=%d worker_ops=%ld\n", forks,
	       atomic_load(&worker_ops));
	printf("fork_load: ok\n");
	return 0;
}
