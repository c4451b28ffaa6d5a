/*
 * Helpers shared by the C test programs under tests/c/.
 *
 * Define TEST_NAME (a string literal) before including this file.
 * CHECK(cond, fmt, ...) prints "<TEST_NAME>: FAIL file:line: <message>
 * [cond]" to stderr and exits 1 when cond is false; next_random() is a
 * xorshift64* generator, so runs are reproducible from their seed.
 */
#ifndef SLITTER_TESTS_TEST_SUPPORT_H
#define SLITTER_TESTS_TEST_SUPPORT_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#ifndef TEST_NAME
#error "define TEST_NAME before including test_support.h"
#endif

#define CHECK(cond, ...)                                                      \
	do {                                                                  \
		if (!(cond)) {                                                \
			fprintf(stderr, TEST_NAME ": FAIL %s:%d: ", __FILE__, \
				__LINE__);                                    \
			fprintf(stderr, __VA_ARGS__);                         \
			fprintf(stderr, " [%s]\n", #cond);                    \
			exit(1);                                              \
		}                                                             \
	} while (0)

/* The next number of the xorshift64* sequence in *state (non-zero). */
static inline uint64_t next_random(uint64_t *state)
{
	uint64_t x = *state;
	x ^= x >> 12;
	x ^= x << 25;
	x ^= x >> 27;
	*state = x;
	return x * 0x2545F4914F6CDD1Dull;
}

#endif
