// A program that replaces C++'s plain operator new and delete with its own
// pool (C++ allows it). With sized deallocation on, `delete p` calls the
// sized operator delete, whose default forwards to the program's
// operator delete(void *): under LD_PRELOAD=libslitter.so (which exports
// the sized deletes) it must still reach the program's pool.
//
// Prints "custom_new: ok" when every object came back to the pool.

// Real programs do this (GCC only warns): replacing the unsized operators
// alone is valid C++.
#pragma GCC diagnostic ignored "-Wsized-deallocation"
#pragma GCC diagnostic ignored "-Wfree-nonheap-object"

#include <cstddef>
#include <cstdio>
#include <cstdlib>
#include <new>

namespace {

alignas(std::max_align_t) unsigned char pool[1 << 20];
std::size_t used = 0;
long outstanding = 0;

void *pool_allocate(std::size_t size)
{
	size = (size + 15) & ~std::size_t(15);
	if (used + size > sizeof(pool))
		throw std::bad_alloc();
	void *p = pool + used;
	used += size;
	outstanding++;
	return p;
}

void pool_release(void *p)
{
	if (p == nullptr)
		return;
	if (static_cast<unsigned char *>(p) < pool ||
	    static_cast<unsigned char *>(p) >= pool + sizeof(pool)) {
		std::fprintf(stderr, "custom_new: FAIL: %p is not from the pool\n", p);
		std::exit(1);
	}
	outstanding--;
}

struct Node {
	long value;
	Node *next;
};

struct Big {
	char bytes[200];
	~Big() {}
};

} // namespace

void *operator new(std::size_t size) { return pool_allocate(size); }
void *operator new[](std::size_t size) { return pool_allocate(size); }
void operator delete(void *p) noexcept { pool_release(p); }
void operator delete[](void *p) noexcept { pool_release(p); }

int main()
{
	Node *head = nullptr;
	for (long i = 0; i < 1000; i++)
		head = new Node{i, head};
	while (head != nullptr) {
		Node *next = head->next;
		delete head; // a sized delete: operator delete(void *, size_t)
		head = next;
	}
	Big *bigs = new Big[3]; // a destructor: array cookie, sized delete[]
	delete[] bigs;
	if (outstanding != 0) {
		std::fprintf(stderr, "custom_new: FAIL: %ld objects not returned\n", outstanding);
		return 1;
	}
	std::printf("custom_new: ok\n");
	return 0;
}
