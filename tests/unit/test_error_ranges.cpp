// The lists of failed ranges that a user reads on stderr.
#include <algorithm>
#include <cerrno>
#include <catch2/catch.hpp>
#include <numeric>
#include <random>

#include "kcopy/error_ranges.hpp"

using kcopy::ErrorRange;
using kcopy::ErrorRanges;

TEST_CASE("failed ranges arriving out of order are listed sorted, adjacent ones merged") {
  ErrorRanges r(16);
  r.add(100, 2, 5);
  r.add(10, 1, 5);
  r.add(102, 3, 5);
  r.add(11, 1, 5);
  r.add(50, 1, 5);
  r.add(9, 1, 5);
  REQUIRE(r.ranges() == std::vector<ErrorRange>{{9, 3, 5}, {50, 1, 5}, {100, 5, 5}});
  REQUIRE(r.overflow_sectors() == 0);
}

TEST_CASE("adjacent ranges with different errors stay apart") {
  ErrorRanges r(4);
  r.add(0, 1, 5);
  r.add(1, 1, 28);
  REQUIRE(r.ranges().size() == 2);
}

TEST_CASE("a dead server's area, failed with ESHUTDOWN, ENOTCONN and ECONNRESET in turn, is one range with one cause") {
  ErrorRanges r(4);
  const int errors[] = {ESHUTDOWN, ENOTCONN, ECONNRESET, EPIPE, ECONNABORTED};
  for (std::uint64_t i = 0; i < 9; ++i) r.add(8192 + i * 128, 128, errors[i % 5]);
  REQUIRE(r.ranges() == std::vector<ErrorRange>{{8192, 9 * 128, kcopy::connection_lost}});
}

TEST_CASE("one bad area recorded block by block from interleaved scans is one range, even in a short list") {
  // Two scans of neighbouring sub-jobs record their blocks alternately (issue 7, row 3:
  // a 300-sector bad area at 900 was reported as 174 sectors and "126 more").
  ErrorRanges r(4);
  for (std::uint64_t i = 0; i < 150; ++i) {
    r.add(900 + i, 1, 5);
    r.add(1050 + i, 1, 5);
  }
  REQUIRE(r.ranges() == std::vector<ErrorRange>{{900, 300, 5}});
  REQUIRE(r.overflow_sectors() == 0);
}

TEST_CASE("a bad area whose blocks arrive in any order is exactly one range") {
  std::vector<std::uint64_t> blocks(5000);
  std::iota(blocks.begin(), blocks.end(), 10000);
  std::shuffle(blocks.begin(), blocks.end(), std::mt19937(7));
  ErrorRanges r(4096);  // room for the fragments that exist at once, not for every block
  for (auto b : blocks) r.add(b, 1, 5);
  REQUIRE(r.ranges() == std::vector<ErrorRange>{{10000, 5000, 5}});
  REQUIRE(r.overflow_from() == ErrorRanges::no_overflow);
}

TEST_CASE("past its capacity the list keeps the lowest ranges exactly, counts the rest, and never allocates") {
  ErrorRanges r(2);
  const auto* before = r.ranges().data();
  r.add(20, 1, 5);
  r.add(10, 1, 5);
  r.add(30, 2, 5);  // no room: past the list
  r.add(0, 1, 5);   // lower than the list's last: that one (20) leaves the list
  REQUIRE(r.ranges() == std::vector<ErrorRange>{{0, 1, 5}, {10, 1, 5}});
  REQUIRE(r.overflow_from() == 20);
  REQUIRE(r.overflow_sectors() == 3);
  r.add(11, 1, 5);  // still merges inside the list
  r.add(25, 1, 5);  // past overflow_from: counted
  REQUIRE(r.ranges() == std::vector<ErrorRange>{{0, 1, 5}, {10, 2, 5}});
  REQUIRE(r.overflow_sectors() == 4);
  REQUIRE(r.ranges().data() == before);
  REQUIRE_FALSE(r.empty());
}

TEST_CASE("an empty list is empty") {
  ErrorRanges r(8);
  REQUIRE(r.empty());
  REQUIRE(r.overflow_from() == ErrorRanges::no_overflow);
}
