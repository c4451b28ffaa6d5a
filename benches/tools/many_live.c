/*
 * many_live: how many 64 KiB blocks an allocator keeps live at once.
 *
 *   many_live [target]        (default 200000)
 *
 * Mallocs 64 KiB blocks, never freeing one, until `target` are live or
 * malloc returns NULL, writes one byte of each (its first), and prints
 *
 *   live: <blocks that succeeded> of <target>
 *   maps_lines_at_20000: <lines of /proc/self/maps when 20,000 were live>
 *
 * The second count is the number of mappings the process had then: an
 * allocator making a mapping (or a guard mapping) per block shows about
 * one or two per block, and runs into vm.max_map_count (65530 by default)
 * long before the target. It is -1 when fewer than 20,000 blocks could be
 * had. Then frees everything. Run by benches/compare.sh in its "Counts"
 * section (under each allocator with LD_PRELOAD); 200,000 blocks are
 * 12.5 GiB of address space, but only the touched pages (one per block,
 * plus the allocator's headers) are resident.
 */
#include "../workloads/workload.h"

#include <fcntl.h>
#include <unistd.h>

#define BLOCK (64 * 1024)
#define PROBE_AT 20000

/* Lines of /proc/self/maps, read with read(2) so as not to allocate. */
static long maps_lines(void)
{
	static char buf[1 << 16];
	int fd = open("/proc/self/maps", O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	long lines = 0;
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		if (n < 0) {
			if (errno == EINTR)
				continue;
			lines = -1;
			break;
		}
		if (n == 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			lines += buf[i] == '\n';
	}
	close(fd);
	return lines;
}

int main(int argc, char **argv)
{
	wl_start();
	long target = wl_int_arg(argc, argv, 1, 200000, 10000000);
	unsigned char **blocks = calloc((size_t)target, sizeof(*blocks));
	if (blocks == NULL)
		wl_die("calloc of the block table failed");
	long live = 0, lines = -1;
	while (live < target) {
		unsigned char *p = malloc(BLOCK);
		if (p == NULL)
			break;
		p[0] = (unsigned char)live;
		blocks[live++] = p;
		if (live == PROBE_AT)
			lines = maps_lines();
	}
	for (long i = 0; i < live; i++) {
		if (blocks[i][0] != (unsigned char)i)
			wl_die("many_live: block %ld corrupted", i);
		free(blocks[i]);
	}
	free(blocks);
	printf("live: %ld of %ld\n", live, target);
	printf("maps_lines_at_%d: %ld\n", PROBE_AT, lines);
	return 0;
}
