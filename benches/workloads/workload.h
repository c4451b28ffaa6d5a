/*
 * Shared helpers for the allocation workloads run by benches/compare.sh.
 *
 * Every workload:
 *   - takes an optional scale argument (a positive number, default 1.0)
 *     that multiplies its amount of work;
 *   - is deterministic: all randomness comes from the seeded generators
 *     below, so the same scale gives the same allocation sequence and the
 *     same output under every allocator;
 *   - prints "checksum: <hex>" (compared across allocators by the runner,
 *     which fails on a mismatch) and may print other informational lines;
 *   - verifies the contents of what it frees and aborts on corruption;
 *   - when the environment variable WORKLOAD_PROBE is set, prints to stderr
 *     which shared object malloc, free, calloc and realloc resolve to, so
 *     the runner can check that an LD_PRELOADed allocator took over.
 *
 * Only the C standard library, POSIX threads and dlfcn are used.
 */
#ifndef SLITTER_WORKLOAD_H
#define SLITTER_WORKLOAD_H

#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif

#include <dlfcn.h>
#include <errno.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- failure --------------------------------------------------------- */

static inline void __attribute__((noreturn, format(printf, 1, 2)))
wl_die(const char *fmt, ...)
{
	va_list ap;
	fputs("workload: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	abort();
}

static inline void *wl_malloc(size_t size)
{
	void *p = malloc(size);
	if (p == NULL)
		wl_die("malloc(%zu) failed", size);
	return p;
}

static inline void *wl_realloc(void *old, size_t size)
{
	void *p = realloc(old, size);
	if (p == NULL)
		wl_die("realloc(%p, %zu) failed", old, size);
	return p;
}

/*
 * Hands a pointer to an empty asm that clobbers memory, so the compiler
 * can neither drop an allocation nor elide the stores into it.
 */
static inline void wl_escape(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

/* ---- deterministic randomness ---------------------------------------- */

/* The splitmix64 finaliser: a good 64-bit mixing function. */
static inline uint64_t wl_mix64(uint64_t x)
{
	x += 0x9e3779b97f4a7c15ull;
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
	x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
	return x ^ (x >> 31);
}

/* A small sequential generator (xoshiro256** seeded by splitmix64). */
struct wl_rng {
	uint64_t s[4];
};

static inline struct wl_rng wl_rng_new(uint64_t seed)
{
	struct wl_rng r;
	for (int i = 0; i < 4; i++) {
		seed += 0x9e3779b97f4a7c15ull;
		r.s[i] = wl_mix64(seed);
	}
	return r;
}

static inline uint64_t wl_rotl(uint64_t x, int k)
{
	return (x << k) | (x >> (64 - k));
}

static inline uint64_t wl_next(struct wl_rng *r)
{
	uint64_t *s = r->s;
	uint64_t result = wl_rotl(s[1] * 5, 7) * 9;
	uint64_t t = s[1] << 17;
	s[2] ^= s[0];
	s[3] ^= s[1];
	s[1] ^= s[2];
	s[0] ^= s[3];
	s[2] ^= t;
	s[3] = wl_rotl(s[3], 45);
	return result;
}

/* Uniform in [0, n), n > 0 (Lemire's multiply-shift; the tiny bias is
 * irrelevant here and deterministic). */
static inline uint64_t wl_below(struct wl_rng *r, uint64_t n)
{
	return (uint64_t)(((unsigned __int128)wl_next(r) * n) >> 64);
}

/* Uniform in [lo, hi]. */
static inline uint64_t wl_range(struct wl_rng *r, uint64_t lo, uint64_t hi)
{
	return lo + wl_below(r, hi - lo + 1);
}

/* Roughly log-uniform in [lo, hi] (lo >= 1): small sizes are common, large
 * ones rare, as in most programs. */
static inline uint64_t wl_log_range(struct wl_rng *r, uint64_t lo, uint64_t hi)
{
	int lo_bits = 63 - __builtin_clzll(lo);
	int hi_bits = 63 - __builtin_clzll(hi);
	int bits = (int)wl_range(r, (uint64_t)lo_bits, (uint64_t)hi_bits);
	uint64_t base = 1ull << bits;
	uint64_t v = base + wl_below(r, base);
	if (v < lo)
		v = lo;
	if (v > hi)
		v = hi;
	return v;
}

/* ---- arguments and output -------------------------------------------- */

/* argv[index] as a positive scale factor, or 1.0 when absent. */
static inline double wl_scale_arg(int argc, char **argv, int index)
{
	if (argc <= index)
		return 1.0;
	char *end = NULL;
	errno = 0;
	double scale = strtod(argv[index], &end);
	if (errno != 0 || end == argv[index] || *end != '\0' || !(scale > 0.0) ||
	    scale > 1000.0)
		wl_die("bad scale '%s' (want a number in (0, 1000])", argv[index]);
	return scale;
}

/* argv[index] as a positive integer in [1, max], or dflt when absent. */
static inline long wl_int_arg(int argc, char **argv, int index, long dflt, long max)
{
	if (argc <= index)
		return dflt;
	char *end = NULL;
	errno = 0;
	long v = strtol(argv[index], &end, 10);
	if (errno != 0 || end == argv[index] || *end != '\0' || v < 1 || v > max)
		wl_die("bad count '%s' (want an integer in [1, %ld])", argv[index], max);
	return v;
}

/* base * scale, at least 1. */
static inline uint64_t wl_scaled(uint64_t base, double scale)
{
	double v = (double)base * scale;
	return v < 1.0 ? 1 : (uint64_t)v;
}

static inline double wl_now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline void wl_print_checksum(uint64_t checksum)
{
	printf("checksum: %016llx\n", (unsigned long long)checksum);
}

/* ---- LD_PRELOAD probe ------------------------------------------------ */

#include <link.h>

/*
 * The shared object whose definition of `name` a call from this program
 * binds to: the first object in the global lookup order (the link map
 * order: the executable, the LD_PRELOADed objects, then the libraries it
 * needs) that defines the symbol itself. The executable is skipped: in a
 * non-PIE executable dlsym would return its PLT stub (the canonical
 * address of an imported function), which says nothing about where calls
 * land. Returns "?" when no object defines it.
 */
static inline const char *wl_symbol_object(const char *name)
{
	void *self = dlopen(NULL, RTLD_LAZY);
	struct link_map *map = NULL;
	if (self == NULL || dlinfo(self, RTLD_DI_LINKMAP, &map) != 0 || map == NULL)
		return "?";
	for (map = map->l_next; map != NULL; map = map->l_next) {
		if (map->l_name == NULL || map->l_name[0] == '\0')
			continue;
		void *handle = dlopen(map->l_name, RTLD_LAZY | RTLD_NOLOAD);
		if (handle == NULL)
			continue;
		/* dlsym on a handle looks in the object first, then in its
		 * dependencies; dladdr tells which object the hit is in. */
		void *sym = dlsym(handle, name);
		Dl_info info;
		bool own = sym != NULL && dladdr(sym, &info) != 0 && info.dli_fname != NULL &&
			   strcmp(info.dli_fname, map->l_name) == 0;
		dlclose(handle);
		if (own)
			return map->l_name;
	}
	return "?";
}

/*
 * Prints "probe: malloc=<object> free=<object> calloc=<object>
 * realloc=<object>" on stderr (see wl_symbol_object).
 */
static inline void wl_probe_print(void)
{
	static const char *const names[] = {"malloc", "free", "calloc", "realloc"};
	fputs("probe:", stderr);
	for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
		fprintf(stderr, " %s=%s", names[i], wl_symbol_object(names[i]));
	fputc('\n', stderr);
}

/* Call first thing in main. */
static inline void wl_start(void)
{
	const char *probe = getenv("WORKLOAD_PROBE");
	if (probe != NULL && *probe != '\0' && strcmp(probe, "0") != 0)
		wl_probe_print();
}

#endif /* SLITTER_WORKLOAD_H */
