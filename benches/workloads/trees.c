/*
 * trees: building and tearing down binary trees of small nodes, after the
 * classic binary-trees benchmark.
 *
 *   trees [scale]
 *
 * A stretch tree of depth MAX+1 is built, checked and freed; a long-lived
 * tree of depth MAX stays alive throughout; then for every depth d = 4, 6,
 * ..., MAX, 2^(MAX - d + 4) * scale trees of depth d are built, walked and
 * freed, one at a time. Nodes are 24 bytes (two child pointers and an
 * item). The walk sums the items; the checksum combines every walk.
 * Single-threaded. Default: MAX = 18, about 68 million nodes.
 */
#include "workload.h"

#define MIN_DEPTH 4
#define MAX_DEPTH 18

struct node {
	struct node *left;
	struct node *right;
	uint64_t item;
};

static struct node *build(int depth, uint64_t item)
{
	struct node *n = wl_malloc(sizeof(*n));
	n->item = item;
	if (depth > 0) {
		n->left = build(depth - 1, 2 * item);
		n->right = build(depth - 1, 2 * item + 1);
	} else {
		n->left = NULL;
		n->right = NULL;
	}
	return n;
}

/* Returns a checksum of the tree: the node count plus a mix of the items. */
static uint64_t check(const struct node *n)
{
	uint64_t sum = 1 + (n->item * 0x9e3779b97f4a7c15ull >> 40);
	if (n->left != NULL)
		sum += check(n->left) + check(n->right);
	return sum;
}

static void destroy(struct node *n)
{
	if (n->left != NULL) {
		destroy(n->left);
		destroy(n->right);
	}
	free(n);
}

int main(int argc, char **argv)
{
	wl_start();
	double scale = wl_scale_arg(argc, argv, 1);
	uint64_t checksum = 0;
	uint64_t nodes = 0;

	struct node *stretch = build(MAX_DEPTH + 1, 1);
	checksum = wl_mix64(checksum ^ check(stretch));
	nodes += (2ull << (MAX_DEPTH + 1)) - 1;
	destroy(stretch);

	struct node *long_lived = build(MAX_DEPTH, 1);
	nodes += (2ull << MAX_DEPTH) - 1;

	for (int depth = MIN_DEPTH; depth <= MAX_DEPTH; depth += 2) {
		uint64_t iterations = wl_scaled(1ull << (MAX_DEPTH - depth + MIN_DEPTH), scale);
		uint64_t sum = 0;
		for (uint64_t i = 0; i < iterations; i++) {
			struct node *t = build(depth, i + 1);
			sum += check(t);
			destroy(t);
		}
		nodes += iterations * ((2ull << depth) - 1);
		checksum = wl_mix64(checksum ^ sum);
		printf("%llu trees of depth %d\n", (unsigned long long)iterations, depth);
	}

	checksum = wl_mix64(checksum ^ check(long_lived));
	destroy(long_lived);
	printf("nodes: %llu\n", (unsigned long long)nodes);
	wl_print_checksum(checksum);
	return 0;
}
