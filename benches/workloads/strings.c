/*
 * strings: strings grown with realloc.
 *
 *   strings [scale]
 *
 * 2048 strings are alive at once. Each step picks one at random and
 * appends to it, either character by character (1..16 characters, one
 * realloc to length + 2 per character, as naive code does) or a chunk of
 * 16..512 bytes (one realloc to the new length + 1). A string that reaches
 * its target length (log-uniform in 64..64 KiB) is checked against the
 * running hash of everything appended to it (so realloc must have kept the
 * contents), added to the checksum and freed, and a new empty string
 * (malloc(1)) takes its place. Interleaving the strings keeps a realloc
 * from always finding free room behind its block.
 * Single-threaded. Default: 1.2 million steps.
 */
#include "workload.h"

#define STRINGS 2048

struct str {
	char *data;
	size_t len;
	size_t target;
	uint64_t hash; /* FNV-1a of data[0..len) */
	uint64_t serial;
};

static uint64_t fnv_step(uint64_t h, unsigned char c)
{
	return (h ^ c) * 0x100000001b3ull;
}

static void fresh(struct str *s, struct wl_rng *rng, uint64_t serial)
{
	s->data = wl_malloc(1);
	s->data[0] = '\0';
	s->len = 0;
	s->target = (size_t)wl_log_range(rng, 64, 65536);
	s->hash = 0xcbf29ce484222325ull;
	s->serial = serial;
}

/* Verifies a string against its running hash; returns its contribution. */
static uint64_t finish(struct str *s)
{
	uint64_t h = 0xcbf29ce484222325ull;
	for (size_t i = 0; i < s->len; i++)
		h = fnv_step(h, (unsigned char)s->data[i]);
	if (h != s->hash || s->data[s->len] != '\0')
		wl_die("strings: string %llu (length %zu) corrupted",
		       (unsigned long long)s->serial, s->len);
	free(s->data);
	return wl_mix64(h ^ s->len);
}

static char next_char(uint64_t serial, size_t pos)
{
	return (char)('a' + (serial * 31 + pos * 7) % 26);
}

int main(int argc, char **argv)
{
	wl_start();
	double scale = wl_scale_arg(argc, argv, 1);
	uint64_t steps = wl_scaled(1200000, scale);
	struct wl_rng rng = wl_rng_new(0x737472ull);
	static struct str strs[STRINGS];
	uint64_t serial = 0;
	uint64_t checksum = 0;
	uint64_t reallocs = 0;
	uint64_t finished = 0;

	for (size_t i = 0; i < STRINGS; i++)
		fresh(&strs[i], &rng, serial++);

	for (uint64_t step = 0; step < steps; step++) {
		struct str *s = &strs[wl_below(&rng, STRINGS)];
		if (wl_below(&rng, 2) == 0) {
			size_t n = (size_t)wl_range(&rng, 1, 16);
			for (size_t k = 0; k < n; k++) {
				s->data = wl_realloc(s->data, s->len + 2);
				char c = next_char(s->serial, s->len);
				s->data[s->len++] = c;
				s->data[s->len] = '\0';
				s->hash = fnv_step(s->hash, (unsigned char)c);
				reallocs++;
			}
		} else {
			size_t n = (size_t)wl_range(&rng, 16, 512);
			s->data = wl_realloc(s->data, s->len + n + 1);
			for (size_t k = 0; k < n; k++) {
				char c = next_char(s->serial, s->len + k);
				s->data[s->len + k] = c;
				s->hash = fnv_step(s->hash, (unsigned char)c);
			}
			s->len += n;
			s->data[s->len] = '\0';
			reallocs++;
		}
		if (s->len >= s->target) {
			checksum += finish(s);
			finished++;
			fresh(s, &rng, serial++);
		}
	}
	for (size_t i = 0; i < STRINGS; i++)
		checksum += finish(&strs[i]);

	printf("reallocs: %llu, strings finished: %llu\n", (unsigned long long)reallocs,
	       (unsigned long long)finished);
	wl_print_checksum(checksum);
	return 0;
}
