/*
 * The C++ aligned operator new entry points, in C so that the C++
 * library's std::bad_alloc can unwind through them.
 *
 * slitter's Rust code is built with panic=abort (no unwinding, and no
 * landing pads on its fast paths), so an exception must never pass
 * through a Rust frame. The exported symbols (_ZnwmSt11align_val_t and
 * the three others) are naked Rust functions that jump here
 * (src/malloc/sized_free.rs), leaving no frame of their own. These call
 * into Rust only for calls that return: the allocation (NULL on failure),
 * then, on failure, the C++ library's definition of the same operator
 * (the next after slitter's), which runs the new-handler loop and throws
 * or returns NULL; this file is compiled with -fexceptions, so its frames
 * carry the unwind information an exception needs to pass.
 */
#include <stddef.h>

void *slitter_cxx_new_aligned(size_t size, size_t align);
void *slitter_cxx_new_next(unsigned which);
void slitter_cxx_new_retried(void *allocated);

/* The operators, in the order slitter_cxx_new_next numbers them. */
enum { NEW, NEW_ARRAY, NEW_NOTHROW, NEW_ARRAY_NOTHROW };

typedef void *(*new_fn)(size_t, size_t);
typedef void *(*new_nothrow_fn)(size_t, size_t, const void *);

static void *retry(unsigned which, size_t size, size_t align)
{
	void *allocated = ((new_fn)slitter_cxx_new_next(which))(size, align);
	slitter_cxx_new_retried(allocated);
	return allocated;
}

static void *retry_nothrow(unsigned which, size_t size, size_t align, const void *nothrow)
{
	void *allocated = ((new_nothrow_fn)slitter_cxx_new_next(which))(size, align, nothrow);
	slitter_cxx_new_retried(allocated);
	return allocated;
}

void *slitter_cxx_new_entry(size_t size, size_t align)
{
	void *allocated = slitter_cxx_new_aligned(size, align);
	return allocated != NULL ? allocated : retry(NEW, size, align);
}

void *slitter_cxx_new_array_entry(size_t size, size_t align)
{
	void *allocated = slitter_cxx_new_aligned(size, align);
	return allocated != NULL ? allocated : retry(NEW_ARRAY, size, align);
}

void *slitter_cxx_new_nothrow_entry(size_t size, size_t align, const void *nothrow)
{
	void *allocated = slitter_cxx_new_aligned(size, align);
	return allocated != NULL ? allocated : retry_nothrow(NEW_NOTHROW, size, align, nothrow);
}

void *slitter_cxx_new_array_nothrow_entry(size_t size, size_t align, const void *nothrow)
{
	void *allocated = slitter_cxx_new_aligned(size, align);
	return allocated != NULL ? allocated
				 : retry_nothrow(NEW_ARRAY_NOTHROW, size, align, nothrow);
}
