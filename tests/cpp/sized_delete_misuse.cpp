// sized_delete_misuse CASE: one C++ sized delete whose size (or alignment)
// disagrees with the allocation, for tests/misuse.rs, which runs it under
// LD_PRELOAD=libslitter.so and expects SIGABRT after one `slitter: size
// mismatch` line. Built with g++ -std=c++17 (sized deallocation on). Prints
// "ptr=<address>" before the misuse; exits 0 only if it went unnoticed.

#include <cstdio>
#include <cstring>
#include <new>

namespace {

void tell(const void *p)
{
	std::printf("ptr=%p\n", p);
	std::fflush(stdout);
}

// Hides where a pointer comes from from the optimiser.
template <typename T> T *launder(T *p)
{
	__asm__ volatile("" : "+r"(p) : : "memory");
	return p;
}

struct Base {
	long id;
};

// Deleting one through a Base * (no virtual destructor) is undefined, and
// with sized deallocation passes sizeof(Base) to operator delete.
struct Derived : Base {
	char payload[200];
};

struct alignas(64) Line {
	char bytes[64];
};

// sizeof(Frame) is 8192, a multiple of its alignment.
struct alignas(4096) Frame {
	char bytes[5000];
};

} // namespace

int main(int argc, char **argv)
{
	if (argc != 2)
		return 2;
	const char *c = argv[1];
	if (std::strcmp(c, "delete-sized") == 0) {
		void *p = launder(::operator new(100));
		tell(p);
		::operator delete(p, 1000);
	} else if (std::strcmp(c, "delete-array-sized") == 0) {
		void *p = launder(::operator new[](3000));
		tell(p);
		::operator delete[](p, 24);
	} else if (std::strcmp(c, "delete-aligned-sized") == 0) {
		void *p = launder(::operator new(256, std::align_val_t(64)));
		tell(p);
		::operator delete(p, 64, std::align_val_t(64));
	} else if (std::strcmp(c, "delete-through-base") == 0) {
		Base *b = launder(static_cast<Base *>(new Derived()));
		tell(b);
		delete b;
	} else if (std::strcmp(c, "delete-aligned-array") == 0) {
		Line *lines = launder(new Line[40]);
		tell(lines);
		::operator delete[](lines, 64, std::align_val_t(64));
	} else if (std::strcmp(c, "delete-aligned-rounded") == 0) {
		// A size short of the object's by less than its alignment: the
		// C++ library would round it back up, slitter sees it unrounded.
		Frame *f = launder(new Frame);
		tell(f);
		::operator delete(f, sizeof(Frame) - 8,
				  std::align_val_t(alignof(Frame)));
	} else {
		return 2;
	}
	return 0;
}
