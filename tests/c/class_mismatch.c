/*
 * Misuse on purpose: allocates from one class and releases into another of
 * the same size. slitter must abort with one "slitter: class mismatch" line
 * naming the address and both classes; tests/death.rs checks that line
 * against what this program prints to stdout first:
 *
 *   apple=<id of the owner> banana=<id of the wrong class>
 *   ptr=<address, as %p>
 */
#include "slitter.h"

#include <stdio.h>

DEFINE_SLITTER_CLASS(apple_class, .name = "mismatch-apple", .size = 32);
DEFINE_SLITTER_CLASS(banana_class, .name = "mismatch-banana", .size = 32);

int main(void)
{
	void *ptr = slitter_allocate(apple_class);

	printf("apple=%u banana=%u\n", apple_class.id, banana_class.id);
	printf("ptr=%p\n", ptr);
	fflush(stdout);

	slitter_release(banana_class, ptr);

	printf("survived a release into the wrong class\n");
	return 0;
}
