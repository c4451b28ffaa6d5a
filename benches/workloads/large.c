/*
 * large: large buffers from 64 KiB to 8 MiB.
 *
 *   large [scale]
 *
 * Keeps up to 8 buffers alive. Each step picks a slot: an empty slot gets
 * a new buffer; a full one is either freed and replaced by a new buffer
 * (70%) or resized with realloc to a new size (30%), after which the kept
 * prefix is checked and the whole buffer rewritten. Sizes are log-uniform
 * in 64 KiB..8 MiB. A buffer is touched on every 4 KiB page (one byte per
 * page, derived from the buffer's tag and the page index, plus its first
 * 256 bytes), as a program filling it would fault its pages in, and every
 * page is verified before the buffer is freed.
 * Single-threaded. Default: 12000 steps.
 */
#include "workload.h"

#define SLOTS 8
#define PAGE 4096
#define MIN_SIZE (64 * 1024)
#define MAX_SIZE (8 * 1024 * 1024)

struct buffer {
	unsigned char *data;
	size_t size;
	uint64_t tag;
};

static unsigned char page_byte(uint64_t tag, size_t page)
{
	return (unsigned char)(tag + page * 0x9d);
}

static void fill(struct buffer *b)
{
	memset(b->data, (int)(b->tag & 0xff), 256);
	for (size_t off = 256, page = 0; off < b->size; off += PAGE, page++)
		b->data[off] = page_byte(b->tag, page);
	b->data[b->size - 1] = (unsigned char)(b->tag >> 8);
	wl_escape(b->data);
}

/* Checks the first `size` bytes' pattern (the whole buffer when size ==
 * b->size); returns a checksum contribution. */
static uint64_t verify(const struct buffer *b, size_t size)
{
	uint64_t sum = 0;
	for (size_t i = 0; i < 256; i++)
		if (b->data[i] != (unsigned char)(b->tag & 0xff))
			wl_die("large: buffer of %zu bytes corrupted at %zu", b->size, i);
	for (size_t off = 256, page = 0; off < size; off += PAGE, page++) {
		if (off == b->size - 1)
			break; /* the tail byte overwrote this one */
		if (b->data[off] != page_byte(b->tag, page))
			wl_die("large: buffer of %zu bytes corrupted at %zu", b->size, off);
		sum += b->data[off];
	}
	if (size == b->size && b->data[b->size - 1] != (unsigned char)(b->tag >> 8))
		wl_die("large: buffer of %zu bytes corrupted at its end", b->size);
	return wl_mix64(sum ^ b->tag ^ size);
}

int main(int argc, char **argv)
{
	wl_start();
	double scale = wl_scale_arg(argc, argv, 1);
	uint64_t steps = wl_scaled(12000, scale);
	struct wl_rng rng = wl_rng_new(0x6c61726765ull);
	struct buffer slots[SLOTS] = {{0}};
	uint64_t checksum = 0;
	uint64_t reallocs = 0;
	uint64_t bytes = 0;

	for (uint64_t step = 0; step < steps; step++) {
		struct buffer *b = &slots[wl_below(&rng, SLOTS)];
		size_t size = (size_t)wl_log_range(&rng, MIN_SIZE, MAX_SIZE);
		uint64_t tag = wl_mix64(step);
		bytes += size;
		if (b->data != NULL && wl_below(&rng, 10) < 3) {
			size_t kept = size < b->size ? size : b->size;
			b->data = wl_realloc(b->data, size);
			checksum += verify(b, kept);
			b->size = size;
			b->tag = tag;
			fill(b);
			reallocs++;
			continue;
		}
		if (b->data != NULL) {
			checksum += verify(b, b->size);
			free(b->data);
		}
		b->data = wl_malloc(size);
		b->size = size;
		b->tag = tag;
		fill(b);
	}
	for (size_t i = 0; i < SLOTS; i++) {
		if (slots[i].data != NULL) {
			checksum += verify(&slots[i], slots[i].size);
			free(slots[i].data);
		}
	}

	printf("steps: %llu, reallocs: %llu, MiB requested: %llu\n", (unsigned long long)steps,
	       (unsigned long long)reallocs, (unsigned long long)(bytes >> 20));
	wl_print_checksum(checksum);
	return 0;
}
