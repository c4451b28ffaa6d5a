/*
 * fork() with a class of the "file" mapper, whose objects live in shared
 * mappings of files: parent and child must each keep objects of their own,
 * as they would with private memory.
 *
 * The parent fills OBJECTS objects (more than one page) with 'P', then
 * forks. The child checks it inherited them, overwrites them with 'X',
 * allocates OBJECTS more and fills them with 'C', and tells the parent.
 * The parent then checks its objects still read 'P', allocates OBJECTS more
 * (the addresses the child just used, in the parent's own copy) and checks
 * they hold none of the child's bytes, writes 'Q' over everything and tells
 * the child, which checks that none of the parent's writes reached it.
 *
 * Built against include/slitter.h and linked with libslitter by
 * tests/c_api.rs. Prints "file_fork: ok" last; a failure prints
 * "file_fork: FAIL ..." and exits 1 (the parent also fails when the child
 * does).
 */
#include "slitter.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define TEST_NAME "file_fork"
#include "test_support.h"

#define SIZE 64
#define OBJECTS 1000

DEFINE_SLITTER_CLASS(file_class, .name = "file-fork", .size = SIZE,
		     .mapper_name = "file");

static unsigned char *mine[OBJECTS];
static unsigned char *more[OBJECTS];

/* Whether each of the n objects holds SIZE bytes of `byte`. */
static bool all_hold(unsigned char **objects, size_t n, unsigned char byte)
{
	for (size_t i = 0; i < n; i++)
		for (size_t j = 0; j < SIZE; j++)
			if (objects[i][j] != byte)
				return false;
	return true;
}

/* Whether any of the n objects holds a byte `byte`. */
static bool any_holds(unsigned char **objects, size_t n, unsigned char byte)
{
	for (size_t i = 0; i < n; i++)
		if (memchr(objects[i], byte, SIZE) != NULL)
			return true;
	return false;
}

static void fill(unsigned char **objects, size_t n, unsigned char byte)
{
	for (size_t i = 0; i < n; i++)
		memset(objects[i], byte, SIZE);
}

static void allocate_all(unsigned char **objects)
{
	for (size_t i = 0; i < OBJECTS; i++) {
		objects[i] = slitter_allocate(file_class);
		CHECK(objects[i] != NULL, "allocation %zu failed", i);
	}
}

static void send_byte(int fd)
{
	char byte = 1;
	CHECK(write(fd, &byte, 1) == 1, "write to the pipe failed");
}

static void receive_byte(int fd)
{
	char byte;
	CHECK(read(fd, &byte, 1) == 1, "read from the pipe failed");
}

static void child(int to_parent, int from_parent)
{
	CHECK(all_hold(mine, OBJECTS, 'P'), "the child did not inherit 'P'");
	fill(mine, OBJECTS, 'X');
	allocate_all(more);
	fill(more, OBJECTS, 'C');
	send_byte(to_parent);
	receive_byte(from_parent);
	CHECK(all_hold(mine, OBJECTS, 'X'),
	      "the parent's writes reached the child's inherited objects");
	CHECK(all_hold(more, OBJECTS, 'C'),
	      "the parent's writes reached the child's new objects");
	_exit(0);
}

int main(void)
{
	allocate_all(mine);
	fill(mine, OBJECTS, 'P');

	int down[2], up[2];
	CHECK(pipe(down) == 0 && pipe(up) == 0, "pipe failed");
	pid_t pid = fork();
	CHECK(pid >= 0, "fork failed");
	if (pid == 0) {
		/* A parent that failed closes its ends: no wait beyond that. */
		close(up[0]);
		close(down[1]);
		alarm(10);
		child(up[1], down[0]);
	}
	close(up[1]);
	close(down[0]);

	receive_byte(up[0]);
	CHECK(all_hold(mine, OBJECTS, 'P'),
	      "the child's writes reached the parent's objects");
	allocate_all(more);
	CHECK(!any_holds(more, OBJECTS, 'C'),
	      "the parent's new objects hold the child's bytes");
	fill(mine, OBJECTS, 'Q');
	fill(more, OBJECTS, 'Q');
	send_byte(down[1]);

	int status;
	CHECK(waitpid(pid, &status, 0) == pid, "waitpid failed");
	CHECK(WIFEXITED(status) && WEXITSTATUS(status) == 0,
	      "the child failed (status %#x)", status);
	for (size_t i = 0; i < OBJECTS; i++) {
		slitter_release(file_class, mine[i]);
		slitter_release(file_class, more[i]);
	}
	printf(TEST_NAME ": ok\n");
	return 0;
}
