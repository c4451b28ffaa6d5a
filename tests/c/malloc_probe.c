/*
 * Which shared object defines each function of the C allocation API in this
 * process, as the dynamic linker resolved it.
 *
 *   malloc_probe [expected]
 *
 * For every name below, prints
 *
 *   symbol <name> <object>     what dlsym(RTLD_DEFAULT, name) finds: the
 *                              first definition in the global lookup scope,
 *                              the one any library's reference binds to
 *   reference <name> <object>  where this program's own (versioned, for
 *                              glibc's names) reference was bound
 *
 * with <object> the dladdr() file name, or "missing". With an argument,
 * every required name's symbol and reference must lie in an object whose
 * path contains `expected` (tests/malloc.rs passes "libslitter"); each that
 * does not is listed as "malloc_probe: MISSING ..." and the exit status is 1.
 * Optional names (C++ operators, names glibc does not export) are printed
 * for information only. Prints "malloc_probe: ok" last on success.
 *
 * This is the only test program that fails against glibc's malloc, by
 * design.
 */
#define _GNU_SOURCE

#include <dlfcn.h>
#include <malloc.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "allocator_probe.h"

extern void *__libc_malloc(size_t size);
extern void __libc_free(void *ptr);
extern void *__libc_calloc(size_t nmemb, size_t size);
extern void *__libc_realloc(void *ptr, size_t size);
extern void *__libc_memalign(size_t alignment, size_t size);
extern void *__libc_valloc(size_t size);
extern void *__libc_pvalloc(size_t size);
extern void cfree(void *ptr) __attribute__((weak));
extern void free_sized(void *ptr, size_t size) __attribute__((weak));
extern void free_aligned_sized(void *ptr, size_t alignment, size_t size)
	__attribute__((weak));

struct name {
	const char *name;
	void *reference; /* this program's reference, or NULL */
	bool required;
};

#define REQUIRED(f) { #f, NULL, true }
#define OPTIONAL(s) { s, NULL, false }

/* Records `reference` for `name`. Taken in code, not in a static
 * initializer: the linker resolves a static initializer's address of an
 * undefined weak function (cfree, free_sized, ...) to NULL in a PIE, while
 * code loads it from the GOT, which the dynamic linker fills in. */
static void set_reference(struct name *names, size_t count, const char *name,
			  void *reference)
{
	for (size_t i = 0; i < count; i++)
		if (strcmp(names[i].name, name) == 0)
			names[i].reference = reference;
}

#define REFERENCE(f) set_reference(names, count, #f, (void *)f)

int main(int argc, char **argv)
{
	static struct name names[] = {
		REQUIRED(malloc),
		REQUIRED(free),
		REQUIRED(calloc),
		REQUIRED(realloc),
		REQUIRED(reallocarray),
		REQUIRED(posix_memalign),
		REQUIRED(aligned_alloc),
		REQUIRED(memalign),
		REQUIRED(valloc),
		REQUIRED(pvalloc),
		REQUIRED(malloc_usable_size),
		REQUIRED(cfree),
		REQUIRED(free_sized),
		REQUIRED(free_aligned_sized),
		REQUIRED(__libc_malloc),
		REQUIRED(__libc_free),
		REQUIRED(__libc_calloc),
		REQUIRED(__libc_realloc),
		REQUIRED(__libc_memalign),
		REQUIRED(__libc_valloc),
		REQUIRED(__libc_pvalloc),
		/* Not exported by glibc 2.36; some other libcs have it. */
		OPTIONAL("__posix_memalign"),
		/* libstdc++ defines these on top of malloc/aligned_alloc and
		 * free; slitter may export them too. */
		OPTIONAL("_Znwm"),
		OPTIONAL("_Znam"),
		OPTIONAL("_ZdlPv"),
		OPTIONAL("_ZdlPvm"),
		OPTIONAL("_ZdaPv"),
		OPTIONAL("_ZdaPvm"),
		OPTIONAL("_ZnwmSt11align_val_t"),
		OPTIONAL("_ZdlPvSt11align_val_t"),
		OPTIONAL("_ZdlPvmSt11align_val_t"),
	};
	const size_t count = sizeof(names) / sizeof(names[0]);
	const char *expected = argc > 1 ? argv[1] : NULL;
	int wrong = 0;

	REFERENCE(malloc);
	REFERENCE(free);
	REFERENCE(calloc);
	REFERENCE(realloc);
	REFERENCE(reallocarray);
	REFERENCE(posix_memalign);
	REFERENCE(aligned_alloc);
	REFERENCE(memalign);
	REFERENCE(valloc);
	REFERENCE(pvalloc);
	REFERENCE(malloc_usable_size);
	REFERENCE(cfree);
	REFERENCE(free_sized);
	REFERENCE(free_aligned_sized);
	REFERENCE(__libc_malloc);
	REFERENCE(__libc_free);
	REFERENCE(__libc_calloc);
	REFERENCE(__libc_realloc);
	REFERENCE(__libc_memalign);
	REFERENCE(__libc_valloc);
	REFERENCE(__libc_pvalloc);

	probe_report_allocator();
	for (size_t i = 0; i < count; i++) {
		struct name *n = &names[i];
		void *found = dlsym(RTLD_DEFAULT, n->name);
		const char *symbol_object =
			found != NULL ? probe_object_of(found) : "missing";

		printf("symbol %s %s%s\n", n->name, symbol_object,
		       n->required ? "" : " (optional)");
		if (expected != NULL && n->required &&
		    strstr(symbol_object, expected) == NULL) {
			fprintf(stderr,
				"malloc_probe: MISSING %s is defined by %s, "
				"not %s\n",
				n->name, symbol_object, expected);
			wrong++;
		}
		if (!n->required)
			continue;
		const char *reference_object =
			n->reference != NULL
				? probe_definer(n->name, n->reference)
				: "missing";
		printf("reference %s %s\n", n->name, reference_object);
		if (expected != NULL &&
		    strstr(reference_object, expected) == NULL) {
			fprintf(stderr,
				"malloc_probe: MISSING this program's "
				"reference to %s is bound to %s, not %s\n",
				n->name, reference_object, expected);
			wrong++;
		}
	}
	if (wrong != 0) {
		fprintf(stderr, "malloc_probe: %d bindings do not name %s\n",
			wrong, expected);
		return 1;
	}
	printf("malloc_probe: ok\n");
	return 0;
}
