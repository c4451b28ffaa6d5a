/*
 * mixed_churn: threads churning blocks of mixed sizes, small to large.
 *
 *   mixed_churn [scale] [threads]        (threads: 1..64, default 2)
 *
 * Each thread keeps 256 slots of its own and, for its share of the steps,
 * picks a slot at random, verifies and frees the block in it (when there
 * is one) and mallocs a new one: half the requests are of 1..200,000
 * bytes, half of 1..32 KiB (uniform), so small, medium and large size
 * classes churn side by side, in two threads at once. The first and last
 * bytes of every block are written and checked before it is freed.
 * Nothing crosses threads. A fixed total of 4 M * scale steps is split
 * evenly across the threads; each thread's generator is seeded by its
 * index, so the checksum depends on the scale and the thread count (the
 * runner always uses 2 threads) but not on the interleaving.
 * Prints "throughput: <steps/s>" from the start of the threads to their
 * end, and the checksum.
 */
#include "workload.h"

#include <pthread.h>

#define MAX_THREADS 64
#define SLOTS 256
#define LARGE_MAX 200000
#define SMALL_MAX (32 * 1024)

struct block {
	unsigned char *data;
	size_t size;
	uint64_t tag;
};

struct thread_state {
	pthread_t thread;
	unsigned index;
	uint64_t steps;
	uint64_t checksum;
};

static uint64_t verify(const struct block *b)
{
	/* a block of 1 byte has its first byte as its last: the first wins */
	if (b->data[0] != (unsigned char)b->tag ||
	    (b->size > 1 && b->data[b->size - 1] != (unsigned char)(b->tag >> 8)))
		wl_die("mixed_churn: block of %zu bytes corrupted", b->size);
	return wl_mix64(b->tag ^ b->size);
}

static void *worker(void *arg)
{
	struct thread_state *st = arg;
	struct wl_rng rng = wl_rng_new(0x6d69786564ull + st->index);
	struct block slots[SLOTS] = {{0}};
	uint64_t sum = 0;
	for (uint64_t step = 0; step < st->steps; step++) {
		struct block *b = &slots[wl_below(&rng, SLOTS)];
		uint64_t r = wl_next(&rng);
		size_t size = (size_t)(1 + wl_below(&rng, (r & 1) ? LARGE_MAX : SMALL_MAX));
		if (b->data != NULL) {
			sum += verify(b);
			free(b->data);
		}
		b->data = wl_malloc(size);
		b->size = size;
		b->tag = wl_mix64(step ^ ((uint64_t)st->index << 48));
		b->data[size - 1] = (unsigned char)(b->tag >> 8);
		b->data[0] = (unsigned char)b->tag;
		wl_escape(b->data);
	}
	for (size_t i = 0; i < SLOTS; i++) {
		if (slots[i].data != NULL) {
			sum += verify(&slots[i]);
			free(slots[i].data);
		}
	}
	st->checksum = sum;
	return NULL;
}

int main(int argc, char **argv)
{
	wl_start();
	double scale = wl_scale_arg(argc, argv, 1);
	unsigned threads = (unsigned)wl_int_arg(argc, argv, 2, 2, MAX_THREADS);
	uint64_t total = wl_scaled(4000000, scale);
	struct thread_state states[MAX_THREADS];

	double start = wl_now();
	for (unsigned t = 0; t < threads; t++) {
		states[t].index = t;
		states[t].steps = total / threads + (t < total % threads ? 1 : 0);
		states[t].checksum = 0;
		int err = pthread_create(&states[t].thread, NULL, worker, &states[t]);
		if (err != 0)
			wl_die("pthread_create: %s", strerror(err));
	}
	uint64_t checksum = 0;
	for (unsigned t = 0; t < threads; t++) {
		pthread_join(states[t].thread, NULL);
		checksum += wl_mix64(states[t].checksum + t);
	}
	double elapsed = wl_now() - start;

	printf("steps: %llu, threads: %u\n", (unsigned long long)total, threads);
	printf("throughput: %.0f\n", elapsed > 0 ? (double)total / elapsed : 0.0);
	wl_print_checksum(checksum);
	return 0;
}
