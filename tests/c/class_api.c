/*
 * Checks the slitter class API from C, through include/slitter.h only.
 *
 * Built and run by tests/c_api.rs, once against the cdylib and once against
 * the staticlib. Exits 0 after printing "ok"; any failed check prints a
 * "FAIL: ..." line to stderr and exits 1.
 */
#include "slitter.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TEST_NAME "class_api"
#include "test_support.h"

/*
 * Three classes of different sizes: 13 (rounded up to 16), 48 (a multiple
 * of 16 that is not a power of two) and 200 (8 mod 16, rounded up to 208).
 * Every object is 16-byte aligned.
 */
#define SMALL_SIZE 13
#define MEDIUM_SIZE 48
#define LARGE_SIZE 200
#define ZEROED_SIZE 40

DEFINE_SLITTER_CLASS(small_class, .name = "c-small", .size = SMALL_SIZE);
DEFINE_SLITTER_CLASS(medium_class, .name = "c-medium", .size = MEDIUM_SIZE);
DEFINE_SLITTER_CLASS(large_class, .name = "c-large", .size = LARGE_SIZE);
DEFINE_SLITTER_CLASS(zeroed_class, .name = "c-zeroed", .size = ZEROED_SIZE,
		     .zero_init = true);

#define OBJECT_COUNT 10000

struct object {
	unsigned char *ptr;
	size_t size;
	size_t index;
};

static void check_alignment(const void *ptr, size_t size)
{
	uintptr_t addr = (uintptr_t)ptr;

	CHECK(ptr != NULL, "allocation of a %zu-byte object returned NULL",
	      size);
	CHECK(addr % 16 == 0, "%p (size %zu) is not 16-byte aligned", ptr, size);
}

/* The byte at offset `offset` of object number `index`. */
static unsigned char pattern_byte(size_t index, size_t offset)
{
	return (unsigned char)(index * 131 + offset * 7 + 1);
}

static void fill(struct object *object)
{
	for (size_t i = 0; i < object->size; i++)
		object->ptr[i] = pattern_byte(object->index, i);
}

static void verify(const struct object *object)
{
	for (size_t i = 0; i < object->size; i++)
		CHECK(object->ptr[i] == pattern_byte(object->index, i),
		      "object %zu at %p (size %zu): byte %zu was overwritten",
		      object->index, (void *)object->ptr, object->size, i);
}

static int by_address(const void *a, const void *b)
{
	uintptr_t x = (uintptr_t)((const struct object *)a)->ptr;
	uintptr_t y = (uintptr_t)((const struct object *)b)->ptr;

	return (x > y) - (x < y);
}

static struct slitter_class class_of_size(size_t size)
{
	switch (size) {
	case SMALL_SIZE:
		return small_class;
	case MEDIUM_SIZE:
		return medium_class;
	default:
		return large_class;
	}
}

/* Allocates OBJECT_COUNT objects across the three classes, fills each with
 * its own pattern, and checks that no two live objects overlap. */
static void check_live_objects_do_not_overlap(void)
{
	static const size_t sizes[] = {SMALL_SIZE, MEDIUM_SIZE, LARGE_SIZE};
	struct object *objects = calloc(OBJECT_COUNT, sizeof(*objects));

	CHECK(objects != NULL, "calloc failed");
	for (size_t i = 0; i < OBJECT_COUNT; i++) {
		size_t size = sizes[i % 3];

		objects[i].ptr = slitter_allocate(class_of_size(size));
		objects[i].size = size;
		objects[i].index = i;
		check_alignment(objects[i].ptr, size);
		fill(&objects[i]);
	}
	for (size_t i = 0; i < OBJECT_COUNT; i++)
		verify(&objects[i]);

	qsort(objects, OBJECT_COUNT, sizeof(*objects), by_address);
	for (size_t i = 1; i < OBJECT_COUNT; i++) {
		const struct object *prev = &objects[i - 1];

		CHECK(prev->ptr + prev->size <= objects[i].ptr,
		      "%p (size %zu) overlaps %p (size %zu)",
		      (void *)prev->ptr, prev->size, (void *)objects[i].ptr,
		      objects[i].size);
	}

	for (size_t i = 0; i < OBJECT_COUNT; i++)
		slitter_release(class_of_size(objects[i].size), objects[i].ptr);
	free(objects);
}

#define ROUND_SIZE 200

static int contains(void *const *set, size_t count, const void *ptr)
{
	for (size_t i = 0; i < count; i++)
		if (set[i] == ptr)
			return 1;
	return 0;
}

/* Objects of a zero_init class read as zeroes every time they are handed
 * out, including after they were dirtied, released and handed out again. */
static void check_zero_init(void)
{
	void *previous[ROUND_SIZE];
	size_t reused = 0;

	for (int round = 0; round < 10; round++) {
		void *current[ROUND_SIZE];

		for (size_t i = 0; i < ROUND_SIZE; i++) {
			unsigned char *ptr = slitter_allocate(zeroed_class);

			check_alignment(ptr, ZEROED_SIZE);
			for (size_t b = 0; b < ZEROED_SIZE; b++)
				CHECK(ptr[b] == 0,
				      "round %d: byte %zu of zero_init object "
				      "%p is %#x",
				      round, b, (void *)ptr, ptr[b]);
			if (round > 0 && contains(previous, ROUND_SIZE, ptr))
				reused++;
			memset(ptr, 0xa5, ZEROED_SIZE);
			current[i] = ptr;
		}
		for (size_t i = 0; i < ROUND_SIZE; i++)
			slitter_release(zeroed_class, current[i]);
		memcpy(previous, current, sizeof(previous));
	}
	/* Otherwise the zero check above proved nothing about reuse. */
	CHECK(reused > 0, "no zero_init object was ever reused");
}

static void check_release_null_is_noop(void)
{
	slitter_release(small_class, NULL);
	slitter_release(medium_class, NULL);
	slitter_release(zeroed_class, NULL);
}

/* A released object is handed out again: its address reappears. */
static void check_reuse(void)
{
	void *released[100];
	int found = 0;

	for (size_t i = 0; i < 100; i++)
		released[i] = slitter_allocate(medium_class);
	for (size_t i = 0; i < 100; i++)
		slitter_release(medium_class, released[i]);

	/* Bounded: the thread cache holds a few magazines at most. */
	for (size_t i = 0; i < 10000 && !found; i++) {
		void *ptr = slitter_allocate(medium_class);

		check_alignment(ptr, MEDIUM_SIZE);
		found = contains(released, 100, ptr);
	}
	CHECK(found, "no released address reappeared in 10000 allocations");
}

static void check_try_register(void)
{
	const struct slitter_class untouched = {.id = 0xdeadbeef};
	struct slitter_class out = untouched;
	enum slitter_status status;

	status = slitter_class_try_register(NULL, &out);
	CHECK(status == SLITTER_NULL_CONFIG, "NULL config gave status %d",
	      (int)status);
	CHECK(out.id == untouched.id, "refused registration wrote *out");

	struct slitter_class_config zero = {.name = "zero", .size = 0};
	status = slitter_class_try_register(&zero, &out);
	CHECK(status == SLITTER_ZERO_SIZE, "size 0 gave status %d", (int)status);
	CHECK(out.id == untouched.id, "refused registration wrote *out");

	struct slitter_class_config huge = {.name = "huge", .size = SIZE_MAX};
	status = slitter_class_try_register(&huge, &out);
	CHECK(status == SLITTER_SIZE_TOO_LARGE, "size SIZE_MAX gave status %d",
	      (int)status);
	CHECK(out.id == untouched.id, "refused registration wrote *out");

	struct slitter_class_config nope = {
		.name = "nope", .size = 32, .mapper_name = "nope"};
	status = slitter_class_try_register(&nope, &out);
	CHECK(status == SLITTER_UNKNOWN_MAPPER,
	      "mapper \"nope\" gave status %d", (int)status);
	CHECK(out.id == untouched.id, "refused registration wrote *out");

	struct slitter_class_config file = {
		.name = "c-file", .size = 64, .mapper_name = "file"};
	status = slitter_class_try_register(&file, &out);
	CHECK(status == SLITTER_OK, "mapper \"file\" gave status %d",
	      (int)status);
	CHECK(out.id != 0 && out.id != untouched.id,
	      "registration wrote no valid id (%u)", out.id);
	CHECK(out.id != small_class.id && out.id != medium_class.id &&
		      out.id != large_class.id && out.id != zeroed_class.id,
	      "new class reuses id %u", out.id);

	/* Objects of the file-backed class work like any other. */
	struct object objects[500];
	for (size_t i = 0; i < 500; i++) {
		objects[i].ptr = slitter_allocate(out);
		objects[i].size = 64;
		objects[i].index = i;
		check_alignment(objects[i].ptr, 64);
		fill(&objects[i]);
	}
	for (size_t i = 0; i < 500; i++) {
		verify(&objects[i]);
		slitter_release(out, objects[i].ptr);
	}
}

/*
 * The header's version macros agree with each other and with the library's
 * slitter_version().
 */
static void check_version(void)
{
	CHECK(SLITTER_VERSION == SLITTER_VERSION_MAJOR * 10000 +
					 SLITTER_VERSION_MINOR * 100 +
					 SLITTER_VERSION_PATCH,
	      "SLITTER_VERSION %d does not match %d.%d.%d", SLITTER_VERSION,
	      SLITTER_VERSION_MAJOR, SLITTER_VERSION_MINOR,
	      SLITTER_VERSION_PATCH);
	CHECK(slitter_version() == SLITTER_VERSION,
	      "slitter_version() returns %u, the header says %d",
	      slitter_version(), SLITTER_VERSION);
}

int main(void)
{
	check_version();
	CHECK(small_class.id != 0 && medium_class.id != 0 &&
		      large_class.id != 0 && zeroed_class.id != 0,
	      "DEFINE_SLITTER_CLASS left a class id at 0");
	CHECK(small_class.id != medium_class.id &&
		      small_class.id != large_class.id &&
		      medium_class.id != large_class.id,
	      "two classes share an id");

	check_live_objects_do_not_overlap();
	check_zero_init();
	check_release_null_is_noop();
	check_reuse();
	check_try_register();

	printf("ok\n");
	return 0;
}
