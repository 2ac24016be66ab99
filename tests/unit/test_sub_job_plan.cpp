// Sub-job splitting: every byte of a job is in exactly one sub-job, in order.
#include <catch2/catch.hpp>
#include <random>

#include "kcopy/sub_job_plan.hpp"

using kcopy::Extent;
using kcopy::SubJobPlan;

namespace {

// The sub-jobs tile [0, total) in order, none longer than io_size.
void require_exact_cover(const SubJobPlan& plan, std::uint64_t total, std::uint64_t io_size) {
  std::uint64_t next = 0;
  for (std::uint64_t i = 0; i < plan.count(); ++i) {
    const Extent e = plan.at(i);
    REQUIRE(e.offset == next);
    REQUIRE(e.length > 0);
    REQUIRE(e.length <= io_size);
    next += e.length;
  }
  REQUIRE(next == total);
}

}  // namespace

TEST_CASE("sub-job splitting covers the range exactly once") {
  std::mt19937_64 rng(42);
  for (int i = 0; i < 2000; ++i) {
    const std::uint32_t align = 512u << (rng() % 4);
    const std::uint64_t io_size = align * (1 + rng() % 64);
    const std::uint64_t offset = 512 * (rng() % 100000);
    const std::uint64_t total = 512 * (1 + rng() % 20000);
    const SubJobPlan plan(offset, total, io_size, align);
    require_exact_cover(plan, total, io_size);
  }
}

TEST_CASE("after a short first sub-job, sub-jobs start aligned on the source") {
  const SubJobPlan plan(512, 1 << 20, 64 << 10, 4096);
  REQUIRE(plan.at(0) == Extent{0, 3584});
  for (std::uint64_t i = 1; i < plan.count(); ++i) REQUIRE((512 + plan.at(i).offset) % 4096 == 0);
  require_exact_cover(plan, 1 << 20, 64 << 10);
}

TEST_CASE("an aligned range has no short first sub-job and an exact count") {
  const SubJobPlan plan(1 << 20, 10 << 20, 1 << 20, 4096);
  REQUIRE(plan.count() == 10);
  REQUIRE(plan.at(9) == Extent{9 << 20, 1 << 20});
}

TEST_CASE("a range shorter than the alignment gap is one sub-job") {
  const SubJobPlan plan(512, 1024, 1 << 20, 4096);
  REQUIRE(plan.count() == 1);
  REQUIRE(plan.at(0) == Extent{0, 1024});
}

TEST_CASE("an empty job has no sub-jobs") { REQUIRE(SubJobPlan(0, 0, 4096, 512).count() == 0); }
