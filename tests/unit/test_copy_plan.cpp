// The copy plan: defaults filled in and every rule checked before anything is written.
#include <catch2/catch.hpp>

#include "kcopy/copy_plan.hpp"
#include "kcopy/error.hpp"

using namespace kcopy;

namespace {

constexpr std::uint64_t MiB = 1 << 20;

EndpointInfo block(const std::string& role, std::uint64_t bytes, dev_t rdev) {
  return {role, "/dev/block" + std::string(1, static_cast<char>('a' + rdev)), bytes, false, {true, rdev, 0}};
}
EndpointInfo file(const std::string& role, std::uint64_t bytes, ino_t ino) {
  return {role, "file" + std::string(1, static_cast<char>('a' + ino)), bytes, true, {false, 1, ino}};
}
RegionArg arg(std::optional<std::uint64_t> sector = {}, std::optional<std::uint64_t> count = {}) {
  return {"p", sector, count};
}

}  // namespace

TEST_CASE("with no fields the whole source goes to sector 0 of the destination") {
  const std::vector<EndpointInfo> eps{block("source", 8 * MiB, 1), block("destination 1", 16 * MiB, 2)};
  const CopyPlan plan = plan_copy(std::vector{arg(), arg()}, eps);
  REQUIRE(plan.from.sector == 0);
  REQUIRE(plan.from.count == 16384);
  REQUIRE(plan.dests.size() == 1);
  REQUIRE(plan.dests[0].sector == 0);
  REQUIRE(plan.dests[0].count == 16384);
  REQUIRE(plan.dests[0].endpoint == 1);
}

TEST_CASE("a source SECTOR without COUNT copies up to the end of the source") {
  const std::vector<EndpointInfo> eps{block("source", 8 * MiB, 1), block("destination 1", 8 * MiB, 2)};
  const CopyPlan plan = plan_copy(std::vector{arg(16000), arg(100)}, eps);
  REQUIRE(plan.from.count == 384);
  REQUIRE(plan.dests[0].sector == 100);
}

TEST_CASE("a source file that is not whole sectors ends at its last whole sector") {
  const std::vector<EndpointInfo> eps{file("source", 1000, 1), file("destination 1", 0, 2)};
  REQUIRE(plan_copy(std::vector{arg(), arg()}, eps).from.count == 1);
}

TEST_CASE("ranges past the end of the source or of a block-device destination are refused") {
  const std::vector<EndpointInfo> eps{block("source", 8 * MiB, 1), block("destination 1", 8 * MiB, 2)};
  REQUIRE_THROWS_WITH(plan_copy(std::vector{arg(16000, 1000), arg()}, eps), Catch::Contains("past the end"));
  REQUIRE_THROWS_WITH(plan_copy(std::vector{arg(16384), arg()}, eps), Catch::Contains("nothing to copy"));
  REQUIRE_THROWS_WITH(plan_copy(std::vector{arg(0, 100), arg(16300)}, eps),
                      Catch::Contains("destination 1") && Catch::Contains("past the end"));
  REQUIRE_NOTHROW(plan_copy(std::vector{arg(0, 100), arg(16284)}, eps));
}

TEST_CASE("a regular-file destination may be smaller: it will be grown") {
  const std::vector<EndpointInfo> eps{block("source", 8 * MiB, 1), file("destination 1", 0, 9)};
  REQUIRE(plan_copy(std::vector{arg(), arg(1000)}, eps).dests[0].sector == 1000);
}

TEST_CASE("a destination COUNT must equal the source's") {
  const std::vector<EndpointInfo> eps{block("source", 8 * MiB, 1), block("destination 1", 8 * MiB, 2)};
  REQUIRE_THROWS_WITH(plan_copy(std::vector{arg(0, 100), arg(0, 99)}, eps), Catch::Contains("differs"));
  REQUIRE_NOTHROW(plan_copy(std::vector{arg(0, 100), arg(0, 100)}, eps));
}

TEST_CASE("destinations on the same device may not overlap each other") {
  const std::vector<EndpointInfo> eps{block("source", 8 * MiB, 1), block("destination 1", 8 * MiB, 2),
                                      block("destination 2", 8 * MiB, 2)};
  REQUIRE_THROWS_WITH(plan_copy(std::vector{arg(0, 100), arg(0), arg(99)}, eps),
                      Catch::Contains("destination 2") && Catch::Contains("overlaps"));
  REQUIRE_NOTHROW(plan_copy(std::vector{arg(0, 100), arg(0), arg(100)}, eps));
}

TEST_CASE("a destination may overlap the source on the same device (memmove), but not be the source range") {
  const std::vector<EndpointInfo> eps{block("source", 8 * MiB, 1), block("destination 1", 8 * MiB, 1)};
  REQUIRE_NOTHROW(plan_copy(std::vector{arg(0, 100), arg(50)}, eps));
  REQUIRE_NOTHROW(plan_copy(std::vector{arg(50, 100), arg(0)}, eps));
  REQUIRE_THROWS_WITH(plan_copy(std::vector{arg(0, 100), arg(0)}, eps), Catch::Contains("source range itself"));
}

TEST_CASE("two destinations overlapping the source from opposite sides are refused") {
  const std::vector<EndpointInfo> eps{block("source", 8 * MiB, 1), block("destination 1", 8 * MiB, 1),
                                      block("destination 2", 8 * MiB, 1)};
  REQUIRE_THROWS_WITH(plan_copy(std::vector{arg(100, 100), arg(150), arg(50)}, eps), Catch::Contains("opposite sides"));
  // From the same side: one order serves both.
  REQUIRE_NOTHROW(plan_copy(std::vector{arg(100, 100), arg(150), arg(250)}, eps));
}

TEST_CASE("the same file as source and destination is the same device") {
  const std::vector<EndpointInfo> eps{file("source", 8 * MiB, 7), file("destination 1", 8 * MiB, 7)};
  REQUIRE_THROWS_WITH(plan_copy(std::vector{arg(0, 100), arg(0)}, eps), Catch::Contains("source range itself"));
  const std::vector<EndpointInfo> other{file("source", 8 * MiB, 7), file("destination 1", 8 * MiB, 8)};
  REQUIRE_NOTHROW(plan_copy(std::vector{arg(0, 100), arg(0)}, other));
}

TEST_CASE("a loop device and its backing file overlap where their bytes do") {
  // The loop device's medium is its backing file (ino 5), at offset 1 MiB.
  const EndpointInfo loop{"source", "/dev/loop0", 8 * MiB, false, {{false, 1, 5}, MiB}};
  const EndpointInfo backing = file("destination 1", 16 * MiB, 5);
  const std::vector<EndpointInfo> eps{loop, backing};
  REQUIRE_THROWS_WITH(plan_copy(std::vector{arg(0, 100), arg(2048)}, eps), Catch::Contains("source range itself"));
  REQUIRE_NOTHROW(plan_copy(std::vector{arg(0, 100), arg(2100)}, eps));  // memmove order
  REQUIRE_NOTHROW(plan_copy(std::vector{arg(0, 100), arg(0)}, eps));     // apart
  const std::vector<EndpointInfo> both{loop, backing, file("destination 2", 16 * MiB, 5)};
  REQUIRE_THROWS_WITH(plan_copy(std::vector{arg(0, 100), arg(2100), arg(1990)}, both),
                      Catch::Contains("opposite sides"));
}

TEST_CASE("a zero plan: the first destination's count defaults to its end, the others follow it") {
  const std::vector<EndpointInfo> eps{block("destination 1", 8 * MiB, 1), file("destination 2", 0, 2)};
  const CopyPlan plan = plan_zero(std::vector{arg(16000), arg(8)}, eps);
  REQUIRE(plan.from.count == 384);
  REQUIRE(plan.dests[1].count == 384);
  REQUIRE(plan.dests[1].sector == 8);
  REQUIRE_THROWS_WITH(plan_zero(std::vector{arg(0, 100), arg(0, 99)}, eps), Catch::Contains("differs"));
  REQUIRE_THROWS_WITH(plan_zero(std::vector{arg(0), arg(0)}, std::vector{file("destination 1", 0, 3), eps[0]}),
                      Catch::Contains("give a COUNT"));
  const std::vector<EndpointInfo> same{block("destination 1", 8 * MiB, 1), block("destination 2", 8 * MiB, 1)};
  REQUIRE_THROWS_WITH(plan_zero(std::vector{arg(0, 100), arg(50)}, same), Catch::Contains("overlaps"));
}
