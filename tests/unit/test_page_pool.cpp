// The page pool: sizes, alignment, exhaustion, reuse.
#include <catch2/catch.hpp>
#include <set>

#include "kcopy/error.hpp"
#include "kcopy/page_pool.hpp"

using kcopy::Error;
using kcopy::PagePool;

TEST_CASE("the pool holds as many buffers as fit in its pages, each page-aligned and disjoint") {
  PagePool pool(64, 64 * 1024);  // 256 KiB in 64 KiB buffers
  REQUIRE(pool.capacity() == 4);
  std::set<std::byte*> seen;
  std::vector<std::span<std::byte>> taken;
  for (int i = 0; i < 4; ++i) {
    auto b = pool.get();
    REQUIRE(b.size() == 64 * 1024);
    REQUIRE(reinterpret_cast<std::uintptr_t>(b.data()) % 4096 == 0);
    for (auto& t : taken) REQUIRE((b.data() >= t.data() + t.size() || t.data() >= b.data() + b.size()));
    std::fill(b.begin(), b.end(), std::byte{0x5a});  // the memory is really there
    taken.push_back(b);
  }
  REQUIRE(pool.available() == 0);
}

TEST_CASE("an exhausted pool gives an empty buffer, and a returned buffer is handed out again") {
  PagePool pool(2, 4096);
  auto a = pool.get();
  auto b = pool.get();
  REQUIRE(pool.get().empty());
  pool.put(a);
  REQUIRE(pool.available() == 1);
  REQUIRE(pool.get().data() == a.data());
  pool.put(b);
}

TEST_CASE("buffers smaller than a page still start on a page") {
  PagePool pool(4, 1024);
  REQUIRE(pool.capacity() == 4);
  for (std::size_t i = 0; i < 4; ++i) REQUIRE(reinterpret_cast<std::uintptr_t>(pool.get().data()) % 4096 == 0);
}

TEST_CASE("bad pool sizes are refused with a message") {
  REQUIRE_THROWS_AS(PagePool(0, 4096), Error);
  REQUIRE_THROWS_AS(PagePool(4, 0), Error);
  REQUIRE_THROWS_AS(PagePool(4, 1000), Error);  // not whole sectors
  REQUIRE_THROWS_WITH(PagePool(1, 1 << 20), Catch::Contains("does not fit"));
}

TEST_CASE("the pool's memory holds every buffer it hands out") {
  PagePool pool(10, 3 * 4096);  // 3 buffers of 3 pages, one page left over
  const auto memory = pool.memory();
  REQUIRE(memory.size() == 9 * 4096);
  for (std::size_t i = 0; i < pool.capacity(); ++i) {
    auto b = pool.get();
    REQUIRE(b.data() >= memory.data());
    REQUIRE(b.data() + b.size() <= memory.data() + memory.size());
  }
}
