// The page pool: runs of pages, alignment, exhaustion, reuse, fragmentation.
#include <catch2/catch.hpp>
#include <random>
#include <vector>

#include "kcopy/error.hpp"
#include "kcopy/page_pool.hpp"

using kcopy::Error;
using kcopy::PagePool;

namespace {
bool disjoint(std::span<std::byte> a, std::span<std::byte> b) {
  return a.data() + a.size() <= b.data() || b.data() + b.size() <= a.data();
}
}  // namespace

TEST_CASE("the pool hands out as many runs as fit in its pages, each page-aligned, disjoint and inside memory()") {
  PagePool pool(64);  // 256 KiB
  REQUIRE(PagePool::capacity_for(64, 64 * 1024) == 4);
  std::vector<std::span<std::byte>> taken;
  for (int i = 0; i < 4; ++i) {
    auto b = pool.get(64 * 1024);
    REQUIRE(b.size() == 64 * 1024);
    REQUIRE(reinterpret_cast<std::uintptr_t>(b.data()) % 4096 == 0);
    REQUIRE(b.data() >= pool.memory().data());
    REQUIRE(b.data() + b.size() <= pool.memory().data() + pool.memory().size());
    for (auto& t : taken) REQUIRE(disjoint(b, t));
    std::fill(b.begin(), b.end(), std::byte{0x5a});  // the memory is really there
    taken.push_back(b);
  }
  REQUIRE(pool.free_pages() == 0);
  REQUIRE(pool.get(512).empty());
}

TEST_CASE("a run takes the pages its bytes need: small sub-jobs leave room for more") {
  PagePool pool(16);
  auto a = pool.get(512);       // one page
  auto b = pool.get(4096 + 1);  // two pages
  REQUIRE(a.size() == 512);
  REQUIRE(b.size() == 4097);
  REQUIRE(pool.free_pages() == 13);
  REQUIRE(disjoint(a, b));
  REQUIRE(pool.get(13 * 4096).size() == 13 * 4096);
  REQUIRE(pool.get(512).empty());
}

TEST_CASE("a returned run is handed out again, and a run too long for any free gap waits") {
  PagePool pool(4);
  auto a = pool.get(4096);
  auto b = pool.get(4096);
  auto c = pool.get(4096);
  auto d = pool.get(4096);
  pool.put(a);
  pool.put(c);
  REQUIRE(pool.free_pages() == 2);
  REQUIRE(pool.get(2 * 4096).empty());  // two free pages, but not side by side
  pool.put(b);
  const auto abc = pool.get(3 * 4096);
  REQUIRE(abc.data() == a.data());
  pool.put(abc);
  pool.put(d);
  REQUIRE(pool.get(4 * 4096).size() == 4 * 4096);
}

TEST_CASE("runs of random sizes taken and returned in random order never overlap, and all pages come back") {
  PagePool pool(300);  // more than 4 words of bitmap, not a multiple of 64
  std::mt19937 rng(7);
  std::vector<std::span<std::byte>> taken;
  for (int step = 0; step < 5000; ++step) {
    if (!taken.empty() && rng() % 2) {
      const std::size_t i = rng() % taken.size();
      pool.put(taken[i]);
      taken.erase(taken.begin() + static_cast<std::ptrdiff_t>(i));
      continue;
    }
    auto b = pool.get(512 * (1 + rng() % 200));
    if (b.empty()) continue;
    for (auto& t : taken) REQUIRE(disjoint(b, t));
    taken.push_back(b);
  }
  for (auto& t : taken) pool.put(t);
  REQUIRE(pool.free_pages() == 300);
  REQUIRE(pool.get(300 * 4096).size() == 300 * 4096);
}

TEST_CASE("bad pool sizes are refused with a message") {
  REQUIRE_THROWS_AS(PagePool(0), Error);
  REQUIRE_THROWS_WITH(PagePool(UINT64_MAX / 1024), Catch::Contains("too large"));
}
