/*
 * sparse_large: large blocks of which only three bytes are touched.
 *
 *   sparse_large [scale]
 *
 * Keeps 16 slots. Each step picks a slot at random, verifies and frees its
 * block (when it has one) and mallocs a new one of a size uniform in
 * 64 KiB..8 MiB, then writes three bytes of it: the first, the middle and
 * the last (at most three pages faulted in, whatever the size). So the
 * time goes to malloc and free themselves, and to whatever system calls
 * or mappings the allocator makes per block, not to filling memory, as in
 * a program that allocates large buffers and uses a little of each.
 * Single-threaded. Default: 1.5 M malloc/free pairs.
 */
#include "workload.h"

#define SLOTS 16
#define MIN_SIZE (64 * 1024)
#define MAX_SIZE (8 * 1024 * 1024)

struct block {
	unsigned char *data;
	size_t size;
	uint64_t tag;
};

static void touch(struct block *b)
{
	b->data[0] = (unsigned char)b->tag;
	b->data[b->size / 2] = (unsigned char)(b->tag >> 8);
	b->data[b->size - 1] = (unsigned char)(b->tag >> 16);
	wl_escape(b->data);
}

static uint64_t verify(const struct block *b)
{
	unsigned char first = b->data[0], middle = b->data[b->size / 2],
		      last = b->data[b->size - 1];
	if (first != (unsigned char)b->tag || middle != (unsigned char)(b->tag >> 8) ||
	    last != (unsigned char)(b->tag >> 16))
		wl_die("sparse_large: block of %zu bytes corrupted", b->size);
	return wl_mix64(b->tag ^ b->size ^ ((uint64_t)first << 40) ^
			((uint64_t)middle << 48) ^ ((uint64_t)last << 56));
}

int main(int argc, char **argv)
{
	wl_start();
	double scale = wl_scale_arg(argc, argv, 1);
	uint64_t pairs = wl_scaled(1500000, scale);
	struct wl_rng rng = wl_rng_new(0x7370617273650aull);
	struct block slots[SLOTS] = {{0}};
	uint64_t checksum = 0;
	uint64_t bytes = 0;

	for (uint64_t step = 0; step < pairs; step++) {
		struct block *b = &slots[wl_below(&rng, SLOTS)];
		size_t size = (size_t)wl_range(&rng, MIN_SIZE, MAX_SIZE);
		if (b->data != NULL) {
			checksum += verify(b);
			free(b->data);
		}
		b->data = wl_malloc(size);
		b->size = size;
		b->tag = wl_mix64(step);
		bytes += size;
		touch(b);
	}
	for (size_t i = 0; i < SLOTS; i++) {
		if (slots[i].data != NULL) {
			checksum += verify(&slots[i]);
			free(slots[i].data);
		}
	}

	printf("pairs: %llu, GiB requested: %llu\n", (unsigned long long)pairs,
	       (unsigned long long)(bytes >> 30));
	wl_print_checksum(checksum);
	return 0;
}
