// The lists of failed ranges that a user reads on stderr.
#include <catch2/catch.hpp>

#include "kcopy/error_ranges.hpp"

using kcopy::ErrorRange;
using kcopy::ErrorRanges;

TEST_CASE("failed ranges arriving out of order are listed sorted, adjacent ones merged") {
  ErrorRanges r(16);
  r.add(100, 2, 5);
  r.add(10, 1, 5);
  r.add(102, 3, 5);  // merges with 100+2 as it arrives
  r.add(11, 1, 5);   // merges with 10+1
  r.add(50, 1, 5);
  r.add(9, 1, 5);  // adjacent to 10, merged when sorted
  r.sort_and_merge();
  REQUIRE(r.ranges() == std::vector<ErrorRange>{{9, 3, 5}, {50, 1, 5}, {100, 5, 5}});
  REQUIRE(r.not_listed() == 0);
}

TEST_CASE("adjacent ranges with different errors stay apart") {
  ErrorRanges r(4);
  r.add(0, 1, 5);
  r.add(1, 1, 28);
  r.sort_and_merge();
  REQUIRE(r.ranges().size() == 2);
}

TEST_CASE("past its capacity the list only counts, and never allocates") {
  ErrorRanges r(2);
  const auto* before = r.ranges().data();
  r.add(0, 1, 5);
  r.add(10, 1, 5);
  r.add(20, 1, 5);
  r.add(21, 1, 5);  // adjacent to a range that did not fit: counted too
  REQUIRE(r.ranges().size() == 2);
  REQUIRE(r.not_listed() == 2);
  REQUIRE(r.ranges().data() == before);
  REQUIRE_FALSE(r.empty());
}
