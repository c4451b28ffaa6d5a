/*
 * prodcons: a producer/consumer pair where every free is cross-thread.
 *
 *   prodcons [scale]
 *
 * The producer thread mallocs messages of 16..512 bytes (log-uniform),
 * fills their header and first bytes, and passes the pointers through a
 * bounded single-producer single-consumer ring (1024 slots) to the consumer
 * thread, which verifies each message, adds it to the checksum and frees
 * it. So every object is allocated by one thread and freed by the other.
 * Each side publishes its index every 32 messages and reads the other's
 * only when its last view is used up, so the ring itself costs little
 * cache-line traffic and the allocator's cross-thread free dominates. A
 * full or empty ring is waited on by spinning, then by sched_yield.
 * Default: 4 million messages.
 */
#include "workload.h"

#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>

#define RING 1024
#define BATCH 32

struct message {
	uint64_t tag;
	uint32_t size;
	uint32_t fill;
};

static struct {
	alignas(128) _Atomic uint64_t head; /* written by the producer */
	alignas(128) _Atomic uint64_t tail; /* written by the consumer */
	alignas(128) struct message *slots[RING];
} ring;

static uint64_t messages;

static void backoff(unsigned *spins)
{
	if (++*spins < 64)
		__builtin_ia32_pause();
	else
		sched_yield();
}

static void *producer(void *arg)
{
	(void)arg;
	struct wl_rng rng = wl_rng_new(0x70726f64ull);
	uint64_t head = 0;
	uint64_t tail_seen = 0; /* the consumer's last published tail */
	for (uint64_t i = 0; i < messages; i++) {
		size_t size = (size_t)wl_log_range(&rng, 16, 512);
		struct message *m = wl_malloc(size);
		m->tag = wl_mix64(i);
		m->size = (uint32_t)size;
		size_t fill = size - sizeof(*m);
		if (fill > 48)
			fill = 48;
		m->fill = (uint32_t)fill;
		memset(m + 1, (int)(m->tag & 0xff), fill);
		if (head - tail_seen == RING) {
			unsigned spins = 0;
			while (head - (tail_seen = atomic_load_explicit(&ring.tail,
									memory_order_acquire)) ==
			       RING)
				backoff(&spins);
		}
		ring.slots[head % RING] = m;
		head++;
		if (head % BATCH == 0 || head == messages)
			atomic_store_explicit(&ring.head, head, memory_order_release);
	}
	return NULL;
}

static void *consumer(void *arg)
{
	uint64_t *checksum = arg;
	uint64_t sum = 0;
	uint64_t tail = 0;
	uint64_t head_seen = 0; /* the producer's last published head */
	for (uint64_t i = 0; i < messages; i++) {
		if (tail == head_seen) {
			unsigned spins = 0;
			while ((head_seen = atomic_load_explicit(&ring.head, memory_order_acquire)) ==
			       tail)
				backoff(&spins);
		}
		struct message *m = ring.slots[tail % RING];
		tail++;
		if (tail % BATCH == 0)
			atomic_store_explicit(&ring.tail, tail, memory_order_release);
		if (m->tag != wl_mix64(i))
			wl_die("prodcons: message %llu corrupted", (unsigned long long)i);
		const unsigned char *body = (const unsigned char *)(m + 1);
		if (m->fill > 0 && (body[0] != (m->tag & 0xff) || body[m->fill - 1] != (m->tag & 0xff)))
			wl_die("prodcons: message %llu body corrupted", (unsigned long long)i);
		sum += m->tag ^ m->size;
		free(m);
	}
	*checksum = sum;
	return NULL;
}

int main(int argc, char **argv)
{
	wl_start();
	double scale = wl_scale_arg(argc, argv, 1);
	messages = wl_scaled(4000000, scale);
	uint64_t checksum = 0;

	double start = wl_now();
	pthread_t p, c;
	if (pthread_create(&c, NULL, consumer, &checksum) != 0 ||
	    pthread_create(&p, NULL, producer, NULL) != 0)
		wl_die("pthread_create failed");
	pthread_join(p, NULL);
	pthread_join(c, NULL);
	double elapsed = wl_now() - start;

	printf("messages: %llu\n", (unsigned long long)messages);
	printf("throughput: %.0f messages/s\n", (double)messages / elapsed);
	wl_print_checksum(checksum);
	return 0;
}
