/*
 * fork_latency: how long fork() takes while other threads allocate.
 *
 *   fork_latency [forks]        (default 50)
 *
 * Two threads churn malloc/free of mixed sizes, as in the mixed_churn
 * workload (256 slots each; half the requests of 1..200,000 bytes, half
 * of 1..32 KiB; first and last bytes written). Once both have started,
 * the main thread forks `forks` times, 2 ms apart; each child calls
 * _exit(0) at once, and the parent reaps it after taking the time. The
 * latency of a fork is CLOCK_MONOTONIC around the fork() call in the
 * parent: it includes the allocator's pthread_atfork handlers (taking its
 * locks, which the churning threads hold now and then) and the copy of
 * the page tables, which grows with the mappings and resident memory the
 * allocator keeps. Prints
 *
 *   fork_us: median <microseconds> max <microseconds> (<forks> forks)
 *   churn_steps: <steps the two threads made meanwhile>
 *
 * Run by benches/compare.sh in its "Counts" section.
 */
#include "../workloads/workload.h"

#include <pthread.h>
#include <stdatomic.h>
#include <sys/wait.h>
#include <unistd.h>

#define CHURNERS 2
#define SLOTS 256
#define LARGE_MAX 200000
#define SMALL_MAX (32 * 1024)

static atomic_bool stop;
static atomic_uint started;
static _Atomic uint64_t total_steps;

static void *churn(void *arg)
{
	struct wl_rng rng = wl_rng_new(0x666f726bull + (uintptr_t)arg);
	unsigned char *slots[SLOTS] = {0};
	uint64_t steps = 0;
	atomic_fetch_add(&started, 1);
	while (!atomic_load_explicit(&stop, memory_order_relaxed)) {
		size_t i = (size_t)wl_below(&rng, SLOTS);
		uint64_t r = wl_next(&rng);
		size_t size = (size_t)(1 + wl_below(&rng, (r & 1) ? LARGE_MAX : SMALL_MAX));
		if (slots[i] != NULL) {
			if (slots[i][0] != (unsigned char)i)
				wl_die("fork_latency: block corrupted");
			free(slots[i]);
		}
		slots[i] = wl_malloc(size);
		slots[i][size - 1] = 0xa5;
		slots[i][0] = (unsigned char)i;
		wl_escape(slots[i]);
		steps++;
	}
	for (size_t i = 0; i < SLOTS; i++)
		free(slots[i]);
	atomic_fetch_add(&total_steps, steps);
	return NULL;
}

static int compare_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;
	return (x > y) - (x < y);
}

int main(int argc, char **argv)
{
	wl_start();
	long forks = wl_int_arg(argc, argv, 1, 50, 10000);
	pthread_t threads[CHURNERS];
	for (uintptr_t t = 0; t < CHURNERS; t++) {
		int err = pthread_create(&threads[t], NULL, churn, (void *)t);
		if (err != 0)
			wl_die("pthread_create: %s", strerror(err));
	}
	while (atomic_load(&started) < CHURNERS)
		usleep(100);
	usleep(20000); /* let the churn reach its steady state */

	double *us = wl_malloc((size_t)forks * sizeof(*us));
	for (long i = 0; i < forks; i++) {
		double before = wl_now();
		pid_t pid = fork();
		if (pid == 0)
			_exit(0);
		double after = wl_now();
		if (pid < 0)
			wl_die("fork: %s", strerror(errno));
		us[i] = (after - before) * 1e6;
		int status;
		if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) ||
		    WEXITSTATUS(status) != 0)
			wl_die("fork_latency: child %d did not exit cleanly", (int)pid);
		usleep(2000);
	}
	atomic_store(&stop, true);
	for (int t = 0; t < CHURNERS; t++)
		pthread_join(threads[t], NULL);

	qsort(us, (size_t)forks, sizeof(*us), compare_double);
	double median = forks % 2 ? us[forks / 2] : (us[forks / 2 - 1] + us[forks / 2]) / 2;
	printf("fork_us: median %.0f max %.0f (%ld forks)\n", median, us[forks - 1], forks);
	printf("churn_steps: %llu\n", (unsigned long long)atomic_load(&total_steps));
	free(us);
	return 0;
}
