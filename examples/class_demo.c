/*
 * A tour of the slitter class API.
 *
 * A class is a pool of same-size objects. Its memory is type-stable: an
 * address once handed out by a class is only ever reused by that class, so
 * even a stale pointer still points at a `struct node` (never at, say, a
 * string that happened to land at the same address).
 *
 * Build and run (examples/demo.sh does this):
 *   cargo build --release
 *   cc -std=c11 -I include examples/class_demo.c \
 *      -L target/release -lslitter -Wl,-rpath,target/release -o class_demo
 *   ./class_demo
 */
#include "slitter.h"

#include <stdio.h>
#include <string.h>

struct node {
	struct node *next;
	int value;
};

/*
 * DEFINE_SLITTER_CLASS defines `struct slitter_class node_class` and
 * registers it before main runs. The rest of the arguments are designated
 * initialisers for `struct slitter_class_config`; fields left out are zero.
 * The name only shows up in diagnostics.
 */
DEFINE_SLITTER_CLASS(node_class, .name = "node", .size = sizeof(struct node));

/*
 * A zero_init class: every object it hands out reads as all zeroes, even if
 * its previous user left data behind.
 */
#define BUFFER_SIZE 64
DEFINE_SLITTER_CLASS(buffer_class, .name = "buffer", .size = BUFFER_SIZE,
		     .zero_init = true);

/* Pushes a new node holding `value` on top of `head`. */
static struct node *push(struct node *head, int value)
{
	/* slitter_allocate aborts rather than return NULL. */
	struct node *node = slitter_allocate(node_class);

	node->next = head;
	node->value = value;
	return node;
}

static void print_list(const struct node *head)
{
	printf("  list:");
	for (const struct node *node = head; node != NULL; node = node->next)
		printf(" %d", node->value);
	printf("\n");
}

/* Returns every node of the list to the class. */
static void free_list(struct node *head)
{
	while (head != NULL) {
		struct node *next = head->next;

		slitter_release(node_class, head);
		head = next;
	}
}

static int all_zero(const unsigned char *bytes, size_t size)
{
	for (size_t i = 0; i < size; i++)
		if (bytes[i] != 0)
			return 0;
	return 1;
}

int main(void)
{
	printf("registered class \"node\" (id %u, %zu-byte objects)\n",
	       node_class.id, sizeof(struct node));
	printf("registered class \"buffer\" (id %u, %d-byte zero_init objects)\n",
	       buffer_class.id, BUFFER_SIZE);

	printf("building a linked list of 5 nodes:\n");
	struct node *list = NULL;
	for (int i = 1; i <= 5; i++)
		list = push(list, i * 10);
	print_list(list);
	printf("  head node at %p\n", (void *)list);

	printf("releasing the list\n");
	void *old_head = list;
	free_list(list);

	/*
	 * Released objects go to a per-thread cache and come back on later
	 * allocations from the same class.
	 */
	struct node *again = push(NULL, 99);
	printf("allocated a node again: %p (%s)\n", (void *)again,
	       (void *)again == old_head ? "the old head, reused"
					 : "another node of the class");
	slitter_release(node_class, again);

	/*
	 * zero_init at work: dirty a batch of buffers and release them; the
	 * next batch reuses some of that memory, yet every buffer reads as
	 * zeroes.
	 */
	enum { BATCH = 100 };
	unsigned char *dirty[BATCH];
	unsigned char *fresh[BATCH];
	int reused = 0;
	int zeroed = 1;

	printf("zero_init: filling %d buffers with 0xff and releasing them\n",
	       BATCH);
	for (int i = 0; i < BATCH; i++) {
		dirty[i] = slitter_allocate(buffer_class);
		memset(dirty[i], 0xff, BUFFER_SIZE);
	}
	for (int i = 0; i < BATCH; i++)
		slitter_release(buffer_class, dirty[i]);
	for (int i = 0; i < BATCH; i++) {
		fresh[i] = slitter_allocate(buffer_class);
		for (int j = 0; j < BATCH; j++)
			reused += fresh[i] == dirty[j];
		zeroed &= all_zero(fresh[i], BUFFER_SIZE);
	}
	printf("  allocated %d buffers again: %d reuse dirtied memory, "
	       "all read as zeroes: %s\n",
	       BATCH, reused, zeroed ? "yes" : "NO");
	for (int i = 0; i < BATCH; i++)
		slitter_release(buffer_class, fresh[i]);

	/* Releasing NULL does nothing, like free(NULL). */
	slitter_release(node_class, NULL);

	/*
	 * slitter_class_try_register reports a bad config instead of aborting
	 * as slitter_class_register (and so DEFINE_SLITTER_CLASS) does.
	 */
	struct slitter_class bad;
	struct slitter_class_config config = {.name = "bad", .size = 0};
	enum slitter_status status = slitter_class_try_register(&config, &bad);
	printf("try_register with size 0: %s\n",
	       status == SLITTER_ZERO_SIZE ? "SLITTER_ZERO_SIZE" : "unexpected");

	printf("demo finished\n");
	return zeroed && status == SLITTER_ZERO_SIZE ? 0 : 1;
}
