/*
 * pair_loop: runs N allocate+release pairs of a 32-byte object, for
 * counting instructions per pair under callgrind (see instructions.sh).
 *
 *   pair_loop N slitter [anchored]   slitter_allocate + slitter_release
 *                                    of a class registered with
 *                                    slitter_class_register
 *   pair_loop N malloc [anchored]    malloc(32) + free (whatever malloc is
 *                                    linked or LD_PRELOADed: glibc,
 *                                    mimalloc, ...)
 *   pair_loop N loop                 the loop alone (the baseline)
 *
 * With "anchored", one more object is allocated before the loop and kept
 * live until after it. Without it the heap holds at most one object, so
 * every release empties its page or span: that is a slow path for
 * allocators that retire empty pages (mimalloc), not for slitter.
 *
 * Build: cc -O2 -Iinclude benches/pair_loop.c -Ltarget/release -lslitter
 * With -DMALLOC_ONLY it does not use (nor link) slitter, so its malloc is
 * the C library's or an LD_PRELOADed one: libslitter.so exports malloc, and
 * a program linked with it gets slitter's.
 *
 * escape() hands the pointer to an empty asm that clobbers memory, so the
 * compiler can neither drop the pair nor merge iterations.
 */
#include <errno.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef MALLOC_ONLY
#include "slitter.h"
#endif

static inline void escape(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

static void usage(const char *argv0)
{
	fprintf(stderr, "usage: %s N slitter|malloc|loop [anchored]\n", argv0);
	exit(2);
}

int main(int argc, char **argv)
{
	if (argc != 3 && argc != 4)
		usage(argv[0]);
	bool anchored = false;
	if (argc == 4) {
		if (strcmp(argv[3], "anchored") != 0)
			usage(argv[0]);
		anchored = true;
	}

	char *end;
	errno = 0;
	unsigned long long n = strtoull(argv[1], &end, 10);
	if (errno != 0 || *end != '\0' || end == argv[1])
		usage(argv[0]);

	if (strcmp(argv[2], "slitter") == 0) {
#ifdef MALLOC_ONLY
		usage(argv[0]);
#else
		struct slitter_class_config config = {
			.name = "pair_loop",
			.size = 32,
		};
		struct slitter_class cls = slitter_class_register(&config);
		void *anchor = anchored ? slitter_allocate(cls) : NULL;
		escape(anchor);
		for (unsigned long long i = 0; i < n; i++) {
			void *p = slitter_allocate(cls);
			escape(p);
			slitter_release(cls, p);
		}
		slitter_release(cls, anchor);
#endif
	} else if (strcmp(argv[2], "malloc") == 0) {
		void *anchor = anchored ? malloc(32) : NULL;
		escape(anchor);
		for (unsigned long long i = 0; i < n; i++) {
			void *p = malloc(32);
			escape(p);
			free(p);
		}
		free(anchor);
	} else if (strcmp(argv[2], "loop") == 0) {
		for (unsigned long long i = 0; i < n; i++)
			escape((void *)(uintptr_t)i);
	} else {
		usage(argv[0]);
	}
	return 0;
}
