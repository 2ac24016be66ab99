// Many jobs on one client at once (dm-kcopyd's clients run every job queued):
// they share the page pool, finish in any order, and each gets its own result.
#include <atomic>
#include <catch2/catch.hpp>
#include <mutex>
#include <thread>
#include <vector>

#include "fault_backend.hpp"
#include "kcopy/kcopyd.hpp"

using namespace kcopy;
using kcopy::test::Borrowed;
using kcopy::test::FaultBackend;

namespace {

constexpr std::uint64_t disk_bytes = 4 << 20;

std::vector<std::vector<std::byte>> disks(unsigned n) {
  std::vector<std::vector<std::byte>> d;
  for (unsigned i = 0; i < n; ++i) {
    d.emplace_back(disk_bytes);
    std::mt19937 rng(200 + i);
    for (auto& b : d.back()) b = static_cast<std::byte>(rng());
  }
  return d;
}

bool same(const std::vector<std::byte>& a, std::uint64_t a_sector, const std::vector<std::byte>& b,
          std::uint64_t b_sector, std::uint64_t count) {
  return std::equal(a.begin() + static_cast<long>(sectors_to_bytes(a_sector)),
                    a.begin() + static_cast<long>(sectors_to_bytes(a_sector + count)),
                    b.begin() + static_cast<long>(sectors_to_bytes(b_sector)));
}

// What each job's notify was given, and how often it ran.
struct Outcomes {
  std::mutex mutex;
  std::vector<JobResult> results;
  std::vector<int> calls;
  std::vector<std::size_t> order;  // job numbers in the order they ended
  explicit Outcomes(std::size_t jobs) : results(jobs), calls(jobs) {}
  NotifyFn notify(std::size_t job) {
    return [this, job](const JobResult& r) {
      std::lock_guard lock(mutex);
      results[job] = r;
      ++calls[job];
      order.push_back(job);
    };
  }
};

}  // namespace

TEST_CASE("jobs queued together run at the same time, each notified exactly once with a clean result") {
  const unsigned seed = GENERATE(1u, 2u, 3u);
  FaultBackend b(disks(3), seed);
  const auto originals = b.disks_;
  constexpr std::size_t jobs = 64;
  constexpr std::uint64_t job_sectors = 16;  // 8 KiB: one sub-job each
  Outcomes out(jobs);
  {
    KcopydClient client(std::make_unique<Borrowed>(b), {.pages = 64, .io_size = 64 * 1024, .io_thread = false});
    for (std::size_t j = 0; j < jobs; ++j) {
      const std::uint64_t at = j * 100;  // jobs do not touch each other's ranges
      const std::vector<IoRegion> dests{{1, at + 3, job_sectors}, {2, at, job_sectors}};
      client.copy({0, at, job_sectors}, dests, 0, out.notify(j));
    }
    client.wait();
  }
  REQUIRE(b.max_reads_in_flight > 1);  // more than one job's read at once
  for (std::size_t j = 0; j < jobs; ++j) {
    INFO("job " << j);
    REQUIRE(out.calls[j] == 1);
    REQUIRE_FALSE(out.results[j].read_err);
    REQUIRE(out.results[j].write_err == 0);
    REQUIRE(same(b.disks_[1], j * 100 + 3, originals[0], j * 100, job_sectors));
    REQUIRE(same(b.disks_[2], j * 100, originals[0], j * 100, job_sectors));
  }
  // Nothing between the jobs' ranges was written.
  REQUIRE(same(b.disks_[2], 16, originals[2], 16, 100 - 16));
}

TEST_CASE("a write error in one job sets that job's bit and no other job's") {
  FaultBackend b(disks(3));
  const auto originals = b.disks_;
  constexpr std::size_t jobs = 32, bad_job = 5;
  constexpr std::uint64_t job_sectors = 256;  // 128 KiB: eight sub-jobs each
  // Destination 2 (endpoint 2) fails inside job 5's range only.
  b.faults.push_back({2, IoOp::write, sectors_to_bytes(bad_job * job_sectors + 10),
                      sectors_to_bytes(bad_job * job_sectors + 11), EIO});
  Outcomes out(jobs);
  {
    KcopydClient client(std::make_unique<Borrowed>(b), {.pages = 32, .io_size = 16 * 1024, .io_thread = false});
    for (std::size_t j = 0; j < jobs; ++j) {
      const std::uint64_t at = j * job_sectors;
      const std::vector<IoRegion> dests{{1, at, job_sectors}, {2, at, job_sectors}};
      client.copy({0, at, job_sectors}, dests, 0, out.notify(j));
    }
    client.wait();
  }
  for (std::size_t j = 0; j < jobs; ++j) {
    INFO("job " << j);
    REQUIRE(out.calls[j] == 1);
    REQUIRE(out.results[j].write_err == (j == bad_job ? 2u : 0u));
    REQUIRE(same(b.disks_[1], j * job_sectors, originals[0], j * job_sectors, job_sectors));
    if (j != bad_job) REQUIRE(same(b.disks_[2], j * job_sectors, originals[0], j * job_sectors, job_sectors));
  }
  // Destination 2 fails at sector 10 of job 5: the rest of that write (its first
  // sub-job of 32 sectors) is the failed range, and the destination is dropped.
  REQUIRE(out.results[bad_job].write_errors[1].ranges() ==
          std::vector<ErrorRange>{{bad_job * job_sectors, 32, EIO}});
}

TEST_CASE("a small job queued after a large one ends first: jobs share the pool in turn") {
  FaultBackend b(disks(2));
  const auto originals = b.disks_;
  Outcomes out(2);
  {
    KcopydClient client(std::make_unique<Borrowed>(b), {.pages = 16, .io_size = 16 * 1024, .io_thread = false});
    client.copy({0, 0, 4096}, std::vector<IoRegion>{{1, 0, 4096}}, 0, out.notify(0));  // 2 MiB: 128 sub-jobs
    client.copy({0, 5000, 8}, std::vector<IoRegion>{{1, 5000, 8}}, 0, out.notify(1));  // 4 KiB
    client.wait();
  }
  REQUIRE(out.order == std::vector<std::size_t>{1, 0});
  REQUIRE(out.results[0].write_err == 0);
  REQUIRE(same(b.disks_[1], 0, originals[0], 0, 4096));
  REQUIRE(same(b.disks_[1], 5000, originals[0], 5000, 8));
}

TEST_CASE("jobs from several threads, and from a notify function, all run; destroying the client waits for them") {
  FaultBackend b(disks(2), 9);
  const auto originals = b.disks_;
  constexpr std::size_t threads = 4, per_thread = 50;
  Outcomes out(threads * per_thread + 1);
  std::atomic<bool> chained{false};
  {
    KcopydClient client(std::make_unique<Borrowed>(b), {.pages = 64, .io_size = 16 * 1024});
    std::vector<std::thread> submitters;
    for (std::size_t t = 0; t < threads; ++t)
      submitters.emplace_back([&, t] {
        for (std::size_t i = 0; i < per_thread; ++i) {
          const std::size_t j = t * per_thread + i;
          const std::uint64_t at = j * 16;
          NotifyFn fn = out.notify(j);
          if (j == 0)  // the first job queues one more from its notify function
            fn = [&, inner = out.notify(0)](const JobResult& r) {
              inner(r);
              client.copy({0, 7000, 8}, std::vector<IoRegion>{{1, 7000, 8}}, 0, out.notify(threads * per_thread));
              chained = true;
            };
          client.copy({0, at, 16}, std::vector<IoRegion>{{1, at, 16}}, 0, std::move(fn));
        }
      });
    for (auto& t : submitters) t.join();
  }  // waits for every job, the chained one included
  REQUIRE(chained);
  for (std::size_t j = 0; j <= threads * per_thread; ++j) {
    INFO("job " << j);
    REQUIRE(out.calls[j] == 1);
    REQUIRE(out.results[j].write_err == 0);
  }
  REQUIRE(same(b.disks_[1], 0, originals[0], 0, threads * per_thread * 16));
  REQUIRE(same(b.disks_[1], 7000, originals[0], 7000, 8));
}
