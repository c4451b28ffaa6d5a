/*
 * after_peak: how much memory an allocator gives back after a peak, and
 * the tail latency of malloc and free while the peak is built and freed.
 *
 *   after_peak <scenario> [--scale <f>]
 *
 * Scenarios (sizes at scale 1; --scale multiplies every size, e.g. 0.05
 * for a quick test):
 *
 *   small64        one thread mallocs 1 GiB of 64-byte objects (16 M),
 *                  writing a byte of each, then frees them all
 *   small64_cross  the same, but a second thread frees them (allocated in
 *                  one thread, freed in another; joined before going on)
 *   small16        256 MiB of 16-byte objects (16 M)
 *   longlived      64 MiB of 64-byte objects (1 M) allocated first and
 *                  kept to the end, then the 1 GiB peak of small64
 *   large256k      1 GiB of 256 KiB blocks (4096), every page written
 *
 * Each scenario reads the process's resident memory (/proc/self/statm,
 * read with read(2) into a static buffer, so reading it allocates
 * nothing) at four points: at the peak, once everything is freed, after
 * 1 s of light activity (every 1 ms a few malloc/free of assorted small
 * sizes, 16..1024 bytes, over a ring of 64 slots; for large256k also,
 * every 10 ms, a malloc/free of 128 KiB..1 MiB), and after malloc_trim(0).
 * The trim is skipped, and -1 printed, when the allocator under test has
 * no malloc_trim: when the object that defines malloc_trim (dlsym
 * RTLD_DEFAULT) is not the one that defines malloc, as under a preloaded
 * allocator without one, where glibc's would trim glibc's empty heap.
 *
 * The tool's own tables (the pointers of the peak, the latency samples)
 * are mmap'd, not malloc'd, and written through before the peak is
 * built; their pages are subtracted from every reading, so the figures
 * are the allocator's (plus the program's small fixed part: code,
 * libraries, stack; the "baseline" line gives it, read before the peak).
 *
 * The lazyfree line gives, at the same four points, the part of the
 * resident figures that the allocator gave back with MADV_FREE
 * (LazyFree in /proc/self/smaps_rollup, also read without allocating):
 * the kernel takes those pages only when it runs short of memory, and
 * counts them as resident until then (-1 where the kernel does not say).
 *
 * Latency: malloc and free calls during the build-up and the frees are
 * timed with CLOCK_MONOTONIC on either side of the call, for a random
 * sample of 1 call in 64 (every call when there are fewer than 1 M
 * objects, as in large256k); the samples are kept in mmap'd arrays and
 * their 99.9th percentile (nearest rank) is printed in nanoseconds. The
 * figures include one clock_gettime's cost, printed as clock_ns (the
 * median of an empty timed interval).
 *
 * Prints
 *
 *   scenario: <name> scale <f> objects <n> x <bytes> (<MiB> MiB) longlived <n> x <bytes> (<MiB> MiB) free_thread <main|second>
 *   baseline_mib: <resident before the peak>
 *   resident_mib: peak <a> freed <b> after_1s <c> trimmed <d>
 *   lazyfree_mib: peak <a> freed <b> after_1s <c> trimmed <d>
 *   p999_ns: malloc <x> free <y>
 *   samples: malloc <n> free <n> clock_ns <ns>
 *
 * (MiB with one decimal). Run by benches/compare.sh in its "Counts"
 * section, once per scenario under each allocator (LD_PRELOAD).
 */
#include "../workloads/workload.h"

#include <fcntl.h>
#include <pthread.h>
#include <sys/mman.h>
#include <unistd.h>

#define MIB (1024.0 * 1024.0)
#define SAMPLE_ALL_BELOW (1u << 20) /* objects: below this, time every call */
#define SAMPLE_SHIFT 6		    /* else 1 call in 64 */
#define ACTIVITY_SLOTS 64

struct scenario {
	const char *name;
	size_t object;	   /* bytes of each object of the peak */
	double peak_bytes; /* at scale 1 */
	double longlived_bytes;
	bool cross;	   /* freed by a second thread */
	bool large;	   /* touch every page; large blocks in the activity */
};

static const struct scenario scenarios[] = {
	{"small64", 64, 1024.0 * MIB, 0, false, false},
	{"small64_cross", 64, 1024.0 * MIB, 0, true, false},
	{"small16", 16, 256.0 * MIB, 0, false, false},
	{"longlived", 64, 1024.0 * MIB, 64.0 * MIB, false, false},
	{"large256k", 256 * 1024, 1024.0 * MIB, 0, false, true},
};

static long page_size;
/* Bytes of the tool's own mappings, all written through: subtracted. */
static size_t own_bytes;

/* Resident bytes (the second field of /proc/self/statm, in pages), less
 * the tool's own tables. Reads with read(2): no allocation. */
static double resident_mib(void)
{
	static char buf[256];
	int fd = open("/proc/self/statm", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		wl_die("open /proc/self/statm: %s", strerror(errno));
	ssize_t n;
	do
		n = read(fd, buf, sizeof(buf) - 1);
	while (n < 0 && errno == EINTR);
	close(fd);
	if (n <= 0)
		wl_die("read /proc/self/statm failed");
	buf[n] = '\0';
	const char *p = buf;
	while (*p != '\0' && *p != ' ') /* size */
		p++;
	while (*p == ' ')
		p++;
	if (*p < '0' || *p > '9')
		wl_die("unexpected /proc/self/statm: %s", buf);
	uint64_t pages = 0;
	for (; *p >= '0' && *p <= '9'; p++)
		pages = pages * 10 + (uint64_t)(*p - '0');
	double bytes = (double)pages * (double)page_size - (double)own_bytes;
	return bytes / MIB;
}

/* LazyFree of /proc/self/smaps_rollup in MiB: pages the allocator gave
 * back with MADV_FREE, still resident (and counted above) until the
 * kernel needs memory. -1 when the kernel does not say (before 4.14). */
static double lazyfree_mib(void)
{
	static char buf[4096];
	int fd = open("/proc/self/smaps_rollup", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	size_t len = 0;
	for (;;) {
		ssize_t n = read(fd, buf + len, sizeof(buf) - 1 - len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
		if (len == sizeof(buf) - 1)
			break;
	}
	close(fd);
	buf[len] = '\0';
	const char *p = strstr(buf, "\nLazyFree:");
	if (p == NULL)
		return -1;
	p += strlen("\nLazyFree:");
	while (*p == ' ')
		p++;
	uint64_t kib = 0;
	for (; *p >= '0' && *p <= '9'; p++)
		kib = kib * 10 + (uint64_t)(*p - '0');
	return (double)kib / 1024.0;
}

static size_t round_to_page(size_t bytes)
{
	return (bytes + (size_t)page_size - 1) & ~((size_t)page_size - 1);
}

/* An mmap'd table, every page written so that it is resident from now on
 * and a constant to subtract. */
static void *own_map(size_t bytes)
{
	if (bytes == 0)
		return NULL;
	bytes = round_to_page(bytes);
	unsigned char *p = mmap(NULL, bytes, PROT_READ | PROT_WRITE,
				MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (p == MAP_FAILED)
		wl_die("mmap of %zu bytes failed: %s", bytes, strerror(errno));
	for (size_t i = 0; i < bytes; i += (size_t)page_size)
		p[i] = 0;
	own_bytes += bytes;
	return p;
}

static void own_unmap(void *p, size_t bytes)
{
	if (p == NULL)
		return;
	bytes = round_to_page(bytes);
	munmap(p, bytes);
	own_bytes -= bytes;
}

static inline uint64_t now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Latency samples, in ns (saturating at 2^32 - 1). */
struct samples {
	uint32_t *ns;
	size_t count, capacity;
	struct wl_rng rng;
	bool all;
};

static void samples_init(struct samples *s, size_t calls, uint64_t seed)
{
	s->all = calls < SAMPLE_ALL_BELOW;
	s->capacity = s->all ? calls : (calls >> (SAMPLE_SHIFT - 1)) + 1024;
	s->ns = own_map(s->capacity * sizeof(*s->ns));
	s->count = 0;
	s->rng = wl_rng_new(seed);
}

static inline bool samples_take(struct samples *s)
{
	if (s->count == s->capacity)
		return false;
	return s->all || (wl_next(&s->rng) >> (64 - SAMPLE_SHIFT)) == 0;
}

static inline void samples_add(struct samples *s, uint64_t ns)
{
	s->ns[s->count++] = ns > UINT32_MAX ? UINT32_MAX : (uint32_t)ns;
}

static void sift_down(uint32_t *a, size_t root, size_t n)
{
	for (;;) {
		size_t child = 2 * root + 1;
		if (child >= n)
			return;
		if (child + 1 < n && a[child + 1] > a[child])
			child++;
		if (a[root] >= a[child])
			return;
		uint32_t t = a[root];
		a[root] = a[child];
		a[child] = t;
		root = child;
	}
}

/* Heapsort: in place, no allocation (glibc's qsort may malloc), no
 * quadratic case on the many equal values latencies have. */
static void sort_u32(uint32_t *a, size_t n)
{
	if (n < 2)
		return;
	for (size_t i = n / 2; i-- > 0;)
		sift_down(a, i, n);
	for (size_t end = n - 1; end > 0; end--) {
		uint32_t t = a[0];
		a[0] = a[end];
		a[end] = t;
		sift_down(a, 0, end);
	}
}

/* The 99.9th percentile (nearest rank), or -1 without samples. */
static long p999(struct samples *s)
{
	if (s->count == 0)
		return -1;
	sort_u32(s->ns, s->count);
	size_t rank = (size_t)((double)s->count * 0.999);
	if ((double)rank < (double)s->count * 0.999)
		rank++;
	if (rank < 1)
		rank = 1;
	return (long)s->ns[rank - 1];
}

/* Median cost of an empty timed interval (two clock_gettime calls). */
static long clock_cost_ns(void)
{
	uint32_t v[1001];
	for (size_t i = 0; i < 1001; i++) {
		uint64_t t0 = now_ns();
		uint64_t t1 = now_ns();
		v[i] = (uint32_t)(t1 - t0);
	}
	sort_u32(v, 1001);
	return (long)v[500];
}

/* ---- the peak ------------------------------------------------------------ */

struct peak {
	const struct scenario *sc;
	unsigned char **objects;
	size_t count;
	struct samples malloc_ns, free_ns;
};

static void touch(const struct scenario *sc, unsigned char *p, size_t i)
{
	if (sc->large) {
		for (size_t off = 0; off < sc->object; off += (size_t)page_size)
			p[off] = (unsigned char)i;
		p[sc->object - 1] = (unsigned char)i;
	} else {
		p[0] = (unsigned char)i;
	}
}

static void build(struct peak *pk)
{
	const struct scenario *sc = pk->sc;
	for (size_t i = 0; i < pk->count; i++) {
		unsigned char *p;
		if (samples_take(&pk->malloc_ns)) {
			uint64_t t0 = now_ns();
			p = malloc(sc->object);
			uint64_t t1 = now_ns();
			samples_add(&pk->malloc_ns, t1 - t0);
		} else {
			p = malloc(sc->object);
		}
		if (p == NULL)
			wl_die("after_peak: malloc(%zu) failed at object %zu of %zu", sc->object, i,
			       pk->count);
		touch(sc, p, i);
		pk->objects[i] = p;
	}
}

static void *free_all(void *arg)
{
	struct peak *pk = arg;
	for (size_t i = 0; i < pk->count; i++) {
		unsigned char *p = pk->objects[i];
		if (p[0] != (unsigned char)i)
			wl_die("after_peak: object %zu corrupted", i);
		if (samples_take(&pk->free_ns)) {
			uint64_t t0 = now_ns();
			free(p);
			uint64_t t1 = now_ns();
			samples_add(&pk->free_ns, t1 - t0);
		} else {
			free(p);
		}
	}
	return NULL;
}

/* ---- light activity ------------------------------------------------------ */

static void sleep_ms(long ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
		;
}

/* About 1 s of light activity: every 1 ms, 4 of the 64 ring slots get a
 * new object of 16..1024 bytes (log-uniform); with `large`, every 10 ms
 * a block of 128 KiB..1 MiB is malloc'd, its first and last bytes
 * written, and freed. The ring stays live (freed by activity_end). */
static void activity(unsigned char **ring, bool large, struct wl_rng *rng)
{
	uint64_t end = now_ns() + 1000000000u;
	for (unsigned tick = 0; now_ns() < end; tick++) {
		for (int k = 0; k < 4; k++) {
			size_t slot = (size_t)wl_below(rng, ACTIVITY_SLOTS);
			size_t size = (size_t)wl_log_range(rng, 16, 1024);
			free(ring[slot]);
			ring[slot] = wl_malloc(size);
			ring[slot][0] = (unsigned char)slot;
			ring[slot][size - 1] = (unsigned char)slot;
		}
		if (large && tick % 10 == 0) {
			size_t size = (size_t)wl_range(rng, 128 * 1024, 1024 * 1024);
			unsigned char *p = wl_malloc(size);
			p[0] = 1;
			p[size - 1] = 2;
			wl_escape(p);
			free(p);
		}
		sleep_ms(1);
	}
}

static void activity_end(unsigned char **ring)
{
	for (size_t i = 0; i < ACTIVITY_SLOTS; i++) {
		if (ring[i] != NULL && ring[i][0] != (unsigned char)i)
			wl_die("after_peak: activity object %zu corrupted", i);
		free(ring[i]);
		ring[i] = NULL;
	}
}

/* ---- main ---------------------------------------------------------------- */

static void __attribute__((noreturn)) usage(void)
{
	fputs("usage: after_peak <scenario> [--scale <f>]\nscenarios:", stderr);
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		fprintf(stderr, " %s", scenarios[i].name);
	fputc('\n', stderr);
	exit(2);
}

/* malloc_trim of the allocator that serves malloc, or NULL when it has
 * none (the object defining malloc_trim is not the one defining malloc). */
static int (*allocator_trim(void))(size_t)
{
	void *sym = dlsym(RTLD_DEFAULT, "malloc_trim");
	if (sym == NULL)
		return NULL;
	const char *trim_object = wl_symbol_object("malloc_trim");
	const char *malloc_object = wl_symbol_object("malloc");
	if (strcmp(trim_object, "?") == 0 || strcmp(trim_object, malloc_object) != 0)
		return NULL;
	int (*trim)(size_t);
	memcpy(&trim, &sym, sizeof(trim));
	return trim;
}

int main(int argc, char **argv)
{
	wl_start();
	page_size = sysconf(_SC_PAGESIZE);
	const char *name = NULL;
	double scale = 1.0;
	for (int i = 1; i < argc; i++) {
		if (strcmp(argv[i], "--scale") == 0) {
			if (i + 1 >= argc)
				usage();
			char *scale_argv[] = {argv[0], argv[i + 1]};
			scale = wl_scale_arg(2, scale_argv, 1);
			i++;
		} else if (name == NULL && argv[i][0] != '-') {
			name = argv[i];
		} else {
			usage();
		}
	}
	if (name == NULL)
		usage();
	const struct scenario *sc = NULL;
	for (size_t i = 0; i < sizeof(scenarios) / sizeof(scenarios[0]); i++)
		if (strcmp(name, scenarios[i].name) == 0)
			sc = &scenarios[i];
	if (sc == NULL)
		usage();

	int (*trim)(size_t) = allocator_trim();
	long clock_ns = clock_cost_ns();

	struct peak pk = {.sc = sc};
	pk.count = (size_t)wl_scaled((uint64_t)(sc->peak_bytes / (double)sc->object), scale);
	size_t longlived = sc->longlived_bytes > 0
				   ? (size_t)wl_scaled((uint64_t)(sc->longlived_bytes / 64.0), scale)
				   : 0;
	pk.objects = own_map(pk.count * sizeof(*pk.objects));
	unsigned char **kept = own_map(longlived * sizeof(*kept));
	samples_init(&pk.malloc_ns, pk.count, 0x6d616c6cu);
	samples_init(&pk.free_ns, pk.count, 0x66726565u);
	unsigned char *ring[ACTIVITY_SLOTS] = {0};
	struct wl_rng rng = wl_rng_new(0x61637469u);

	/* The allocator's first-use setup, outside the readings. */
	free(wl_malloc(64));
	double baseline = resident_mib();

	for (size_t i = 0; i < longlived; i++) {
		kept[i] = wl_malloc(64);
		kept[i][0] = (unsigned char)i;
	}
	build(&pk);
	double at_peak = resident_mib(), lazy_peak = lazyfree_mib();

	if (sc->cross) {
		pthread_t thread;
		int err = pthread_create(&thread, NULL, free_all, &pk);
		if (err != 0)
			wl_die("pthread_create: %s", strerror(err));
		err = pthread_join(thread, NULL);
		if (err != 0)
			wl_die("pthread_join: %s", strerror(err));
	} else {
		free_all(&pk);
	}
	long malloc_p999 = p999(&pk.malloc_ns), free_p999 = p999(&pk.free_ns);
	size_t malloc_samples = pk.malloc_ns.count, free_samples = pk.free_ns.count;
	own_unmap(pk.objects, pk.count * sizeof(*pk.objects));
	own_unmap(pk.malloc_ns.ns, pk.malloc_ns.capacity * sizeof(*pk.malloc_ns.ns));
	own_unmap(pk.free_ns.ns, pk.free_ns.capacity * sizeof(*pk.free_ns.ns));
	double freed = resident_mib(), lazy_freed = lazyfree_mib();

	activity(ring, sc->large, &rng);
	double after_1s = resident_mib(), lazy_after_1s = lazyfree_mib();

	double trimmed = -1, lazy_trimmed = -1;
	if (trim != NULL) {
		trim(0);
		trimmed = resident_mib();
		lazy_trimmed = lazyfree_mib();
	}

	activity_end(ring);
	for (size_t i = 0; i < longlived; i++) {
		if (kept[i][0] != (unsigned char)i)
			wl_die("after_peak: long-lived object %zu corrupted", i);
		free(kept[i]);
	}
	own_unmap(kept, longlived * sizeof(*kept));

	printf("scenario: %s scale %g objects %zu x %zu bytes (%.1f MiB) longlived %zu x 64 bytes (%.1f MiB) free_thread %s\n",
	       sc->name, scale, pk.count, sc->object, (double)pk.count * (double)sc->object / MIB,
	       longlived, (double)longlived * 64.0 / MIB, sc->cross ? "second" : "main");
	printf("baseline_mib: %.1f\n", baseline);
	/* -1 (no trim, no LazyFree) is printed as such, not as -1.0. */
	char trim_text[32] = "-1", lazy_trim_text[32] = "-1";
	if (trim != NULL) {
		snprintf(trim_text, sizeof(trim_text), "%.1f", trimmed);
		if (lazy_trimmed >= 0)
			snprintf(lazy_trim_text, sizeof(lazy_trim_text), "%.1f", lazy_trimmed);
	}
	printf("resident_mib: peak %.1f freed %.1f after_1s %.1f trimmed %s\n", at_peak, freed,
	       after_1s, trim_text);
	if (lazy_peak >= 0)
		printf("lazyfree_mib: peak %.1f freed %.1f after_1s %.1f trimmed %s\n", lazy_peak,
		       lazy_freed, lazy_after_1s, lazy_trim_text);
	else
		printf("lazyfree_mib: peak -1 freed -1 after_1s -1 trimmed -1\n");
	printf("p999_ns: malloc %ld free %ld\n", malloc_p999, free_p999);
	printf("samples: malloc %zu free %zu clock_ns %ld\n", malloc_samples, free_samples,
	       clock_ns);
	return 0;
}
