// aligned_new: C++'s aligned operator new, which slitter exports, in a
// correct program: scalar, array and nothrow forms of several sizes and
// alignments, each deleted with its right size (sized and unsized
// aligned deletes, and delete-expressions of over-aligned types); then
// allocation failure: the throwing forms throw std::bad_alloc and the
// nothrow forms return nullptr.
//
// Built with g++ -std=c++17 without slitter and run under
// LD_PRELOAD=libslitter.so (with and without SLITTER_HARDEN=1) by
// tests/malloc.rs. Prints "aligned_new: ok" last; a failed check prints
// "aligned_new: FAIL ..." to stderr and exits 1.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <initializer_list>
#include <new>

#define CHECK(cond, ...)                                                      \
	do {                                                                  \
		if (!(cond)) {                                                \
			std::fprintf(stderr, "aligned_new: FAIL %s:%d: ",     \
				     __FILE__, __LINE__);                     \
			std::fprintf(stderr, __VA_ARGS__);                    \
			std::fprintf(stderr, "\n");                           \
			std::exit(1);                                         \
		}                                                             \
	} while (0)

namespace {

bool aligned_to(const void *p, std::size_t alignment)
{
	return (reinterpret_cast<std::uintptr_t>(p) & (alignment - 1)) == 0;
}

// Hides a value from the optimiser.
template <typename T> T opaque(T v)
{
	__asm__ volatile("" : "+r"(v) : : "memory");
	return v;
}

struct alignas(32) Small {
	char bytes[40]; // sizeof 64
};

struct alignas(256) Odd {
	char bytes[300]; // sizeof 512
	~Odd() {}        // an array cookie
};

struct alignas(8192) Huge {
	char bytes[9000]; // sizeof 16384
};

template <typename T> void expressions()
{
	T *one = opaque(new T);
	CHECK(aligned_to(one, alignof(T)), "new of alignment %zu",
	      alignof(T));
	std::memset(static_cast<void *>(one), 3, sizeof(T));
	delete one; // sized aligned delete with sizeof(T)
	T *many = opaque(new T[7]);
	CHECK(aligned_to(many, alignof(T)), "new[] of alignment %zu",
	      alignof(T));
	std::memset(static_cast<void *>(many), 4, 7 * sizeof(T));
	delete[] many;
	T *maybe = opaque(new (std::nothrow) T);
	CHECK(maybe != nullptr && aligned_to(maybe, alignof(T)),
	      "nothrow new of alignment %zu", alignof(T));
	delete maybe;
}

void operators()
{
	for (std::size_t alignment = 1; alignment <= (1u << 16);
	     alignment *= 2) {
		for (std::size_t size :
		     { std::size_t(0), std::size_t(1), alignment - 1, alignment,
		       alignment + 1, 3 * alignment + 8, std::size_t(70000) }) {
			std::align_val_t al{alignment};
			void *p = ::operator new(opaque(size), al);
			CHECK(aligned_to(p, alignment), "new(%zu, %zu)", size,
			      alignment);
			std::memset(p, 1, size);
			::operator delete(p, size, al);

			p = ::operator new[](opaque(size), al);
			CHECK(aligned_to(p, alignment), "new[](%zu, %zu)", size,
			      alignment);
			std::memset(p, 2, size);
			::operator delete[](p, size, al);

			p = ::operator new(opaque(size), al, std::nothrow);
			CHECK(p != nullptr && aligned_to(p, alignment),
			      "new(%zu, %zu, nothrow)", size, alignment);
			::operator delete(p, size, al);

			p = ::operator new[](opaque(size), al, std::nothrow);
			CHECK(p != nullptr && aligned_to(p, alignment),
			      "new[](%zu, %zu, nothrow)", size, alignment);
			::operator delete[](p, al);
		}
	}
}

void failure()
{
	std::size_t impossible = opaque(SIZE_MAX / 2);
	std::align_val_t al{64};
	bool thrown = false;
	try {
		void *p = opaque(::operator new(impossible, al));
		::operator delete(p, al);
	} catch (const std::bad_alloc &) {
		thrown = true;
	}
	CHECK(thrown, "operator new(SIZE_MAX / 2, 64) did not throw");
	thrown = false;
	try {
		void *p = opaque(::operator new[](impossible, al));
		::operator delete[](p, al);
	} catch (const std::bad_alloc &) {
		thrown = true;
	}
	CHECK(thrown, "operator new[](SIZE_MAX / 2, 64) did not throw");
	CHECK(opaque(::operator new(impossible, al, std::nothrow)) == nullptr,
	      "nothrow operator new(SIZE_MAX / 2, 64) succeeded");
	CHECK(opaque(::operator new[](impossible, al, std::nothrow)) ==
		      nullptr,
	      "nothrow operator new[](SIZE_MAX / 2, 64) succeeded");
}

} // namespace

int main()
{
	expressions<Small>();
	expressions<Odd>();
	expressions<Huge>();
	operators();
	failure();
	std::printf("aligned_new: ok\n");
	return 0;
}
