// The engine (KcopydClient) against a fault-injecting backend: what a user of the
// library sees in read_err, write_err and the destination bytes.
#include <catch2/catch.hpp>
#include <cstring>
#include <future>
#include <map>
#include <numeric>

#include "fault_backend.hpp"
#include "kcopy/error.hpp"
#include "kcopy/kcopyd.hpp"

using namespace kcopy;
using kcopy::test::Borrowed;
using kcopy::test::Fault;
using kcopy::test::FaultBackend;

namespace {

constexpr std::uint64_t disk_bytes = 4 << 20;  // 4 MiB per endpoint

std::vector<std::byte> pattern(std::size_t n, unsigned seed) {
  std::vector<std::byte> v(n);
  std::mt19937 rng(seed);
  for (auto& b : v) b = static_cast<std::byte>(rng());
  return v;
}

// Endpoint 0 is the source, 1.. destinations, each filled with its own pattern.
std::vector<std::vector<std::byte>> disks(unsigned n) {
  std::vector<std::vector<std::byte>> d;
  for (unsigned i = 0; i < n; ++i) d.push_back(pattern(disk_bytes, 100 + i));
  return d;
}

// Runs one copy to completion and returns what notify was given.
JobResult run_copy(FaultBackend& backend, const IoRegion& from, std::vector<IoRegion> dests, unsigned flags = 0,
                   ClientConfig config = {.pages = 16, .io_size = 16 * 1024}) {
  std::promise<JobResult> done;
  {
    KcopydClient client(std::make_unique<Borrowed>(backend), config);
    client.copy(from, dests, flags, [&](const JobResult& r) { done.set_value(r); });
  }  // the destructor waits for the job
  return done.get_future().get();
}

bool same_bytes(const FaultBackend& b, unsigned ep_a, std::uint64_t sector_a, const std::vector<std::byte>& other,
                std::uint64_t sector_b, std::uint64_t count) {
  return std::equal(b.disks_[ep_a].begin() + static_cast<long>(sectors_to_bytes(sector_a)),
                    b.disks_[ep_a].begin() + static_cast<long>(sectors_to_bytes(sector_a + count)),
                    other.begin() + static_cast<long>(sectors_to_bytes(sector_b)));
}

// The destination holds the source range at its sector, and nothing else changed.
void require_exact_copy(const FaultBackend& b, const std::vector<std::byte>& source, const IoRegion& from,
                        const IoRegion& dest, const std::vector<std::byte>& original_dest) {
  REQUIRE(same_bytes(b, dest.endpoint, dest.sector, source, from.sector, from.count));
  REQUIRE(same_bytes(b, dest.endpoint, 0, original_dest, 0, dest.sector));
  const std::uint64_t end = dest.sector + dest.count;
  REQUIRE(same_bytes(b, dest.endpoint, end, original_dest, end, bytes_to_sectors(disk_bytes) - end));
}

}  // namespace

TEST_CASE("a copy to three destinations at different offsets is byte-exact, even with shuffled completions") {
  auto seed = GENERATE(1u, 2u, 3u);
  FaultBackend b(disks(4), seed);
  const auto originals = b.disks_;
  const IoRegion from{0, 100, 3000};
  const std::vector<IoRegion> dests{{1, 0, 3000}, {2, 7, 3000}, {3, 5000, 3000}};
  const JobResult r = run_copy(b, from, dests);
  REQUIRE_FALSE(r.read_err);
  REQUIRE(r.write_err == 0);
  for (const auto& d : dests) {
    require_exact_copy(b, originals[0], from, d, originals[d.endpoint]);
    REQUIRE(r.sectors_written[d.endpoint - 1] == 3000);
  }
}

TEST_CASE("every destination sector is written exactly once") {
  FaultBackend b(disks(3));
  const IoRegion from{0, 1, 4001};
  run_copy(b, from, {{1, 3, 4001}, {2, 0, 4001}});
  for (unsigned ep : {1u, 2u}) {
    const auto& w = b.written(ep);
    const std::uint64_t start = ep == 1 ? sectors_to_bytes(3) : 0;
    REQUIRE(std::all_of(w.begin() + static_cast<long>(start),
                        w.begin() + static_cast<long>(start + sectors_to_bytes(4001)),
                        [](unsigned char c) { return c == 1; }));
    REQUIRE(std::accumulate(w.begin(), w.end(), 0ul) == sectors_to_bytes(4001));
  }
}

TEST_CASE("short transfers are continued where they stopped") {
  FaultBackend b(disks(2));
  b.short_cap = 4096 + 512;  // every transfer stops short, at a sector boundary
  const auto originals = b.disks_;
  const IoRegion from{0, 0, 2048};
  const JobResult r = run_copy(b, from, {{1, 16, 2048}});
  REQUIRE_FALSE(r.read_err);
  REQUIRE(r.write_err == 0);
  require_exact_copy(b, originals[0], from, {1, 16, 2048}, originals[1]);
}

TEST_CASE("a read error stops the job with read_err and names the failed sectors") {
  FaultBackend b(disks(2));
  // 16 KiB sub-jobs, 4 buffers: the fault sits in sub-job 20 of 128.
  b.faults.push_back({0, IoOp::read, sectors_to_bytes(20 * 32 + 5), sectors_to_bytes(20 * 32 + 6), EIO});
  const JobResult r =
      run_copy(b, {0, 0, 4096}, {{1, 0, 4096}}, 0, {.pages = 16, .io_size = 16 * 1024});  // 4 sub-jobs in flight
  REQUIRE(r.read_err);
  REQUIRE(r.write_err == 0);
  REQUIRE(r.read_errors.ranges().size() == 1);
  REQUIRE(r.read_errors.ranges()[0] == ErrorRange{20 * 32 + 5, 1, EIO});  // exactly the bad sector
  // No new sub-job after the failure: at most the pool's 4 buffers beyond it were in flight.
  REQUIRE(r.sectors_written[0] <= 24 * 32);
  REQUIRE(r.sectors_written[0] >= 20 * 32 - 4 * 32);
}

TEST_CASE("a read that fails only as part of a larger request is not an error (a merged neighbour)") {
  FaultBackend b(disks(2));
  const auto originals = b.disks_;
  b.faults.push_back({0, IoOp::read, sectors_to_bytes(100), sectors_to_bytes(101), EIO, 8192});
  const JobResult r = run_copy(b, {0, 0, 1024}, {{1, 0, 1024}});
  REQUIRE_FALSE(r.read_err);
  REQUIRE(r.read_errors.empty());
  require_exact_copy(b, originals[0], {0, 0, 1024}, {1, 0, 1024}, originals[1]);
}

TEST_CASE("finding one bad block in a large sub-job takes a few dozen requests, not one per block") {
  FaultBackend b(disks(2));
  b.faults.push_back({0, IoOp::read, sectors_to_bytes(1234), sectors_to_bytes(1235), EIO});
  const JobResult r = run_copy(b, {0, 0, 2048}, {{1, 0, 2048}}, copy_ignore_errors, {.pages = 256, .io_size = 1 << 20});
  REQUIRE(r.read_errors.ranges() == std::vector<ErrorRange>{{1234, 1, EIO}});
  REQUIRE(b.reads_submitted < 64);  // 2048 blocks in the sub-job
}

TEST_CASE("a write error on destination 2 of 3 sets exactly bit 1, and 1 and 3 get the whole copy") {
  FaultBackend b(disks(4));
  const auto originals = b.disks_;
  b.faults.push_back({2, IoOp::write, sectors_to_bytes(1000), sectors_to_bytes(1001), ENOSPC});
  const IoRegion from{0, 0, 4096};
  const std::vector<IoRegion> dests{{1, 0, 4096}, {2, 0, 4096}, {3, 0, 4096}};
  const JobResult r = run_copy(b, from, dests);
  REQUIRE_FALSE(r.read_err);
  REQUIRE(r.write_err == 0b010);
  REQUIRE(r.write_errors[1].ranges().size() == 1);
  const ErrorRange e = r.write_errors[1].ranges()[0];
  REQUIRE(e.error == ENOSPC);
  REQUIRE(e.sector <= 1000);
  REQUIRE(e.sector + e.count > 1000);
  REQUIRE(r.write_errors[0].empty());
  REQUIRE(r.write_errors[2].empty());
  require_exact_copy(b, originals[0], from, dests[0], originals[1]);
  require_exact_copy(b, originals[0], from, dests[2], originals[3]);
  // The failed destination is dropped: no write is started on it afterwards
  // (a few may already have been in flight in the same batch).
  REQUIRE(b.writes_after_failure(2) <= 4);
  REQUIRE(r.sectors_written[1] < 4096);
}

TEST_CASE("the copy stops only when every destination has failed") {
  FaultBackend b(disks(3));
  b.faults.push_back({1, IoOp::write, 0, disk_bytes, EIO});
  b.faults.push_back({2, IoOp::write, 0, disk_bytes, EIO});
  const JobResult r = run_copy(b, {0, 0, 8192}, {{1, 0, 8192}, {2, 0, 8192}});
  REQUIRE(r.write_err == 0b11);
  REQUIRE_FALSE(r.read_err);
  // Stopped early: no more writes than the first pool's worth.
  REQUIRE(b.write_submit_sizes.size() <= 8);
}

TEST_CASE("one read is fanned out to every destination in a single submit") {
  FaultBackend b(disks(4));
  run_copy(b, {0, 0, 1024}, {{1, 0, 1024}, {2, 0, 1024}, {3, 0, 1024}});
  REQUIRE(!b.write_submit_sizes.empty());
  // A submit holds the writes of whole sub-jobs (of one or more: those started since the last reap).
  for (std::size_t n : b.write_submit_sizes) REQUIRE(n % 3 == 0);
}

TEST_CASE("reads in flight never exceed the page pool's buffers") {
  FaultBackend b(disks(2));
  run_copy(b, {0, 0, 8000}, {{1, 0, 8000}}, 0, {.pages = 12, .io_size = 16 * 1024});  // 3 buffers
  REQUIRE(b.max_reads_in_flight <= 3);
  REQUIRE(b.max_reads_in_flight >= 2);  // and the pipeline is used
}

TEST_CASE("every destination is flushed, and a failed flush marks that destination") {
  FaultBackend b(disks(3));
  b.flush_error_on = 2;
  const JobResult r = run_copy(b, {0, 0, 64}, {{1, 0, 64}, {2, 0, 64}});
  REQUIRE(r.write_err == 0b10);
  REQUIRE(r.flush_error[1] == EIO);
  REQUIRE(b.flushed == std::vector<unsigned>{1, 2});
}

TEST_CASE("copy_no_flush skips the flush") {
  FaultBackend b(disks(2));
  const JobResult r = run_copy(b, {0, 0, 64}, {{1, 0, 64}}, copy_no_flush);
  REQUIRE(r.write_err == 0);
  REQUIRE(b.flushed.empty());
}

TEST_CASE("with copy_ignore_errors only the unreadable blocks are lost: written as zeroes and listed, merged") {
  FaultBackend b(disks(2));
  const auto originals = b.disks_;
  b.faults.push_back({0, IoOp::read, sectors_to_bytes(64), sectors_to_bytes(65), EIO});    // 1 sector
  b.faults.push_back({0, IoOp::read, sectors_to_bytes(100), sectors_to_bytes(103), EIO});  // 3 adjacent
  b.faults.push_back({0, IoOp::read, sectors_to_bytes(120), sectors_to_bytes(140), EIO});  // across a sub-job edge
  const JobResult r = run_copy(b, {0, 0, 256}, {{1, 0, 256}}, copy_ignore_errors);
  REQUIRE(r.read_err);
  REQUIRE(r.write_err == 0);
  REQUIRE(r.read_errors.ranges() == std::vector<ErrorRange>{{64, 1, EIO}, {100, 3, EIO}, {120, 20, EIO}});
  const std::vector<std::byte> zeroes(sectors_to_bytes(20));
  REQUIRE(same_bytes(b, 1, 0, originals[0], 0, 64));
  REQUIRE(same_bytes(b, 1, 64, zeroes, 0, 1));
  REQUIRE(same_bytes(b, 1, 65, originals[0], 65, 35));
  REQUIRE(same_bytes(b, 1, 100, zeroes, 0, 3));
  REQUIRE(same_bytes(b, 1, 103, originals[0], 103, 17));
  REQUIRE(same_bytes(b, 1, 120, zeroes, 0, 20));
  REQUIRE(same_bytes(b, 1, 140, originals[0], 140, 116));
}

TEST_CASE("with copy_ignore_errors a failing destination keeps being written past its bad blocks") {
  FaultBackend b(disks(4));
  const auto originals = b.disks_;
  b.faults.push_back({2, IoOp::write, sectors_to_bytes(40), sectors_to_bytes(42), EIO});
  b.faults.push_back({2, IoOp::write, sectors_to_bytes(200), sectors_to_bytes(201), EIO});
  const IoRegion from{0, 0, 512};
  const std::vector<IoRegion> dests{{1, 0, 512}, {2, 0, 512}, {3, 0, 512}};
  const JobResult r = run_copy(b, from, dests, copy_ignore_errors);
  REQUIRE_FALSE(r.read_err);
  REQUIRE(r.write_err == 0b010);
  REQUIRE(r.write_errors[1].ranges() == std::vector<ErrorRange>{{40, 2, EIO}, {200, 1, EIO}});
  require_exact_copy(b, originals[0], from, dests[0], originals[1]);
  require_exact_copy(b, originals[0], from, dests[2], originals[3]);
  REQUIRE(same_bytes(b, 2, 0, originals[0], 0, 40));
  REQUIRE(same_bytes(b, 2, 40, originals[2], 40, 2));  // the bad blocks keep what they had
  REQUIRE(same_bytes(b, 2, 42, originals[0], 42, 158));
  REQUIRE(same_bytes(b, 2, 201, originals[0], 201, 311));
  REQUIRE(r.sectors_written[1] == 509);
}

TEST_CASE("an overlapping copy on one device gives what memmove gives, in both directions") {
  const auto [src, dst, count] = GENERATE(table<std::uint64_t, std::uint64_t, std::uint64_t>({
      {0, 5, 3000},       // above, by less than a sub-job
      {0, 32, 3000},      // above, by exactly one sub-job (16 KiB = 32 sectors)
      {0, 1000, 3000},    // above, by many sub-jobs
      {100, 99, 3000},    // below, by one sector
      {1000, 968, 3000},  // below, by exactly one sub-job
      {3000, 7, 3000},    // below, by many
  }));
  const unsigned seed = GENERATE(1u, 2u, 3u);
  FaultBackend b(disks(1), seed);
  std::vector<std::byte> expected = b.disks_[0];
  std::memmove(expected.data() + sectors_to_bytes(dst), expected.data() + sectors_to_bytes(src),
               sectors_to_bytes(count));
  const JobResult r = run_copy(b, {0, src, count}, {{0, dst, count}});
  REQUIRE(r.write_err == 0);
  const auto diff = std::mismatch(expected.begin(), expected.end(), b.disks_[0].begin());
  INFO("src " << src << " dst " << dst << " count " << count << " seed " << seed);
  REQUIRE(diff.first - expected.begin() == static_cast<long>(expected.size()));  // the first differing byte
}

TEST_CASE("the engine refuses two destinations overlapping the source from opposite sides") {
  FaultBackend b(disks(1));
  KcopydClient client(std::make_unique<Borrowed>(b), {.pages = 4, .io_size = 4096});
  REQUIRE_THROWS_AS(client.copy({0, 100, 50}, std::vector<IoRegion>{{0, 120, 50}, {0, 60, 50}}, 0, {}), Error);
}

TEST_CASE("stop() ends the job early with stopped set, after the I/O in flight") {
  FaultBackend b(disks(2));
  std::promise<JobResult> done;
  {
    KcopydClient client(std::make_unique<Borrowed>(b), {.pages = 4, .io_size = 4096});
    client.stop();
    client.copy({0, 0, 8192}, std::vector<IoRegion>{{1, 0, 8192}}, 0, [&](const JobResult& r) { done.set_value(r); });
  }
  const JobResult r = done.get_future().get();
  REQUIRE(r.stopped);
  REQUIRE(r.sectors_written[0] < 8192);
  REQUIRE(b.flushed == std::vector<unsigned>{1});  // what was written is still flushed
}

TEST_CASE("without an I/O thread a job runs on the caller's thread, in wait()") {
  FaultBackend b(disks(2));
  const auto originals = b.disks_;
  bool notified = false;
  KcopydClient client(std::make_unique<Borrowed>(b), {.pages = 4, .io_size = 4096, .io_thread = false});
  client.copy({0, 0, 64}, std::vector<IoRegion>{{1, 8, 64}}, 0, [&](const JobResult& r) {
    REQUIRE(r.write_err == 0);
    notified = true;
  });
  REQUIRE_FALSE(notified);
  client.wait();
  REQUIRE(notified);
  require_exact_copy(b, originals[0], {0, 0, 64}, {1, 8, 64}, originals[1]);
}

TEST_CASE("a destination count that differs from the source's is refused") {
  FaultBackend b(disks(2));
  KcopydClient client(std::make_unique<Borrowed>(b), {.pages = 4, .io_size = 4096});
  REQUIRE_THROWS_AS(client.copy({0, 0, 10}, std::vector<IoRegion>{{1, 0, 11}}, 0, {}), Error);
}

TEST_CASE("a scan whose pieces complete short writes every good byte exactly once") {
  // Issue 9: a short scan piece advanced the scan only by its remainder, and the
  // next piece wrote again what the short one had written.
  FaultBackend b(disks(2));
  b.short_cap = 4608;
  b.faults.push_back({1, IoOp::write, sectors_to_bytes(1000), sectors_to_bytes(1001), EIO});
  const IoRegion from{0, 0, 4096};
  const JobResult r = run_copy(b, from, {{1, 0, 4096}}, copy_ignore_errors, {.pages = 512, .io_size = 1 << 20});
  REQUIRE(r.write_errors[0].ranges() == std::vector<ErrorRange>{{1000, 1, EIO}});
  const auto& w = b.written(1);
  std::size_t twice = 0, never = 0;
  for (std::size_t i = 0; i < sectors_to_bytes(4096); ++i) {
    const bool bad = i >= sectors_to_bytes(1000) && i < sectors_to_bytes(1001);
    twice += w[i] > 1;
    never += !bad && w[i] == 0;
  }
  REQUIRE(twice == 0);
  REQUIRE(never == 0);
  REQUIRE(r.sectors_written[0] == 4095);
}

namespace {

// Lends a backend and records, per endpoint, the offset of every write submitted.
class RecordingWrites final : public IoBackend {
 public:
  explicit RecordingWrites(IoBackend& b) : b_(b) {}
  void submit(std::span<IoRequest* const> r) override {
    for (const IoRequest* req : r)
      if (req->op == IoOp::write) offsets[req->endpoint].push_back(req->offset);
    b_.submit(r);
  }
  std::size_t reap(std::span<IoRequest*> out, std::size_t min) override { return b_.reap(out, min); }
  int flush(unsigned e) override { return b_.flush(e); }
  std::uint32_t alignment(unsigned e) const override { return b_.alignment(e); }
  std::map<unsigned, std::vector<std::uint64_t>> offsets;

 private:
  IoBackend& b_;
};

}  // namespace

TEST_CASE("with copy_write_seq each destination's writes are issued in ascending order, still pipelined") {
  const unsigned seed = GENERATE(1u, 2u, 3u, 4u);
  FaultBackend b(disks(3), seed);
  const auto originals = b.disks_;
  RecordingWrites rec(b);
  std::promise<JobResult> done;
  {
    KcopydClient client(std::make_unique<Borrowed>(rec), {.pages = 32, .io_size = 16 * 1024});
    client.copy({0, 0, 4000}, std::vector<IoRegion>{{1, 0, 4000}, {2, 33, 4000}}, copy_write_seq,
                [&](const JobResult& r) { done.set_value(r); });
  }
  const JobResult r = done.get_future().get();
  REQUIRE(r.write_err == 0);
  for (unsigned ep : {1u, 2u}) {
    const auto& o = rec.offsets[ep];
    REQUIRE(o.size() == 125);  // 4000 sectors in 16 KiB sub-jobs
    REQUIRE(std::is_sorted(o.begin(), o.end()));
    REQUIRE(std::adjacent_find(o.begin(), o.end()) == o.end());
  }
  require_exact_copy(b, originals[0], {0, 0, 4000}, {1, 0, 4000}, originals[1]);
  require_exact_copy(b, originals[0], {0, 0, 4000}, {2, 33, 4000}, originals[2]);
  REQUIRE(b.max_reads_in_flight >= 2);  // reads still run ahead of the writes
}

TEST_CASE("without copy_write_seq writes are issued out of order when completions are shuffled") {
  // The check above can fail: the same copy without the flag writes out of order.
  FaultBackend b(disks(2), 3);
  RecordingWrites rec(b);
  {
    KcopydClient client(std::make_unique<Borrowed>(rec), {.pages = 32, .io_size = 16 * 1024});
    client.copy({0, 0, 4000}, std::vector<IoRegion>{{1, 0, 4000}}, 0, {});
  }
  REQUIRE_FALSE(std::is_sorted(rec.offsets[1].begin(), rec.offsets[1].end()));
}

TEST_CASE("copy_write_seq clears copy_ignore_errors, as in dm-kcopyd: a write error drops the destination") {
  FaultBackend b(disks(3));
  b.faults.push_back({2, IoOp::write, sectors_to_bytes(1000), sectors_to_bytes(1001), EIO});
  const JobResult r = run_copy(b, {0, 0, 4096}, {{1, 0, 4096}, {2, 0, 4096}}, copy_write_seq | copy_ignore_errors);
  REQUIRE(r.write_err == 0b10);
  REQUIRE(r.sectors_written[0] == 4096);
  REQUIRE(r.sectors_written[1] < 4096);
  REQUIRE(b.writes_after_failure(2) <= 8);
}

TEST_CASE("copy_write_seq refuses a destination above the source on the same device (memmove needs descending)") {
  FaultBackend b(disks(1));
  KcopydClient client(std::make_unique<Borrowed>(b), {.pages = 4, .io_size = 4096});
  REQUIRE_THROWS_AS(client.copy({0, 0, 100}, std::vector<IoRegion>{{0, 50, 100}}, copy_write_seq, {}), Error);
  REQUIRE_NOTHROW(client.copy({0, 50, 100}, std::vector<IoRegion>{{0, 0, 100}}, copy_write_seq, {}));
}

namespace {

// Lends a FaultBackend whose destination `endpoint` loses the writes to bytes
// [begin, end): they complete with success, and the old bytes stay.
class LosingWrites final : public IoBackend {
 public:
  LosingWrites(FaultBackend& b, unsigned endpoint, std::uint64_t begin, std::uint64_t end)
      : b_(b), endpoint_(endpoint), begin_(begin), end_(end), old_(b.disks_[endpoint]) {}
  void submit(std::span<IoRequest* const> r) override { b_.submit(r); }
  std::size_t reap(std::span<IoRequest*> out, std::size_t min) override {
    const std::size_t n = b_.reap(out, min);
    for (std::size_t i = 0; i < n; ++i) {
      const IoRequest& r = *out[i];
      if (r.op != IoOp::write || r.endpoint != endpoint_ || r.result <= 0) continue;
      const std::uint64_t a = std::max(r.offset, begin_), z = std::min(r.offset + r.buffer.size(), end_);
      if (a < z) std::copy(old_.begin() + a, old_.begin() + z, b_.disks_[endpoint_].begin() + a);
    }
    return n;
  }
  int flush(unsigned e) override { return b_.flush(e); }
  std::uint32_t alignment(unsigned e) const override { return b_.alignment(e); }

 private:
  FaultBackend& b_;
  unsigned endpoint_;
  std::uint64_t begin_, end_;
  std::vector<std::byte> old_;
};

JobResult run_verified_copy(IoBackend& backend, const IoRegion& from, std::vector<IoRegion> dests,
                            unsigned flags = copy_verify) {
  std::promise<JobResult> done;
  {
    KcopydClient client(std::make_unique<Borrowed>(backend), {.pages = 16, .io_size = 16 * 1024});
    client.copy(from, dests, flags, [&](const JobResult& r) { done.set_value(r); });
  }
  return done.get_future().get();
}

}  // namespace

TEST_CASE("copy_verify: a destination that loses writes gets its bit and exactly the lost sectors listed") {
  const unsigned seed = GENERATE(1u, 2u);
  FaultBackend b(disks(3), seed);
  const auto originals = b.disks_;
  LosingWrites losing(b, 2, sectors_to_bytes(1000), sectors_to_bytes(1037));  // destination 2 of 2
  const JobResult r = run_verified_copy(losing, {0, 0, 4096}, {{1, 0, 4096}, {2, 0, 4096}});
  REQUIRE_FALSE(r.read_err);
  REQUIRE(r.write_err == 0b10);
  REQUIRE(r.verify_errors[0].empty());
  REQUIRE(r.verify_errors[1].ranges() == std::vector<ErrorRange>{{1000, 37, verify_mismatch}});
  require_exact_copy(b, originals[0], {0, 0, 4096}, {1, 0, 4096}, originals[1]);
}

TEST_CASE("copy_verify: an exact copy verifies clean, and each destination is read back once") {
  FaultBackend b(disks(3));
  const std::size_t reads_without = [&] {
    FaultBackend plain(disks(3));
    run_copy(plain, {0, 0, 4096}, {{1, 0, 4096}, {2, 8, 4096}});
    return plain.reads_submitted;
  }();
  const JobResult r = run_verified_copy(b, {0, 0, 4096}, {{1, 0, 4096}, {2, 8, 4096}});
  REQUIRE(r.write_err == 0);
  REQUIRE(r.verify_errors[0].empty());
  REQUIRE(r.verify_errors[1].empty());
  REQUIRE(b.reads_submitted == 3 * reads_without);  // the source once, each destination once
}

TEST_CASE("copy_verify: a read-back that fails names the failed sectors as that destination's verify errors") {
  FaultBackend b(disks(2));
  b.faults.push_back({1, IoOp::read, sectors_to_bytes(300), sectors_to_bytes(302), EIO});
  const JobResult r = run_verified_copy(b, {0, 0, 1024}, {{1, 0, 1024}});
  REQUIRE(r.write_err == 0b1);
  REQUIRE(r.verify_errors[0].ranges() == std::vector<ErrorRange>{{300, 2, EIO}});
}

TEST_CASE("zero(): every destination region reads as zeroes, nothing around it changes") {
  FaultBackend b(disks(3));
  const auto originals = b.disks_;
  std::promise<JobResult> done;
  {
    KcopydClient client(std::make_unique<Borrowed>(b), {.pages = 16, .io_size = 16 * 1024});
    client.zero(std::vector<IoRegion>{{1, 3, 3000}, {2, 0, 3000}}, 0, [&](const JobResult& r) { done.set_value(r); });
  }
  const JobResult r = done.get_future().get();
  REQUIRE_FALSE(r.read_err);
  REQUIRE(r.write_err == 0);
  REQUIRE(r.sectors_written[0] == 3000);
  REQUIRE(r.sectors_written[1] == 3000);
  const std::vector<std::byte> zeroes(sectors_to_bytes(3000));
  REQUIRE(same_bytes(b, 1, 3, zeroes, 0, 3000));
  REQUIRE(same_bytes(b, 2, 0, zeroes, 0, 3000));
  REQUIRE(same_bytes(b, 1, 0, originals[1], 0, 3));
  REQUIRE(same_bytes(b, 1, 3003, originals[1], 3003, 100));
  REQUIRE(b.zeroed_bytes(1) == sectors_to_bytes(3000));
  REQUIRE(b.reads_submitted == 0);
  REQUIRE(b.nonzero_zeroings == 0);
}

TEST_CASE("copy_sparse: zero runs of the source are punched, data written, and the result is exact") {
  std::vector<std::vector<std::byte>> d = disks(3);
  // Source: zeroes but for data at sectors 100-107 and 2000-2999.
  std::vector<std::byte> src(disk_bytes);
  std::copy_n(d[0].begin(), sectors_to_bytes(8), src.begin() + sectors_to_bytes(100));
  std::copy_n(d[0].begin(), sectors_to_bytes(1000), src.begin() + sectors_to_bytes(2000));
  d[0] = src;
  FaultBackend b(d);
  const auto originals = b.disks_;
  const JobResult r = run_copy(b, {0, 0, 4096}, {{1, 0, 4096}, {2, 8, 4096}}, copy_sparse);
  REQUIRE(r.write_err == 0);
  require_exact_copy(b, originals[0], {0, 0, 4096}, {1, 0, 4096}, originals[1]);
  require_exact_copy(b, originals[0], {0, 0, 4096}, {2, 8, 4096}, originals[2]);
  // Data: sectors 96-111 (the two 4 KiB granules holding 100-107) and 2000-2999
  // (whole granules): the rest is zeroed, not written.
  REQUIRE(b.zeroed_bytes(1) == sectors_to_bytes(4096 - 16 - 1000));
  REQUIRE(b.nonzero_zeroings == 0);
  REQUIRE(r.sectors_written[0] == 4096);
}

TEST_CASE("max_rate paces the reads: 4 MiB at 16 MiB/s take about a quarter of a second") {
  FaultBackend b(disks(2));
  const auto start = std::chrono::steady_clock::now();
  std::promise<JobResult> done;
  {
    KcopydClient client(std::make_unique<Borrowed>(b), {.pages = 16, .io_size = 64 * 1024, .max_rate = 16 << 20});
    client.copy({0, 0, 8192}, std::vector<IoRegion>{{1, 0, 8192}}, 0, [&](const JobResult& r) { done.set_value(r); });
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  REQUIRE(done.get_future().get().write_err == 0);
  // 64 sub-jobs of 64 KiB: 63 of them paid for at 16 MiB/s = 0.246 s.
  REQUIRE(s > 0.2);
  REQUIRE(s < 1.5);
}

TEST_CASE("a stop during a paced copy ends it within one sleep") {
  FaultBackend b(disks(2));
  std::promise<JobResult> done;
  const auto start = std::chrono::steady_clock::now();
  {
    KcopydClient client(std::make_unique<Borrowed>(b), {.pages = 16, .io_size = 64 * 1024, .max_rate = 1 << 20});
    client.copy({0, 0, 8192}, std::vector<IoRegion>{{1, 0, 8192}}, 0, [&](const JobResult& r) { done.set_value(r); });
    std::this_thread::sleep_for(std::chrono::milliseconds(150));
    client.stop();
  }
  const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  const JobResult r = done.get_future().get();
  REQUIRE(r.stopped);
  REQUIRE(s < 0.6);  // 4 MiB at 1 MiB/s would take 4 s
}

namespace {

// Lends a FaultBackend whose source (endpoint 0) is a hole from byte `hole` on.
class HoleAfter final : public IoBackend {
 public:
  HoleAfter(IoBackend& b, std::uint64_t hole) : b_(b), hole_(hole) {}
  void submit(std::span<IoRequest* const> r) override { b_.submit(r); }
  std::size_t reap(std::span<IoRequest*> out, std::size_t min) override { return b_.reap(out, min); }
  int flush(unsigned e) override { return b_.flush(e); }
  std::uint32_t alignment(unsigned e) const override { return b_.alignment(e); }
  std::uint64_t next_data(unsigned e, std::uint64_t offset) override {
    return e == 0 && offset >= hole_ ? UINT64_MAX : offset;
  }

 private:
  IoBackend& b_;
  std::uint64_t hole_;
};

}  // namespace

TEST_CASE("copy_sparse does not read the holes of a sparse source, and punches them") {
  std::vector<std::vector<std::byte>> d = disks(2);
  std::fill(d[0].begin() + sectors_to_bytes(1024), d[0].end(), std::byte{0});  // the hole reads as zeroes
  FaultBackend b(d);
  const auto originals = b.disks_;
  HoleAfter holes(b, sectors_to_bytes(1024));
  std::promise<JobResult> done;
  {
    KcopydClient client(std::make_unique<Borrowed>(holes), {.pages = 16, .io_size = 16 * 1024});
    client.copy({0, 0, 4096}, std::vector<IoRegion>{{1, 0, 4096}}, copy_sparse,
                [&](const JobResult& r) { done.set_value(r); });
  }
  REQUIRE(done.get_future().get().write_err == 0);
  REQUIRE(b.reads_submitted == 1024 / 32);  // only the 16 KiB sub-jobs before the hole
  require_exact_copy(b, originals[0], {0, 0, 4096}, {1, 0, 4096}, originals[1]);
  REQUIRE(b.zeroed_bytes(1) == sectors_to_bytes(4096 - 1024));
}
