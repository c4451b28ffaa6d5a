/*
 * measure: runs a command and reports its wall time and peak RSS.
 *
 *   measure [-p PRELOAD] -o RESULT_FILE -- COMMAND [ARG...]
 *
 * Forks, sets LD_PRELOAD=PRELOAD in the child only (removes LD_PRELOAD from
 * the child's environment when -p is not given), execs COMMAND, waits for
 * it with wait4 and writes one line to RESULT_FILE:
 *
 *   <wall seconds> <max RSS KiB> <user seconds> <system seconds> <other CPU seconds>
 *
 * Wall time is CLOCK_MONOTONIC from just before fork to just after wait4
 * returns (fork and exec included, about a millisecond); max RSS is the
 * child's ru_maxrss. "Other CPU seconds" is the CPU time the whole machine
 * spent busy during the run (/proc/stat: user, nice, system, irq, softirq
 * and steal) minus the child's own user and system time: what other
 * processes (or the hypervisor) took meanwhile, a gauge of how disturbed
 * the measurement was. It has the 1/CLK_TCK granularity of /proc/stat and
 * is -1 when /proc/stat cannot be read. The child's stdin, stdout and stderr are this
 * program's. Exits with the child's status (128 + signal number when the
 * child was killed by a signal, after a message on stderr); 127 when the
 * command cannot be run, 2 on a usage error. Used by benches/compare.sh.
 */
#define _GNU_SOURCE
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static void usage(void)
{
	fprintf(stderr, "usage: measure [-p PRELOAD] -o RESULT_FILE -- COMMAND [ARG...]\n");
	exit(2);
}

static double now(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Busy CPU time of the whole machine so far, in seconds, or -1. */
static double machine_busy(void)
{
	FILE *f = fopen("/proc/stat", "r");
	if (f == NULL)
		return -1;
	unsigned long long user, nice, system, idle, iowait, irq, softirq, steal;
	int n = fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &user, &nice, &system,
		       &idle, &iowait, &irq, &softirq, &steal);
	fclose(f);
	if (n != 8)
		return -1;
	long hz = sysconf(_SC_CLK_TCK);
	if (hz <= 0)
		return -1;
	return (double)(user + nice + system + irq + softirq + steal) / (double)hz;
}

static double seconds(struct timeval tv)
{
	return (double)tv.tv_sec + (double)tv.tv_usec * 1e-6;
}

int main(int argc, char **argv)
{
	const char *preload = NULL;
	const char *result = NULL;
	int opt;
	while ((opt = getopt(argc, argv, "+p:o:")) != -1) {
		switch (opt) {
		case 'p':
			preload = optarg;
			break;
		case 'o':
			result = optarg;
			break;
		default:
			usage();
		}
	}
	if (result == NULL || optind >= argc)
		usage();
	char **command = &argv[optind];

	FILE *out = fopen(result, "w");
	if (out == NULL) {
		fprintf(stderr, "measure: cannot open %s: %s\n", result, strerror(errno));
		return 2;
	}

	double busy_start = machine_busy();
	double start = now();
	pid_t pid = fork();
	if (pid < 0) {
		fprintf(stderr, "measure: fork: %s\n", strerror(errno));
		return 127;
	}
	if (pid == 0) {
		if (preload != NULL)
			setenv("LD_PRELOAD", preload, 1);
		else
			unsetenv("LD_PRELOAD");
		execvp(command[0], command);
		fprintf(stderr, "measure: cannot run %s: %s\n", command[0], strerror(errno));
		_exit(127);
	}

	int status;
	struct rusage usage;
	pid_t got;
	do {
		got = wait4(pid, &status, 0, &usage);
	} while (got < 0 && errno == EINTR);
	double wall = now() - start;
	double busy_end = machine_busy();
	if (got < 0) {
		fprintf(stderr, "measure: wait4: %s\n", strerror(errno));
		return 127;
	}

	double user = seconds(usage.ru_utime), sys = seconds(usage.ru_stime);
	double other = -1;
	if (busy_start >= 0 && busy_end >= 0) {
		other = busy_end - busy_start - user - sys;
		if (other < 0)
			other = 0;
	}
	fprintf(out, "%.6f %ld %.6f %.6f %.2f\n", wall, usage.ru_maxrss, user, sys, other);
	if (fclose(out) != 0) {
		fprintf(stderr, "measure: cannot write %s: %s\n", result, strerror(errno));
		return 2;
	}

	if (WIFEXITED(status))
		return WEXITSTATUS(status);
	if (WIFSIGNALED(status)) {
		fprintf(stderr, "measure: %s killed by signal %d (%s)\n", command[0],
			WTERMSIG(status), strsignal(WTERMSIG(status)));
		return 128 + WTERMSIG(status);
	}
	return 127;
}
