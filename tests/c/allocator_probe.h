/*
 * Which shared object serves this program's malloc and free.
 *
 * Included by the malloc drop-in test programs (tests/c/malloc_*.c,
 * tests/c/fork_load.c, tests/c/thread_churn.c, tests/cpp/containers.cpp).
 * probe_report_allocator() prints one line
 *
 *   allocator: malloc=<object> free=<object>
 *
 * where <object> is the path dladdr() reports for the definition the dynamic
 * linker picked: the address the program's own reference to malloc resolves
 * to (through the GOT in a PIE), falling back to dlsym(RTLD_DEFAULT, ...)
 * when that address lies in the executable itself (the canonical PLT entry
 * of a non-PIE program). Under LD_PRELOAD=libslitter.so, or when linked with
 * -lslitter, both must name libslitter.so; tests/malloc.rs checks the line.
 *
 * Needs _GNU_SOURCE before the first system header (g++ defines it).
 */
#ifndef SLITTER_TESTS_ALLOCATOR_PROBE_H
#define SLITTER_TESTS_ALLOCATOR_PROBE_H

#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>

/* The file name of the object that contains `address`, or "?" if none. */
static inline const char *probe_object_of(void *address)
{
	Dl_info info;

	if (address == NULL || dladdr(address, &info) == 0 ||
	    info.dli_fname == NULL || info.dli_fname[0] == '\0')
		return "?";
	return info.dli_fname;
}

/* The object whose definition of `name` this program uses; `reference` is
 * the program's own reference to it (may be NULL). */
static inline const char *probe_definer(const char *name, void *reference)
{
	Dl_info self, info;

	if (reference != NULL && dladdr(reference, &info) != 0 &&
	    info.dli_fname != NULL && info.dli_fname[0] != '\0') {
		/* Not in the program's own object (where it would be a
		 * canonical PLT entry, not the definition). */
		if (dladdr((void *)probe_definer, &self) == 0 ||
		    self.dli_fbase != info.dli_fbase)
			return info.dli_fname;
	}
	return probe_object_of(dlsym(RTLD_DEFAULT, name));
}

static inline void probe_report_allocator(void)
{
	/* Volatile so the compiler takes the real addresses. */
	void *(*volatile malloc_ref)(size_t) = malloc;
	void (*volatile free_ref)(void *) = free;

	printf("allocator: malloc=%s free=%s\n",
	       probe_definer("malloc", (void *)malloc_ref),
	       probe_definer("free", (void *)free_ref));
	fflush(stdout);
}

#endif
