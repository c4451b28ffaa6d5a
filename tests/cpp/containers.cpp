// C++ allocation through libstdc++'s operator new and delete: standard
// containers, string growth, over-aligned new (alignas(64) and
// alignas(4096), scalar and array), sized and aligned delete, nothrow new,
// std::bad_alloc on a huge request, and containers built in one thread and
// destroyed in another.
//
//   containers [rounds per thread]
//
// Built with g++ -std=c++17 without slitter and run under
// LD_PRELOAD=libslitter.so by tests/malloc.rs; passes against glibc's malloc
// too. Prints the allocator_probe.h line first, then where operator new
// comes from, and "containers: ok" last; a failed check prints
// "containers: FAIL file:line: ..." to stderr and exits 1.

#include <atomic>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <deque>
#include <list>
#include <map>
#include <memory>
#include <mutex>
#include <new>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include <malloc.h>

#include "../c/allocator_probe.h"

#define CHECK(cond, ...)                                                      \
	do {                                                                  \
		if (!(cond)) {                                                \
			std::fprintf(stderr, "containers: FAIL %s:%d: ",      \
				     __FILE__, __LINE__);                     \
			std::fprintf(stderr, __VA_ARGS__);                    \
			std::fprintf(stderr, " [%s]\n", #cond);               \
			std::exit(1);                                         \
		}                                                             \
	} while (0)

namespace {

constexpr int kThreads = 4;

bool aligned_to(const void *p, std::size_t alignment)
{
	return (reinterpret_cast<std::uintptr_t>(p) & (alignment - 1)) == 0;
}

// Makes the optimiser believe `p` is used (no new/delete pair is elided).
void escape(void *p)
{
	__asm__ volatile("" : : "r"(p) : "memory");
}

// Hides a size from the optimiser.
std::size_t opaque(std::size_t n)
{
	__asm__ volatile("" : "+r"(n));
	return n;
}

struct alignas(64) CacheLine {
	std::uint64_t words[8];
	explicit CacheLine(std::uint64_t seed = 0)
	{
		for (int i = 0; i < 8; i++)
			words[i] = seed * 31 + static_cast<std::uint64_t>(i);
	}
	bool intact(std::uint64_t seed) const
	{
		for (int i = 0; i < 8; i++)
			if (words[i] != seed * 31 + static_cast<std::uint64_t>(i))
				return false;
		return true;
	}
};

struct alignas(4096) Page {
	unsigned char bytes[4096];
	explicit Page(unsigned char fill = 0)
	{
		std::memset(bytes, fill, sizeof(bytes));
	}
};

static_assert(alignof(CacheLine) == 64, "CacheLine is over-aligned");
static_assert(alignof(Page) == 4096, "Page is page-aligned");

std::string key_for(std::uint64_t n)
{
	// Some keys fit the small-string buffer, most do not.
	std::string key = "key-" + std::to_string(n);
	if (n % 3 != 0)
		key += std::string(n % 61, static_cast<char>('a' + n % 26));
	return key;
}

// std::map<std::string, std::vector<int>>: build, check, erase half, check.
std::map<std::string, std::vector<int>> build_map(std::uint64_t seed,
						  int entries)
{
	std::map<std::string, std::vector<int>> map;
	for (int i = 0; i < entries; i++) {
		std::uint64_t n = seed * 100000 + static_cast<std::uint64_t>(i);
		std::vector<int> &values = map[key_for(n)];
		for (int j = 0; j < static_cast<int>(n % 40); j++)
			values.push_back(static_cast<int>(n) + j);
	}
	return map;
}

void check_map(const std::map<std::string, std::vector<int>> &map,
	       std::uint64_t seed, int entries, bool halved)
{
	std::size_t expected = 0;
	for (int i = 0; i < entries; i++) {
		if (halved && i % 2 == 1)
			continue;
		expected++;
		std::uint64_t n = seed * 100000 + static_cast<std::uint64_t>(i);
		auto it = map.find(key_for(n));
		CHECK(it != map.end(), "map lost key %s", key_for(n).c_str());
		CHECK(it->second.size() == n % 40, "vector of %s has %zu items",
		      it->first.c_str(), it->second.size());
		for (std::size_t j = 0; j < it->second.size(); j++)
			CHECK(it->second[j] == static_cast<int>(n + j),
			      "vector of %s changed at %zu", it->first.c_str(),
			      j);
	}
	CHECK(map.size() == expected, "map has %zu entries, expected %zu",
	      map.size(), expected);
}

void strings(std::uint64_t seed)
{
	// Growth by appending, one character at a time, up to 1 MiB.
	std::string grown;
	for (std::size_t i = 0; i < (1u << 20); i++)
		grown.push_back(static_cast<char>('A' + (i + seed) % 26));
	for (std::size_t i = 0; i < grown.size(); i += 997)
		CHECK(grown[i] == static_cast<char>('A' + (i + seed) % 26),
		      "string growth lost character %zu", i);

	// Many short-lived strings of every length, concatenation, shrink.
	std::vector<std::string> parts;
	for (int i = 0; i < 3000; i++)
		parts.push_back(std::string(static_cast<std::size_t>(i % 300),
					    static_cast<char>('a' + i % 26)));
	std::string joined;
	for (const std::string &part : parts)
		joined += part;
	std::size_t expected = 0;
	for (int i = 0; i < 3000; i++)
		expected += static_cast<std::size_t>(i % 300);
	CHECK(joined.size() == expected, "joined string has %zu bytes",
	      joined.size());
	grown.resize(10);
	grown.shrink_to_fit();
	CHECK(grown.size() == 10, "shrunk string has %zu bytes",
	      grown.size());
}

void vectors(std::uint64_t seed)
{
	std::vector<std::uint64_t> values;
	for (std::uint64_t i = 0; i < 1000000; i++)
		values.push_back(i ^ seed);
	for (std::uint64_t i = 0; i < values.size(); i += 1009)
		CHECK(values[i] == (i ^ seed), "vector lost element %llu",
		      static_cast<unsigned long long>(i));
	values.resize(10);
	values.shrink_to_fit();

	std::vector<std::vector<int>> nested(2000);
	for (std::size_t i = 0; i < nested.size(); i++)
		nested[i].assign(i % 100, static_cast<int>(i));
	for (std::size_t i = 0; i < nested.size(); i++)
		for (int v : nested[i])
			CHECK(v == static_cast<int>(i), "nested vector changed");

	std::deque<int> deque;
	std::list<std::string> list;
	std::unordered_map<int, std::string> hash;
	for (int i = 0; i < 50000; i++) {
		deque.push_front(i);
		if (i % 4 == 0)
			list.push_back(std::to_string(i));
		hash.emplace(i, std::to_string(i * 7));
	}
	CHECK(deque.size() == 50000 && deque.back() == 0,
	      "deque has %zu items", deque.size());
	CHECK(list.size() == 12500, "list has %zu items", list.size());
	for (int i = 0; i < 50000; i += 101)
		CHECK(hash.at(i) == std::to_string(i * 7),
		      "unordered_map changed at %d", i);
}

void aligned_new(std::uint64_t seed)
{
	// Scalar and array new of over-aligned types.
	std::vector<CacheLine *> lines;
	for (int i = 0; i < 2000; i++) {
		lines.push_back(new CacheLine(seed + static_cast<std::uint64_t>(i)));
		CHECK(aligned_to(lines.back(), 64), "new CacheLine = %p",
		      static_cast<void *>(lines.back()));
	}
	for (int i = 0; i < 2000; i++) {
		CHECK(lines[static_cast<std::size_t>(i)]->intact(
			      seed + static_cast<std::uint64_t>(i)),
		      "CacheLine %d changed", i);
		delete lines[static_cast<std::size_t>(i)];
	}

	for (std::size_t n : { 1u, 3u, 17u, 100u }) {
		CacheLine *array = new CacheLine[n];
		CHECK(aligned_to(array, 64), "new CacheLine[%zu] = %p", n,
		      static_cast<void *>(array));
		delete[] array;

		Page *page = new Page(static_cast<unsigned char>(n));
		CHECK(aligned_to(page, 4096), "new Page = %p",
		      static_cast<void *>(page));
		CHECK(page->bytes[4095] == static_cast<unsigned char>(n),
		      "Page contents");
		delete page;

		Page *pages = new Page[n];
		CHECK(aligned_to(pages, 4096), "new Page[%zu] = %p", n,
		      static_cast<void *>(pages));
		for (std::size_t i = 0; i < n; i++)
			std::memset(pages[i].bytes, 0x42, sizeof(pages[i].bytes));
		delete[] pages;
	}

	// Containers of over-aligned types use aligned new through
	// std::allocator.
	std::vector<CacheLine> cache_lines;
	for (int i = 0; i < 5000; i++)
		cache_lines.emplace_back(static_cast<std::uint64_t>(i));
	CHECK(aligned_to(cache_lines.data(), 64), "vector<CacheLine> data");
	std::vector<Page> pages(7);
	CHECK(aligned_to(pages.data(), 4096), "vector<Page> data");
	auto unique = std::make_unique<Page>(9);
	CHECK(aligned_to(unique.get(), 4096), "make_unique<Page>");
	auto shared = std::make_shared<CacheLine>(5);
	CHECK(aligned_to(shared.get(), 64) && shared->intact(5),
	      "make_shared<CacheLine>");

	// The aligned operators called directly, with sized delete.
	for (std::size_t alignment = 16; alignment <= (1u << 16);
	     alignment *= 4) {
		std::size_t size = alignment * 3 + 8;
		void *p = ::operator new(size, std::align_val_t(alignment));
		CHECK(aligned_to(p, alignment), "operator new(%zu, align %zu)",
		      size, alignment);
		std::memset(p, 1, size);
		::operator delete(p, size, std::align_val_t(alignment));

		p = ::operator new[](size, std::align_val_t(alignment),
				     std::nothrow);
		CHECK(p != nullptr && aligned_to(p, alignment),
		      "operator new[](%zu, align %zu, nothrow)", size,
		      alignment);
		::operator delete[](p, std::align_val_t(alignment));
	}
}

void sized_delete()
{
	for (std::size_t size : { 1u, 8u, 24u, 100u, 1000u, 70000u,
				  3u << 20 }) {
		void *p = ::operator new(size);
		std::memset(p, 2, size);
		::operator delete(p, size);
		p = ::operator new[](size);
		::operator delete[](p, size);
	}
	// delete-expressions of complete types call the sized operator.
	for (int i = 0; i < 1000; i++) {
		auto *numbers = new std::uint64_t[static_cast<std::size_t>(i) + 1];
		numbers[i] = 1;
		delete[] numbers;
		auto *pair = new std::pair<std::string, int>("x", i);
		delete pair;
	}
}

void allocation_failure()
{
	// A failed malloc inside operator new becomes std::bad_alloc...
	bool thrown = false;
	try {
		char *p = new char[opaque(SIZE_MAX / 4)];
		escape(p);
		delete[] p;
	} catch (const std::bad_alloc &) {
		thrown = true;
	}
	CHECK(thrown, "new char[SIZE_MAX / 4] did not throw bad_alloc");

	// ...and nullptr for the nothrow forms.
	char *p = new (std::nothrow) char[opaque(SIZE_MAX / 4)];
	escape(p);
	CHECK(p == nullptr, "nothrow new of SIZE_MAX / 4 bytes succeeded");
	void *q = ::operator new(opaque(SIZE_MAX / 4), std::align_val_t(64),
				 std::nothrow);
	escape(q);
	CHECK(q == nullptr, "nothrow aligned new of SIZE_MAX / 4 succeeded");
}

// Maps built by one thread, checked and destroyed by another.
std::mutex handoff_lock;
std::vector<std::pair<std::uint64_t, std::map<std::string, std::vector<int>>>>
	handoff;

void worker(int index, int rounds)
{
	for (int round = 0; round < rounds; round++) {
		std::uint64_t seed =
			static_cast<std::uint64_t>(index * 1000 + round + 1);
		auto map = build_map(seed, 4000);
		check_map(map, seed, 4000, false);
		for (int i = 1; i < 4000; i += 2)
			map.erase(key_for(seed * 100000 +
					  static_cast<std::uint64_t>(i)));
		check_map(map, seed, 4000, true);

		strings(seed);
		vectors(seed);
		aligned_new(seed);
		sized_delete();

		std::pair<std::uint64_t,
			  std::map<std::string, std::vector<int>>> theirs;
		{
			std::lock_guard<std::mutex> guard(handoff_lock);
			if (!handoff.empty()) {
				theirs = std::move(handoff.back());
				handoff.pop_back();
			}
			handoff.emplace_back(seed, std::move(map));
		}
		if (theirs.first != 0)
			check_map(theirs.second, theirs.first, 4000, true);
		// theirs (from another thread, usually) is destroyed here.
	}
}

} // namespace

int main(int argc, char **argv)
{
	int rounds = argc > 1 ? std::atoi(argv[1]) : 20;
	probe_report_allocator();
	void *(*new_ref)(std::size_t) = &::operator new;
	std::printf("operator new: %s\n",
		    probe_object_of(reinterpret_cast<void *>(new_ref)));

	allocation_failure();

	std::vector<std::thread> threads;
	for (int i = 0; i < kThreads; i++)
		threads.emplace_back(worker, i, rounds);
	for (std::thread &thread : threads)
		thread.join();
	for (auto &entry : handoff)
		check_map(entry.second, entry.first, 4000, true);
	handoff.clear();
	handoff.shrink_to_fit();

	std::printf("containers: ok\n");
	return 0;
}
