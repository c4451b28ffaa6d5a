/*
 * churn: small-object churn with random sizes and mixed lifetimes.
 *
 *   churn [scale]
 *
 * Sizes are 8..1024 bytes, skewed towards small ones (about 60% up to 64
 * bytes, 30% up to 256, 10% up to 1024). Each step does one of:
 *   - 50%: replace a random slot of a 32768-entry working set (medium
 *     lifetime: an object lives for about 64k steps);
 *   - 40%: allocate a temporary, use it and free it at once (short lifetime,
 *     one in four kept in a 16-entry FIFO a little longer);
 *   - 10%: replace a slot of a 4096-entry long-lived set only one time in
 *     sixteen (long lifetime), otherwise read a long-lived object.
 * Every object carries a tag in its first 8 bytes and a check byte at its
 * end; both are verified on free and summed into the checksum.
 * Single-threaded. Default: 30 million steps.
 */
#include "workload.h"

#define WORKING 32768
#define LONG_LIVED 4096
#define FIFO 16

struct obj {
	uint64_t tag;
	uint32_t size;
};

static uint64_t checksum;

static size_t churn_size(struct wl_rng *r)
{
	uint64_t p = wl_below(r, 10);
	if (p < 6)
		return (size_t)wl_range(r, 8, 64);
	if (p < 9)
		return (size_t)wl_range(r, 65, 256);
	return (size_t)wl_range(r, 257, 1024);
}

/* Allocates and initialises an object of `size` bytes with tag `tag`. */
static unsigned char *make(size_t size, uint64_t tag)
{
	unsigned char *p = wl_malloc(size);
	/* The first 8 bytes hold the tag (as much of it as fits before the
	 * last byte), the last byte a check value, and up to 32 more bytes
	 * are written as a program initialising its object would. */
	size_t head = size - 1 < 8 ? size - 1 : 8;
	memcpy(p, &tag, head);
	size_t body = size - 1 - head;
	if (body > 32)
		body = 32;
	memset(p + head, (int)(tag & 0xff), body);
	p[size - 1] = (unsigned char)(tag >> 56) ^ (unsigned char)size;
	wl_escape(p);
	return p;
}

/* Verifies and frees an object made by make(size, tag). */
static void destroy(unsigned char *p, size_t size, uint64_t tag)
{
	uint64_t got = 0;
	size_t head = size - 1 < 8 ? size - 1 : 8;
	uint64_t want = 0;
	memcpy(&got, p, head);
	memcpy(&want, &tag, head);
	if (got != want || p[size - 1] != ((unsigned char)(tag >> 56) ^ (unsigned char)size))
		wl_die("churn: object %p (size %zu) corrupted", (void *)p, size);
	checksum += tag ^ size;
	free(p);
}

int main(int argc, char **argv)
{
	wl_start();
	double scale = wl_scale_arg(argc, argv, 1);
	uint64_t steps = wl_scaled(30000000, scale);
	struct wl_rng rng = wl_rng_new(0x636875726eull);

	static unsigned char *work[WORKING];
	static struct obj work_meta[WORKING];
	static unsigned char *longs[LONG_LIVED];
	static struct obj long_meta[LONG_LIVED];
	unsigned char *fifo[FIFO] = {0};
	struct obj fifo_meta[FIFO] = {{0}};
	unsigned fifo_head = 0;
	uint64_t serial = 0;

	for (size_t i = 0; i < LONG_LIVED; i++) {
		size_t size = churn_size(&rng);
		uint64_t tag = wl_mix64(++serial);
		longs[i] = make(size, tag);
		long_meta[i] = (struct obj){tag, (uint32_t)size};
	}

	for (uint64_t step = 0; step < steps; step++) {
		uint64_t kind = wl_below(&rng, 10);
		size_t size = churn_size(&rng);
		uint64_t tag = wl_mix64(++serial);
		if (kind < 5) {
			size_t i = (size_t)wl_below(&rng, WORKING);
			if (work[i] != NULL)
				destroy(work[i], work_meta[i].size, work_meta[i].tag);
			work[i] = make(size, tag);
			work_meta[i] = (struct obj){tag, (uint32_t)size};
		} else if (kind < 9) {
			unsigned char *p = make(size, tag);
			if ((tag & 3) == 0) {
				unsigned slot = fifo_head++ % FIFO;
				if (fifo[slot] != NULL)
					destroy(fifo[slot], fifo_meta[slot].size, fifo_meta[slot].tag);
				fifo[slot] = p;
				fifo_meta[slot] = (struct obj){tag, (uint32_t)size};
			} else {
				destroy(p, size, tag);
			}
		} else {
			size_t i = (size_t)wl_below(&rng, LONG_LIVED);
			if ((tag & 15) == 0) {
				destroy(longs[i], long_meta[i].size, long_meta[i].tag);
				longs[i] = make(size, tag);
				long_meta[i] = (struct obj){tag, (uint32_t)size};
			} else {
				checksum += longs[i][long_meta[i].size - 1];
			}
		}
	}

	for (size_t i = 0; i < WORKING; i++)
		if (work[i] != NULL)
			destroy(work[i], work_meta[i].size, work_meta[i].tag);
	for (size_t i = 0; i < LONG_LIVED; i++)
		destroy(longs[i], long_meta[i].size, long_meta[i].tag);
	for (size_t i = 0; i < FIFO; i++)
		if (fifo[i] != NULL)
			destroy(fifo[i], fifo_meta[i].size, fifo_meta[i].tag);

	printf("steps: %llu\n", (unsigned long long)steps);
	wl_print_checksum(checksum);
	return 0;
}
