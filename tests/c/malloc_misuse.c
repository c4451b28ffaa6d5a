/*
 * malloc_misuse CASE: one misuse of the malloc API per case, for
 * tests/malloc_misuse.rs, which runs it under LD_PRELOAD and expects an
 * abort with one `slitter:` line. Prints "ptr=<address>" first (the
 * address the report must name), then misuses it. Exits 0 only if slitter
 * let the misuse pass.
 */
#include <malloc.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Hides where a pointer comes from, so the compiler neither warns about
 * the misuse nor optimises it away. */
static void *launder(void *p)
{
	__asm__ volatile("" : "+r"(p) : : "memory");
	return p;
}

static void tell(void *p)
{
	printf("ptr=%p\n", p);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	const char *c = argv[1];
	long local = 0;
	if (strcmp(c, "free-stack") == 0) {
		void *p = launder(&local);
		tell(p);
		free(p);
	} else if (strcmp(c, "realloc-stack") == 0) {
		void *p = launder(&local);
		tell(p);
		void *volatile r = realloc(p, 100);
		(void)r;
	} else if (strcmp(c, "usable-size-stack") == 0) {
		void *p = launder(&local);
		tell(p);
		printf("%zu\n", malloc_usable_size(p));
	} else if (strcmp(c, "free-interior") == 0) {
		char *p = launder(malloc(64));
		tell(p + 16);
		free(p + 16);
	} else if (strcmp(c, "double-free") == 0) {
		void *p = launder(malloc(48));
		void *again = launder(p);
		tell(p);
		free(p);
		free(again);
	} else if (strcmp(c, "free-large-interior") == 0) {
		char *p = launder(malloc(1 << 20));
		tell(p + 4096);
		free(p + 4096);
	} else {
		return 2;
	}
	return 0;
}
