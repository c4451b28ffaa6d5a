/*
 * server: a server-like churn in which threads exchange objects.
 *
 *   server [scale] [threads]        (threads: 1..64, default 2)
 *
 * A fixed total of 4 million * scale requests is split evenly across the
 * threads, whatever their number, so `server S 1` and `server S 2` do the
 * same work and print the same checksum; compare their throughput lines
 * to see how the allocator scales.
 *
 * Request i is handled by the thread whose share contains i. Handling it
 * allocates a 64-byte request header, a body of 16..4096 bytes
 * (log-uniform), fills and hashes the first bytes of the body, and
 * allocates a response of 32..512 bytes. Then, chosen by a hash of i:
 *   - 50%: everything is freed at once by the same thread;
 *   - 25%: the request joins the thread's session window (4096 entries);
 *     the request it displaces is freed by the same thread;
 *   - 25%: the request is passed to the next thread ((t + 1) % threads, so
 *     the thread itself when alone), which frees it: a cross-thread free
 *     whenever there are two threads or more.
 * Passed requests are sent in batches of 32, each with one lock-free push
 * onto the receiver's mailbox (an intrusive Treiber stack); a thread
 * drains its own mailbox every 64 requests and until every thread is done.
 * A sender waits (draining its own mailbox) while 2048 of its requests are
 * not yet freed by the receiver, as a server applies back-pressure, so
 * memory stays bounded whatever the relative speeds of the threads. Each freed request's contents are verified
 * and summed into the checksum, which depends on i only, so it does not
 * depend on the number of threads nor on the interleaving.
 *
 * Prints "throughput: <requests/s>" measured from the start of the threads
 * to their end, and the checksum.
 */
#include "workload.h"

#include <pthread.h>
#include <sched.h>
#include <stdalign.h>
#include <stdatomic.h>

#define MAX_THREADS 64
#define WINDOW 4096
#define SEND_BATCH 32
#define DRAIN_EVERY 64
#define IN_FLIGHT 2048

struct request {
	struct request *next; /* mailbox link */
	uint64_t id;
	unsigned char *body;
	unsigned char *response;
	uint32_t body_size;
	uint32_t response_size;
	uint64_t hash;
	uint64_t pad[2]; /* 64 bytes in all */
};

struct thread_state {
	alignas(128) _Atomic(struct request *) mailbox;
	alignas(128) _Atomic uint64_t received; /* requests drained so far */
	alignas(128) pthread_t thread;
	unsigned index;
	uint64_t first;
	uint64_t end;
	uint64_t checksum;
	struct request *window[WINDOW];
};

static struct thread_state *states;
static unsigned threads;
static _Atomic unsigned done;
static _Atomic unsigned ready;

static uint64_t body_fill_hash(const unsigned char *body, size_t n)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < n; i++)
		h = (h ^ body[i]) * 0x100000001b3ull;
	return h;
}

static struct request *handle(uint64_t id)
{
	uint64_t r = wl_mix64(id);
	struct request *q = wl_malloc(sizeof(*q));
	q->next = NULL;
	q->id = id;
	/* log-uniform 16..4096 from the hash bits */
	unsigned bits = 4 + (unsigned)((r >> 8) % 9); /* 4..12 */
	size_t body_size = ((size_t)1 << bits) + ((r >> 16) & (((size_t)1 << bits) - 1));
	if (body_size > 4096)
		body_size = 4096;
	q->body_size = (uint32_t)body_size;
	q->body = wl_malloc(body_size);
	size_t fill = body_size < 64 ? body_size : 64;
	for (size_t i = 0; i < fill; i++)
		q->body[i] = (unsigned char)(r >> ((i & 7) * 8)) + (unsigned char)i;
	q->hash = body_fill_hash(q->body, fill);
	size_t response_size = 32 + (size_t)((r >> 32) % 481);
	q->response_size = (uint32_t)response_size;
	q->response = wl_malloc(response_size);
	memcpy(q->response, &q->hash, sizeof(q->hash));
	memset(q->response + sizeof(q->hash), (int)(r & 0xff), response_size - sizeof(q->hash));
	return q;
}

/* Verifies, frees and returns the checksum contribution of a request. */
static uint64_t retire(struct request *q)
{
	size_t fill = q->body_size < 64 ? q->body_size : 64;
	uint64_t h = body_fill_hash(q->body, fill);
	uint64_t stored;
	memcpy(&stored, q->response, sizeof(stored));
	if (h != q->hash || stored != h ||
	    q->response[q->response_size - 1] != (unsigned char)(wl_mix64(q->id) & 0xff))
		wl_die("server: request %llu corrupted", (unsigned long long)q->id);
	uint64_t contribution = wl_mix64(h ^ q->id) + q->body_size + q->response_size;
	free(q->response);
	free(q->body);
	free(q);
	return contribution;
}

/* Pushes the list first..last onto the receiver's mailbox. */
static void push(struct thread_state *to, struct request *first, struct request *last)
{
	struct request *head = atomic_load_explicit(&to->mailbox, memory_order_relaxed);
	do {
		last->next = head;
	} while (!atomic_compare_exchange_weak_explicit(&to->mailbox, &head, first,
							 memory_order_release,
							 memory_order_relaxed));
}

static void drain(struct thread_state *self)
{
	if (atomic_load_explicit(&self->mailbox, memory_order_relaxed) == NULL)
		return;
	struct request *q = atomic_exchange_explicit(&self->mailbox, NULL, memory_order_acquire);
	uint64_t n = 0;
	while (q != NULL) {
		struct request *next = q->next;
		self->checksum += retire(q);
		q = next;
		n++;
	}
	atomic_store_explicit(&self->received,
			      atomic_load_explicit(&self->received, memory_order_relaxed) + n,
			      memory_order_release);
}

/* Requests waiting to be sent to the peer, and how many were sent. */
struct outbox {
	struct request *first;
	struct request *last;
	uint64_t count;
	uint64_t sent;
};

static void flush(struct thread_state *self, struct thread_state *peer, struct outbox *out)
{
	if (out->count == 0)
		return;
	/* Back-pressure: at most IN_FLIGHT requests sent and not yet freed
	 * by the peer; wait (freeing our own incoming requests meanwhile)
	 * rather than queue without bound. */
	unsigned spins = 0;
	while (out->sent - atomic_load_explicit(&peer->received, memory_order_acquire) >=
	       IN_FLIGHT) {
		drain(self);
		if (++spins > 16)
			sched_yield();
	}
	push(peer, out->first, out->last);
	out->sent += out->count;
	out->first = out->last = NULL;
	out->count = 0;
}

static void *worker(void *arg)
{
	struct thread_state *self = arg;
	struct thread_state *peer = &states[(self->index + 1) % threads];
	struct outbox out = {0};
	unsigned slot = 0;

	atomic_fetch_add(&ready, 1);
	while (atomic_load(&ready) < threads)
		sched_yield();

	for (uint64_t id = self->first; id < self->end; id++) {
		struct request *q = handle(id);
		uint64_t fate = (wl_mix64(id ^ 0x5e55) >> 60) & 3;
		if (fate <= 1) {
			self->checksum += retire(q);
		} else if (fate == 2) {
			struct request *old = self->window[slot];
			self->window[slot] = q;
			slot = (slot + 1) % WINDOW;
			if (old != NULL)
				self->checksum += retire(old);
		} else {
			q->next = NULL;
			if (out.last != NULL)
				out.last->next = q;
			else
				out.first = q;
			out.last = q;
			if (++out.count == SEND_BATCH)
				flush(self, peer, &out);
		}
		if ((id - self->first) % DRAIN_EVERY == DRAIN_EVERY - 1)
			drain(self);
	}
	flush(self, peer, &out);

	atomic_fetch_add(&done, 1);
	while (atomic_load(&done) < threads) {
		drain(self);
		sched_yield();
	}
	drain(self);
	for (unsigned i = 0; i < WINDOW; i++)
		if (self->window[i] != NULL)
			self->checksum += retire(self->window[i]);
	return NULL;
}

int main(int argc, char **argv)
{
	wl_start();
	double scale = wl_scale_arg(argc, argv, 1);
	threads = (unsigned)wl_int_arg(argc, argv, 2, 2, MAX_THREADS);
	uint64_t total = wl_scaled(4000000, scale);

	states = aligned_alloc(128, sizeof(*states) * threads);
	if (states == NULL)
		wl_die("cannot allocate the thread states");
	memset(states, 0, sizeof(*states) * threads);
	for (unsigned t = 0; t < threads; t++) {
		states[t].index = t;
		states[t].first = total * t / threads;
		states[t].end = total * (t + 1) / threads;
	}

	double start = wl_now();
	for (unsigned t = 0; t < threads; t++)
		if (pthread_create(&states[t].thread, NULL, worker, &states[t]) != 0)
			wl_die("pthread_create failed");
	uint64_t checksum = 0;
	for (unsigned t = 0; t < threads; t++) {
		pthread_join(states[t].thread, NULL);
		checksum += states[t].checksum;
	}
	double elapsed = wl_now() - start;

	printf("threads: %u\n", threads);
	printf("requests: %llu\n", (unsigned long long)total);
	printf("throughput: %.0f requests/s\n", (double)total / elapsed);
	wl_print_checksum(checksum);
	free(states);
	return 0;
}
