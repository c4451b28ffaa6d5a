/*
 * malloc_probe: prints which shared object malloc, free, calloc and
 * realloc bind to in this process, then exercises them once.
 *
 *   LD_PRELOAD=/path/to/liballoc.so malloc_probe
 *
 * Output (stderr): "probe: malloc=<object> free=<object> calloc=<object>
 * realloc=<object>", the same line the workloads print on stderr when
 * WORKLOAD_PROBE is set (see wl_symbol_object in workloads/workload.h).
 * benches/compare.sh runs it once per allocator before measuring anything,
 * and fails when an allocator did not take over.
 */
#include "../workloads/workload.h"

int main(void)
{
	wl_probe_print();
	fflush(stderr);
	void *p = wl_malloc(100);
	void *q = calloc(10, 10);
	if (q == NULL)
		wl_die("calloc failed");
	p = wl_realloc(p, 1000);
	wl_escape(p);
	wl_escape(q);
	free(q);
	free(p);
	return 0;
}
