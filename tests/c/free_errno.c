/*
 * free() keeps errno (glibc does since 2.33), even when the system calls it
 * makes fail.
 *
 * A seccomp filter makes munmap, madvise and mincore fail with EPERM, then
 * the program frees small blocks, large blocks (more than the allocator
 * keeps dirty, so that some are given back to the kernel) and blocks too
 * large to share a mapping, each time with errno set to EDOM first, and
 * checks errno still reads EDOM afterwards.
 *
 * Built without slitter and run under LD_PRELOAD=libslitter.so by
 * tests/malloc.rs; passes against glibc's malloc too. Prints
 * "free_errno: ok" last; a failure prints "free_errno: FAIL ..." and exits
 * 1.
 */
#define _GNU_SOURCE

#include <errno.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>

#include "allocator_probe.h"

#define TEST_NAME "free_errno"
#include "test_support.h"

#define MIB ((size_t)1 << 20)
#define SMALL 1000
#define LARGE 512
#define HUGE 4

/* Makes munmap, madvise and mincore fail with EPERM from now on. */
static void fail_memory_syscalls(void)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_munmap, 3, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_madvise, 2, 0),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_mincore, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
	};
	struct sock_fprog program = {
		.len = sizeof(filter) / sizeof(filter[0]),
		.filter = filter,
	};
	CHECK(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0,
	      "PR_SET_NO_NEW_PRIVS: errno %d", errno);
	CHECK(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &program) == 0,
	      "PR_SET_SECCOMP: errno %d", errno);
}

static void free_keeping_errno(void **blocks, size_t n, const char *what)
{
	for (size_t i = 0; i < n; i++) {
		errno = EDOM;
		free(blocks[i]);
		CHECK(errno == EDOM, "free of %s block %zu set errno to %d",
		      what, i, errno);
	}
}

static void allocate(void **blocks, size_t n, size_t size)
{
	for (size_t i = 0; i < n; i++) {
		blocks[i] = malloc(size);
		CHECK(blocks[i] != NULL, "malloc(%zu) failed", size);
		memset(blocks[i], 0x5a, size);
	}
}

int main(void)
{
	static void *small[SMALL], *large[LARGE], *huge[HUGE];

	probe_report_allocator();
	allocate(small, SMALL, 48);
	allocate(large, LARGE, MIB / 4);
	allocate(huge, HUGE, 256 * MIB);

	fail_memory_syscalls();
	free_keeping_errno(small, SMALL, "small");
	free_keeping_errno(large, LARGE, "large");
	free_keeping_errno(huge, HUGE, "huge");

	printf(TEST_NAME ": ok\n");
	return 0;
}
