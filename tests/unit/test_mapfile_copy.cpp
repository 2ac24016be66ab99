// MapfileCopy: a copy driven and recorded by a GNU ddrescue mapfile. What a user
// relies on: what the map calls finished ('+') is on every destination still
// written, bad sectors ('-') are exactly the unreadable ones, and a rerun (or
// ddrescue) with the map copies only what is left.
#include <stdlib.h>

#include <catch2/catch.hpp>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <functional>
#include <sstream>

#include "fault_backend.hpp"
#include "kcopy/copy_plan.hpp"
#include "kcopy/error.hpp"
#include "kcopy/kcopyd.hpp"
#include "kcopy/mapfile.hpp"
#include "kcopy/mapfile_copy.hpp"

using namespace kcopy;
using kcopy::test::Borrowed;
using kcopy::test::Fault;
using kcopy::test::FaultBackend;
using Blocks = std::vector<RescueBlock>;

namespace {

constexpr std::uint64_t KiB = 1024, MiB = 1024 * 1024;
constexpr auto non_tried = RescueStatus::non_tried;
constexpr auto non_trimmed = RescueStatus::non_trimmed;
constexpr auto non_scraped = RescueStatus::non_scraped;
constexpr auto bad = RescueStatus::bad_sector;
constexpr auto finished = RescueStatus::finished;

constexpr ClientConfig small_client{.pages = 64, .io_size = 64 * 1024, .io_thread = false};

// Cheap pseudo-random bytes (xorshift64*), different for every seed.
std::vector<std::byte> pattern(std::size_t n, std::uint64_t seed) {
  std::vector<std::byte> v(n);
  std::uint64_t x = seed * 0x9E3779B97F4A7C15ull + 0x1234567;
  for (std::size_t i = 0; i < n; i += 8) {
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    const std::uint64_t w = x * 0x2545F4914F6CDD1Dull;
    std::memcpy(v.data() + i, &w, std::min<std::size_t>(8, n - i));
  }
  return v;
}

// Endpoint 0 is the source, 1.. destinations, each `bytes` long with its own pattern.
std::vector<std::vector<std::byte>> disks(unsigned n, std::uint64_t bytes) {
  std::vector<std::vector<std::byte>> d;
  for (unsigned i = 0; i < n; ++i) d.push_back(pattern(bytes, 1000 + i));
  return d;
}

std::vector<EndpointInfo> names(std::size_t dests) {
  std::vector<EndpointInfo> e{{"source", "/dev/src", 0, false, {}}};
  for (std::size_t d = 1; d <= dests; ++d)
    e.push_back({"destination " + std::to_string(d), "/dev/dst" + std::to_string(d), 0, false, {}});
  return e;
}

// A directory of our own under /tmp, removed with everything in it.
struct TempDir {
  std::string path;
  TempDir() {
    char name[] = "/tmp/kcopy-mapfile-copy-XXXXXX";
    REQUIRE(::mkdtemp(name) != nullptr);
    path = name;
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;
  std::string file(const std::string& name) const { return path + "/" + name; }
};

void write_text(const std::string& path, const std::string& text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  REQUIRE(out.good());
}

ParsedMapfile read_map(const std::string& path) {
  const std::optional<std::string> text = read_mapfile_text(path);
  REQUIRE(text.has_value());
  return parse_mapfile(*text, path);
}

// "pos+size:status ..." in hex, so that a failed comparison shows the map.
std::string show(const Blocks& blocks) {
  std::ostringstream s;
  s << std::hex;
  for (const RescueBlock& b : blocks)
    s << "0x" << b.pos << "+0x" << b.size << ":" << static_cast<char>(b.status) << " ";
  return s.str();
}

std::string show_ranges(const ErrorRanges& r) {
  std::ostringstream s;
  for (const ErrorRange& e : r.ranges()) s << e.sector << "+" << e.count << "(" << e.error << ") ";
  if (r.overflow_sectors()) s << "overflow " << r.overflow_sectors() << " from " << r.overflow_from();
  return s.str();
}

bool same(const std::vector<std::byte>& a, std::uint64_t a_byte, const std::vector<std::byte>& b, std::uint64_t b_byte,
          std::uint64_t bytes) {
  return std::equal(a.begin() + static_cast<long>(a_byte), a.begin() + static_cast<long>(a_byte + bytes),
                    b.begin() + static_cast<long>(b_byte));
}

bool all_zero(const std::vector<std::byte>& a, std::uint64_t byte, std::uint64_t bytes) {
  return std::all_of(a.begin() + static_cast<long>(byte), a.begin() + static_cast<long>(byte + bytes),
                     [](std::byte x) { return x == std::byte{0}; });
}

// How many bytes of [byte, byte + bytes) of `endpoint` were written at least once.
std::uint64_t written_bytes(const FaultBackend& b, unsigned endpoint, std::uint64_t byte, std::uint64_t bytes) {
  const auto& w = b.written(endpoint);
  return static_cast<std::uint64_t>(std::count_if(w.begin() + static_cast<long>(byte),
                                                  w.begin() + static_cast<long>(byte + bytes),
                                                  [](unsigned char c) { return c != 0; }));
}

std::uint64_t bytes_with(const Blocks& blocks, RescueStatus status) {
  std::uint64_t n = 0;
  for (const RescueBlock& b : blocks)
    if (b.status == status) n += b.size;
  return n;
}

// Every byte the map calls finished is, on every destination in `holders`,
// what the source had there (`source`: the source's bytes before the copy).
void require_finished_is_held(const Blocks& blocks, const FaultBackend& b, const std::vector<std::byte>& source,
                              const CopyPlan& plan, const std::vector<unsigned>& holders) {
  for (const RescueBlock& blk : blocks) {
    if (blk.status != finished) continue;
    for (unsigned d : holders) {
      const IoRegion& dest = plan.dests[d];
      const std::uint64_t at = blk.pos - sectors_to_bytes(plan.from.sector) + sectors_to_bytes(dest.sector);
      INFO("finished block " << show({blk}) << " on destination " << d + 1);
      REQUIRE(same(b.disks_[dest.endpoint], at, source, blk.pos, blk.size));
    }
  }
}

struct Outcome {
  JobResult result;
  MapfileRecord record;
};

// One run of kcopy --mapfile: MapfileCopy on a client without an I/O thread.
// `hook` runs on the client after start(), before wait().
Outcome run_mapfile_copy(FaultBackend& b, const std::string& path, const CopyPlan& plan, unsigned flags,
                         bool force = false, ClientConfig config = small_client,
                         const std::function<void(KcopydClient&)>& hook = {}) {
  const auto endpoints = names(plan.dests.size());
  MapfileCopy m(path, plan, endpoints, flags, force, 60.0);
  {
    KcopydClient client(std::make_unique<Borrowed>(b), config);
    m.start(client);
    if (hook) hook(client);
    client.wait();
  }
  Outcome o;
  o.result = m.finish();
  o.record = m.record();
  return o;
}

// Calls `on_flush` at the first flush (the end of the first chunk's job).
class FlushHook final : public IoBackend {
 public:
  FlushHook(IoBackend& b, std::function<void()> on_flush) : b_(b), on_flush_(std::move(on_flush)) {}
  void submit(std::span<IoRequest* const> r) override { b_.submit(r); }
  std::size_t reap(std::span<IoRequest*> out, std::size_t min) override { return b_.reap(out, min); }
  int flush(unsigned e) override {
    if (!fired_) {
      fired_ = true;
      on_flush_();
    }
    return b_.flush(e);
  }
  std::uint32_t alignment(unsigned e) const override { return b_.alignment(e); }

 private:
  IoBackend& b_;
  std::function<void()> on_flush_;
  bool fired_ = false;
};

// Records the byte offset of every write submitted to each endpoint, in order.
class WriteOrder final : public IoBackend {
 public:
  explicit WriteOrder(IoBackend& b) : b_(b) {}
  std::vector<std::vector<std::uint64_t>> offsets = std::vector<std::vector<std::uint64_t>>(8);
  void submit(std::span<IoRequest* const> r) override {
    for (IoRequest* io : r)
      if (io->op == IoOp::write) offsets.at(io->endpoint).push_back(io->offset);
    b_.submit(r);
  }
  std::size_t reap(std::span<IoRequest*> out, std::size_t min) override { return b_.reap(out, min); }
  int flush(unsigned e) override { return b_.flush(e); }
  std::uint32_t alignment(unsigned e) const override { return b_.alignment(e); }

 private:
  IoBackend& b_;
};

}  // namespace

TEST_CASE("a new mapfile: a clean copy is one finished block after the non-tried bytes before the range",
          "[mapfile_copy]") {
  TempDir dir;
  const std::string path = dir.file("rescue.map");
  FaultBackend b(disks(3, 8 * MiB), 7);
  const auto originals = b.disks_;
  // 4 MiB from 1 MiB into the source, to two destinations at other sectors.
  const CopyPlan plan{{0, 2048, 8192}, {{1, 100, 8192}, {2, 4096, 8192}}};
  const auto endpoints = names(2);
  MapfileCopy m(path, plan, endpoints, 0, false, 60.0);
  REQUIRE_FALSE(m.record().existed);
  REQUIRE(m.sectors_to_copy() == 8192);
  JobResult r;
  {
    KcopydClient client(std::make_unique<Borrowed>(b), small_client);
    m.start(client);
    // Written before any data: a rerun finds the comments, and nothing is finished yet.
    const ParsedMapfile early = read_map(path);
    REQUIRE(bytes_with(early.map.blocks(), finished) == 0);
    REQUIRE(early.map.size() == 5 * MiB);
    REQUIRE(std::count(early.comments.begin(), early.comments.end(), "kcopy source: /dev/src:2048:8192") == 1);
    client.wait();
  }
  r = m.finish();

  REQUIRE_FALSE(r.read_err);
  REQUIRE(r.write_err == 0);
  REQUIRE_FALSE(r.stopped);
  REQUIRE(r.read_errors.empty());
  REQUIRE(r.sectors_total == 8192);
  // Every destination holds the range, and nothing around it changed.
  for (unsigned d = 0; d < 2; ++d) {
    const std::uint64_t at = sectors_to_bytes(plan.dests[d].sector), end = at + 4 * MiB;
    INFO("destination " << d + 1);
    REQUIRE(same(b.disks_[d + 1], at, originals[0], 1 * MiB, 4 * MiB));
    REQUIRE(same(b.disks_[d + 1], 0, originals[d + 1], 0, at));
    REQUIRE(same(b.disks_[d + 1], end, originals[d + 1], end, 8 * MiB - end));
  }
  REQUIRE(b.disks_[0] == originals[0]);

  const ParsedMapfile parsed = read_map(path);
  REQUIRE(show(parsed.map.blocks()) == show({{0, 1 * MiB, non_tried}, {1 * MiB, 4 * MiB, finished}}));
  REQUIRE(parsed.map.current_status() == RescuePhase::finished);
  REQUIRE(parsed.comments == std::vector<std::string>{"kcopy source: /dev/src:2048:8192",
                                                      "kcopy destination 1: /dev/dst1:100:8192",
                                                      "kcopy destination 2: /dev/dst2:4096:8192"});
  const MapfileRecord rec = m.record();
  REQUIRE(rec.finished_bytes_before == 0);
  REQUIRE(rec.finished_bytes == 4 * MiB);
  REQUIRE(rec.bytes_to_copy == 4 * MiB);
}

TEST_CASE("a clean copy of several chunks, completions shuffled, ends as one finished block", "[mapfile_copy]") {
  TempDir dir;
  const std::string path = dir.file("big.map");
  const unsigned seed = GENERATE(1u, 2u);
  FaultBackend b(disks(2, 36 * MiB), seed);
  const auto originals = b.disks_;
  const CopyPlan plan{{0, 0, bytes_to_sectors(36 * MiB)}, {{1, 0, bytes_to_sectors(36 * MiB)}}};
  const Outcome o =
      run_mapfile_copy(b, path, plan, 0, false, {.pages = 256, .io_size = 256 * 1024, .io_thread = false});
  REQUIRE_FALSE(o.result.read_err);
  REQUIRE(o.result.write_err == 0);
  REQUIRE(b.disks_[1] == originals[0]);
  REQUIRE(std::all_of(b.written(1).begin(), b.written(1).end(), [](unsigned char c) { return c == 1; }));
  const ParsedMapfile parsed = read_map(path);
  REQUIRE(show(parsed.map.blocks()) == show({{0, 36 * MiB, finished}}));
  REQUIRE(parsed.map.current_status() == RescuePhase::finished);
}

TEST_CASE("read errors with copy_ignore_errors: exactly the bad sectors are '-', the rest '+', zeroes there",
          "[mapfile_copy]") {
  TempDir dir;
  const std::string path = dir.file("bad.map");
  FaultBackend b(disks(3, 4 * MiB), 3);
  const auto originals = b.disks_;
  // Sector 100, sectors 3000-3002, and the last sector of the range.
  b.faults.push_back({0, IoOp::read, sectors_to_bytes(100), sectors_to_bytes(101), EIO});
  b.faults.push_back({0, IoOp::read, sectors_to_bytes(3000), sectors_to_bytes(3003), EIO});
  b.faults.push_back({0, IoOp::read, sectors_to_bytes(8191), sectors_to_bytes(8192), EIO});
  const CopyPlan plan{{0, 0, 8192}, {{1, 0, 8192}, {2, 0, 8192}}};
  const Outcome o = run_mapfile_copy(b, path, plan, copy_ignore_errors);

  REQUIRE(o.result.read_err);
  REQUIRE(o.result.write_err == 0);
  INFO("read errors: " << show_ranges(o.result.read_errors));
  REQUIRE(o.result.read_errors.ranges() == std::vector<ErrorRange>{{100, 1, EIO}, {3000, 3, EIO}, {8191, 1, EIO}});

  const ParsedMapfile parsed = read_map(path);
  const Blocks expected{{0, 100 * 512, finished},
                        {100 * 512, 512, bad},
                        {101 * 512, (3000 - 101) * 512, finished},
                        {3000 * 512, 3 * 512, bad},
                        {3003 * 512, (8191 - 3003) * 512, finished},
                        {8191 * 512, 512, bad}};
  REQUIRE(show(parsed.map.blocks()) == show(expected));
  REQUIRE(parsed.map.current_status() != RescuePhase::finished);  // the bad sectors are left to do

  for (unsigned ep = 1; ep <= 2; ++ep) {
    INFO("destination " << ep);
    for (const RescueBlock& blk : expected) {
      if (blk.status == bad)
        REQUIRE(all_zero(b.disks_[ep], blk.pos, blk.size));
      else
        REQUIRE(same(b.disks_[ep], blk.pos, originals[0], blk.pos, blk.size));
    }
  }
}

TEST_CASE("a read error without copy_ignore_errors ends the copy; the map claims only what the destination holds",
          "[mapfile_copy]") {
  TempDir dir;
  const std::string path = dir.file("stop.map");
  constexpr std::uint64_t size = 48 * MiB;
  FaultBackend b(disks(2, size), 5);
  const auto originals = b.disks_;
  const std::uint64_t bad_sector = 2048 + 5;  // 1 MiB into the first chunk
  b.faults.push_back({0, IoOp::read, sectors_to_bytes(bad_sector), sectors_to_bytes(bad_sector + 1), EIO});
  const CopyPlan plan{{0, 0, bytes_to_sectors(size)}, {{1, 0, bytes_to_sectors(size)}}};
  const Outcome o = run_mapfile_copy(b, path, plan, 0);

  REQUIRE(o.result.read_err);
  REQUIRE(o.result.write_err == 0);
  INFO("read errors: " << show_ranges(o.result.read_errors));
  REQUIRE(o.result.read_errors.ranges() == std::vector<ErrorRange>{{bad_sector, 1, EIO}});

  const ParsedMapfile parsed = read_map(path);
  const Blocks& blocks = parsed.map.blocks();
  INFO("map: " << show(blocks));
  REQUIRE(parsed.map.size() == size);
  // Only the bad sector is '-'.
  REQUIRE(show(parsed.map.areas_with(bad, 0, size)) == show({{sectors_to_bytes(bad_sector), 512, bad}}));
  // Nothing the destination does not hold is '+'.
  require_finished_is_held(blocks, b, originals[0], plan, {0});
  // The copy ended early: no new chunk after the failure (at most the two queued
  // at the start ran), so the end of the range is non-tried and never written.
  REQUIRE(bytes_with(parsed.map.areas_with(finished, 32 * MiB, 16 * MiB), finished) == 0);
  REQUIRE(written_bytes(b, 1, 32 * MiB, 16 * MiB) == 0);
  // Nothing in the failing chunk past the bad sector is '+'.
  REQUIRE(
      parsed.map.areas_with(finished, sectors_to_bytes(bad_sector), 16 * MiB - sectors_to_bytes(bad_sector)).empty());
  REQUIRE(parsed.map.current_status() != RescuePhase::finished);

  SECTION("a rerun with copy_ignore_errors and the same map finishes the rest") {
    const auto counts_before = b.written(1);
    const Outcome again = run_mapfile_copy(b, path, plan, copy_ignore_errors);
    REQUIRE(again.record.existed);
    REQUIRE(again.result.read_errors.ranges() == std::vector<ErrorRange>{{bad_sector, 1, EIO}});
    const ParsedMapfile after = read_map(path);
    REQUIRE(show(after.map.blocks()) ==
            show({{0, sectors_to_bytes(bad_sector), finished},
                  {sectors_to_bytes(bad_sector), 512, bad},
                  {sectors_to_bytes(bad_sector + 1), size - sectors_to_bytes(bad_sector + 1), finished}}));
    REQUIRE(same(b.disks_[1], 0, originals[0], 0, sectors_to_bytes(bad_sector)));
    REQUIRE(all_zero(b.disks_[1], sectors_to_bytes(bad_sector), 512));
    REQUIRE(same(b.disks_[1], sectors_to_bytes(bad_sector + 1), originals[0], sectors_to_bytes(bad_sector + 1),
                 size - sectors_to_bytes(bad_sector + 1)));
    // What the first run recorded as finished was not written again.
    for (const RescueBlock& blk : parsed.map.areas_with(finished, 0, size))
      for (std::uint64_t i = blk.pos; i < blk.end(); i += 4096) REQUIRE(b.written(1)[i] == counts_before[i]);
  }
}

TEST_CASE(
    "a write error on destination 2 of 2 without copy_ignore_errors: bit 2, destination 1 whole, "
    "nothing '+' that destination 2 lacks; the resume copies it to both",
    "[mapfile_copy]") {
  TempDir dir;
  const std::string path = dir.file("write.map");
  FaultBackend b(disks(3, 64 * MiB), 11);
  const auto originals = b.disks_;
  // In the second chunk (the first is 16 MiB): the first chunk is on both, and '+'.
  const std::uint64_t bad = bytes_to_sectors(20 * MiB);
  b.faults.push_back({2, IoOp::write, sectors_to_bytes(bad), sectors_to_bytes(bad + 1), EIO});
  const std::uint64_t n = bytes_to_sectors(64 * MiB);
  const CopyPlan plan{{0, 0, n}, {{1, 0, n}, {2, 0, n}}};
  const Outcome o = run_mapfile_copy(b, path, plan, 0);

  REQUIRE_FALSE(o.result.read_err);
  REQUIRE(o.result.write_err == 2);
  REQUIRE_FALSE(o.result.write_errors[1].empty());
  REQUIRE(o.result.write_errors[0].empty());
  REQUIRE(b.disks_[1] == originals[0]);
  // Nothing is written to destination 2 after its failure: what it holds is what the report says.
  std::uint64_t held = 0;
  for (std::uint64_t i = 0; i < 64 * MiB; i += 512) held += same(b.disks_[2], i, originals[0], i, 512);
  REQUIRE(held == o.result.sectors_written[1]);
  REQUIRE(o.result.sectors_written[1] < bytes_to_sectors(32 * MiB));
  // Destination 2 lacks the rest of the range: only the first chunk is finished.
  REQUIRE(show(read_map(path).map.blocks()) == show({{0, 16 * MiB, finished}, {16 * MiB, 48 * MiB, non_tried}}));

  // The device is fixed: the resume copies the rest to both, and both are whole.
  b.faults.clear();
  const Outcome again = run_mapfile_copy(b, path, plan, 0);
  REQUIRE(again.record.bytes_to_copy == 48 * MiB);
  REQUIRE(again.result.write_err == 0);
  REQUIRE(b.disks_[1] == originals[0]);
  REQUIRE(b.disks_[2] == originals[0]);
  REQUIRE(show(read_map(path).map.blocks()) == show({{0, 64 * MiB, finished}}));
}

TEST_CASE("a failed flush: the chunk is '+' only where every destination flushed it", "[mapfile_copy]") {
  TempDir dir;
  const std::string path = dir.file("flush.map");
  FaultBackend b(disks(3, 2 * MiB), 43);
  const auto originals = b.disks_;
  b.flush_error_on = 2;  // destination 2's flush fails
  const CopyPlan two{{0, 0, 4096}, {{1, 0, 4096}, {2, 0, 4096}}};

  SECTION("one destination, its flush fails: nothing is finished") {
    const CopyPlan one{{0, 0, 4096}, {{2, 0, 4096}}};
    const Outcome o = run_mapfile_copy(b, path, one, 0);
    REQUIRE(o.result.write_err == 1);
    REQUIRE(o.result.flush_error[0] == EIO);
    REQUIRE(bytes_with(read_map(path).map.blocks(), finished) == 0);
  }
  SECTION("with copy_ignore_errors destination 2 still counts: nothing is finished") {
    const Outcome o = run_mapfile_copy(b, path, two, copy_ignore_errors);
    REQUIRE(o.result.write_err == 2);
    REQUIRE(bytes_with(read_map(path).map.blocks(), finished) == 0);
  }
  SECTION("without copy_ignore_errors: destination 1 holds it all, destination 2 may not: nothing is finished") {
    const Outcome o = run_mapfile_copy(b, path, two, 0);
    REQUIRE(o.result.write_err == 2);
    REQUIRE(o.result.flush_error[1] == EIO);
    REQUIRE(b.disks_[1] == originals[0]);
    REQUIRE(bytes_with(read_map(path).map.blocks(), finished) == 0);
  }
}

TEST_CASE("a write error with copy_ignore_errors leaves exactly the failed sectors non-tried, and a rerun fills them",
          "[mapfile_copy]") {
  TempDir dir;
  const std::string path = dir.file("write-ignore.map");
  FaultBackend b(disks(3, 4 * MiB), 13);
  const auto originals = b.disks_;
  b.faults.push_back({2, IoOp::write, sectors_to_bytes(1000), sectors_to_bytes(1002), EIO});
  const CopyPlan plan{{0, 0, 8192}, {{1, 0, 8192}, {2, 0, 8192}}};
  const Outcome o = run_mapfile_copy(b, path, plan, copy_ignore_errors);

  REQUIRE_FALSE(o.result.read_err);
  REQUIRE(o.result.write_err == 2);
  REQUIRE(o.result.write_errors[1].ranges() == std::vector<ErrorRange>{{1000, 2, EIO}});
  REQUIRE(b.disks_[1] == originals[0]);
  REQUIRE(same(b.disks_[2], 0, originals[0], 0, 1000 * 512));
  REQUIRE(same(b.disks_[2], 1002 * 512, originals[0], 1002 * 512, 4 * MiB - 1002 * 512));
  const ParsedMapfile parsed = read_map(path);
  REQUIRE(
      show(parsed.map.blocks()) ==
      show({{0, 1000 * 512, finished}, {1000 * 512, 1024, non_tried}, {1002 * 512, 4 * MiB - 1002 * 512, finished}}));

  // The device is fixed: the rerun copies the two sectors, and nothing else.
  b.faults.clear();
  const auto counts = b.written(2);
  const Outcome again = run_mapfile_copy(b, path, plan, copy_ignore_errors);
  REQUIRE(again.record.existed);
  REQUIRE(again.record.bytes_to_copy == 1024);
  REQUIRE(again.result.write_err == 0);
  REQUIRE(b.disks_[2] == originals[0]);
  REQUIRE(show(read_map(path).map.blocks()) == show({{0, 4 * MiB, finished}}));
  for (std::uint64_t i = 0; i < 4 * MiB; i += 512)
    if (i < 1000 * 512 || i >= 1002 * 512) REQUIRE(b.written(2)[i] == counts[i]);
}

TEST_CASE("resuming ddrescue's map: only the unfinished areas are read; '-' is retried only with copy_ignore_errors",
          "[mapfile_copy]") {
  TempDir dir;
  const std::string path = dir.file("ddrescue.map");
  constexpr std::uint64_t size = 4 * MiB;
  // As ddrescue leaves it: copied areas, non-tried, non-trimmed, non-scraped and bad ones.
  RescueMap ddrescue_map(size);
  ddrescue_map.mark(0, size, finished);
  const Blocks todo{{1 * MiB, 512 * KiB, non_tried},
                    {2 * MiB, 64 * KiB, non_trimmed},
                    {2 * MiB + 512 * KiB, 4 * KiB, non_scraped},
                    {size - 128 * KiB, 128 * KiB, non_tried}};
  for (const RescueBlock& blk : todo) ddrescue_map.mark(blk.pos, blk.size, blk.status);
  const RescueBlock bad_area{3 * MiB, 4 * KiB, bad};
  ddrescue_map.mark(bad_area.pos, bad_area.size, bad);
  ddrescue_map.set_current_pos(1 * MiB);
  const std::vector<std::string> user_comment{"rescue of the old laptop disk"};
  write_text(path, format_mapfile(ddrescue_map, user_comment));

  FaultBackend b(disks(2, size), 17);
  const auto originals = b.disks_;
  // Reading a finished area would fail: the source went bad there since.
  const std::uint64_t todo_bytes = 512 * KiB + 64 * KiB + 4 * KiB + 128 * KiB;
  for (const RescueBlock& blk : ddrescue_map.blocks())
    if (blk.status == finished) b.faults.push_back({0, IoOp::read, blk.pos, blk.end(), EIO});
  const CopyPlan plan{{0, 0, bytes_to_sectors(size)}, {{1, 0, bytes_to_sectors(size)}}};

  // The destination is untouched in the finished areas, written once in the others.
  const auto require_only = [&](const Blocks& copied) {
    for (const RescueBlock& blk : ddrescue_map.blocks()) {
      const bool copy = std::find(copied.begin(), copied.end(), blk) != copied.end();
      INFO("area " << show({blk}) << (copy ? " copied" : " not copied"));
      if (copy) {
        REQUIRE(same(b.disks_[1], blk.pos, originals[0], blk.pos, blk.size));
        REQUIRE(std::all_of(b.written(1).begin() + static_cast<long>(blk.pos),
                            b.written(1).begin() + static_cast<long>(blk.end()),
                            [](unsigned char c) { return c == 1; }));
      } else {
        REQUIRE(same(b.disks_[1], blk.pos, originals[1], blk.pos, blk.size));
        REQUIRE(written_bytes(b, 1, blk.pos, blk.size) == 0);
      }
    }
  };

  SECTION("without copy_ignore_errors the bad area is not read and stays '-'") {
    const Outcome o = run_mapfile_copy(b, path, plan, 0);
    REQUIRE(o.record.existed);
    REQUIRE(o.record.finished_bytes_before == size - todo_bytes - bad_area.size);
    REQUIRE(o.record.bytes_to_copy == todo_bytes);
    REQUIRE(o.result.sectors_total == bytes_to_sectors(todo_bytes + bad_area.size));  // the bad area counts as not done
    REQUIRE(o.result.write_err == 0);
    REQUIRE(o.result.read_err);  // the bad area it did not retry
    INFO("read errors: " << show_ranges(o.result.read_errors));
    REQUIRE(o.result.read_errors.ranges() ==
            std::vector<ErrorRange>{{bytes_to_sectors(bad_area.pos), bytes_to_sectors(bad_area.size), EIO}});
    require_only(todo);
    const ParsedMapfile parsed = read_map(path);
    REQUIRE(show(parsed.map.blocks()) ==
            show({{0, bad_area.pos, finished}, bad_area, {bad_area.end(), size - bad_area.end(), finished}}));
    REQUIRE(parsed.map.current_status() != RescuePhase::finished);
    // ddrescue's map had no kcopy comments: it now has this copy's, and the user's own is kept.
    REQUIRE(std::count(parsed.comments.begin(), parsed.comments.end(), "kcopy source: /dev/src:0:8192") == 1);
    REQUIRE(std::count(parsed.comments.begin(), parsed.comments.end(), "kcopy destination 1: /dev/dst1:0:8192") == 1);
    REQUIRE(std::count(parsed.comments.begin(), parsed.comments.end(), user_comment[0]) == 1);
  }
  SECTION("with copy_ignore_errors the bad area is read again, and finishes the map") {
    const Outcome o = run_mapfile_copy(b, path, plan, copy_ignore_errors);
    REQUIRE(o.record.bytes_to_copy == todo_bytes + bad_area.size);
    REQUIRE_FALSE(o.result.read_err);
    REQUIRE(o.result.write_err == 0);
    Blocks copied = todo;
    copied.push_back(bad_area);
    require_only(copied);
    const ParsedMapfile parsed = read_map(path);
    REQUIRE(show(parsed.map.blocks()) == show({{0, size, finished}}));
    REQUIRE(parsed.map.current_status() == RescuePhase::finished);
  }
  SECTION("with copy_ignore_errors a bad area still unreadable stays '-', exactly") {
    b.faults.push_back({0, IoOp::read, bad_area.pos + 1024, bad_area.pos + 1536, EIO});
    const Outcome o = run_mapfile_copy(b, path, plan, copy_ignore_errors);
    REQUIRE(o.result.read_err);
    REQUIRE(o.result.read_errors.ranges() == std::vector<ErrorRange>{{bytes_to_sectors(bad_area.pos + 1024), 1, EIO}});
    const ParsedMapfile parsed = read_map(path);
    REQUIRE(show(parsed.map.blocks()) == show({{0, bad_area.pos + 1024, finished},
                                               {bad_area.pos + 1024, 512, bad},
                                               {bad_area.pos + 1536, size - bad_area.pos - 1536, finished}}));
  }
}

TEST_CASE("a mapfile written for another copy is refused unless forced; nothing is written", "[mapfile_copy]") {
  TempDir dir;
  const std::string path = dir.file("other.map");
  const CopyPlan plan{{0, 0, 2048}, {{1, 0, 2048}}};
  const auto endpoints = names(1);
  RescueMap map(1 * MiB);
  map.mark(0, 256 * KiB, finished);

  SECTION("another source") {
    const std::string text =
        format_mapfile(map, std::vector<std::string>{mapfile_source_comment("/dev/other", 0, 2048),
                                                     mapfile_destination_comment(1, "/dev/dst1", 0, 2048)});
    write_text(path, text);
    REQUIRE_THROWS_AS(MapfileCopy(path, plan, endpoints, 0, false, 60.0), Error);
    REQUIRE(read_mapfile_text(path).value() == text);

    // --force: taken, its '+' trusted, and rewritten with this copy's comments.
    FaultBackend b(disks(2, 1 * MiB), 19);
    const auto originals = b.disks_;
    const Outcome o = run_mapfile_copy(b, path, plan, 0, /*force=*/true);
    REQUIRE(o.record.existed);
    REQUIRE(o.record.finished_bytes_before == 256 * KiB);
    REQUIRE(o.record.bytes_to_copy == 768 * KiB);
    REQUIRE(same(b.disks_[1], 256 * KiB, originals[0], 256 * KiB, 768 * KiB));
    REQUIRE(written_bytes(b, 1, 0, 256 * KiB) == 0);
    const ParsedMapfile parsed = read_map(path);
    REQUIRE(show(parsed.map.blocks()) == show({{0, 1 * MiB, finished}}));
    REQUIRE(parsed.comments ==
            std::vector<std::string>{"kcopy source: /dev/src:0:2048", "kcopy destination 1: /dev/dst1:0:2048"});
  }
  SECTION("another destination") {
    const std::string text =
        format_mapfile(map, std::vector<std::string>{mapfile_source_comment("/dev/src", 0, 2048),
                                                     mapfile_destination_comment(1, "/dev/dst1", 8, 2048)});
    write_text(path, text);
    REQUIRE_THROWS_AS(MapfileCopy(path, plan, endpoints, 0, false, 60.0), Error);
    REQUIRE(read_mapfile_text(path).value() == text);
    REQUIRE_NOTHROW(MapfileCopy(path, plan, endpoints, 0, true, 60.0));
  }
  SECTION("another range of the same source") {
    const std::string text =
        format_mapfile(map, std::vector<std::string>{mapfile_source_comment("/dev/src", 0, 4096),
                                                     mapfile_destination_comment(1, "/dev/dst1", 0, 4096)});
    write_text(path, text);
    REQUIRE_THROWS_AS(MapfileCopy(path, plan, endpoints, 0, false, 60.0), Error);
  }
  SECTION("this copy's own comments are taken") {
    write_text(path,
               format_mapfile(map, std::vector<std::string>{mapfile_source_comment("/dev/src", 0, 2048),
                                                            mapfile_destination_comment(1, "/dev/dst1", 0, 2048)}));
    MapfileCopy m(path, plan, endpoints, 0, false, 60.0);
    REQUIRE(m.record().existed);
    REQUIRE(m.sectors_to_copy() == bytes_to_sectors(768 * KiB));
  }
  SECTION("a corrupt map") {
    write_text(path, "# current_pos  current_status  current_pass\n0x0 ? 1\n0x0 0x100000 X\n");
    REQUIRE_THROWS_AS(MapfileCopy(path, plan, endpoints, 0, true, 60.0), Error);
  }
}

TEST_CASE("a map with '+' past the end of the range is refused; '?' past the end is cut", "[mapfile_copy]") {
  TempDir dir;
  const std::string path = dir.file("long.map");
  const CopyPlan plan{{0, 0, 2048}, {{1, 0, 2048}}};  // 1 MiB
  const auto endpoints = names(1);

  SECTION("finished bytes past the end") {
    RescueMap map(2 * MiB);
    map.mark(1 * MiB + 512, 4 * KiB, finished);
    const std::string text = format_mapfile(map);
    write_text(path, text);
    REQUIRE_THROWS_AS(MapfileCopy(path, plan, endpoints, 0, false, 60.0), Error);
    REQUIRE_THROWS_AS(MapfileCopy(path, plan, endpoints, 0, true, 60.0), Error);  // not a --force matter
    REQUIRE(read_mapfile_text(path).value() == text);
  }
  SECTION("finished bytes up to the end exactly, non-tried past it") {
    RescueMap map(2 * MiB);
    map.mark(512 * KiB, 512 * KiB, finished);
    write_text(path, format_mapfile(map));
    FaultBackend b(disks(2, 2 * MiB), 23);
    const auto originals = b.disks_;
    const Outcome o = run_mapfile_copy(b, path, plan, 0);
    REQUIRE(o.record.bytes_to_copy == 512 * KiB);
    REQUIRE_FALSE(o.result.read_err);
    REQUIRE(same(b.disks_[1], 0, originals[0], 0, 512 * KiB));
    REQUIRE(same(b.disks_[1], 512 * KiB, originals[1], 512 * KiB, 1536 * KiB));  // nothing past the range either
    const ParsedMapfile parsed = read_map(path);
    REQUIRE(show(parsed.map.blocks()) == show({{0, 1 * MiB, finished}}));
    REQUIRE(parsed.map.current_status() == RescuePhase::finished);
  }
  SECTION("bad bytes past the end are cut too") {
    RescueMap map(2 * MiB);
    map.mark(1536 * KiB, 4 * KiB, bad);
    write_text(path, format_mapfile(map));
    FaultBackend b(disks(2, 2 * MiB), 29);
    const Outcome o = run_mapfile_copy(b, path, plan, 0);
    REQUIRE_FALSE(o.result.read_err);  // not in the range: not this copy's bad sectors
    REQUIRE(show(read_map(path).map.blocks()) == show({{0, 1 * MiB, finished}}));
  }
}

TEST_CASE("stop() after the first chunk: what is '+' is on the destination, and a rerun copies only the rest",
          "[mapfile_copy]") {
  TempDir dir;
  const std::string path = dir.file("stopped.map");
  constexpr std::uint64_t size = 40 * MiB;  // more than two 16 MiB chunks
  FaultBackend b(disks(2, size), 31);
  const auto originals = b.disks_;
  const CopyPlan plan{{0, 0, bytes_to_sectors(size)}, {{1, 0, bytes_to_sectors(size)}}};
  const auto endpoints = names(1);
  const ClientConfig config{.pages = 256, .io_size = 256 * 1024, .io_thread = false};

  JobResult r;
  {
    MapfileCopy m(path, plan, endpoints, 0, false, 60.0);
    {
      KcopydClient* client_ptr = nullptr;
      // The first chunk's flush (its job's end) stops the client: the other chunk
      // in flight is cut short.
      KcopydClient client(std::make_unique<FlushHook>(b, [&] { client_ptr->stop(); }), config);
      client_ptr = &client;
      m.start(client);
      client.wait();
    }
    r = m.finish();
  }
  REQUIRE(r.stopped);
  const ParsedMapfile parsed = read_map(path);
  INFO("map after the stop: " << show(parsed.map.blocks()));
  require_finished_is_held(parsed.map.blocks(), b, originals[0], plan, {0});
  const std::uint64_t done = bytes_with(parsed.map.blocks(), finished);
  REQUIRE(done >= 16 * MiB);  // the first chunk ended before the stop
  REQUIRE(done < size);
  REQUIRE(bytes_with(parsed.map.blocks(), bad) == 0);
  REQUIRE(parsed.map.current_status() != RescuePhase::finished);
  // What the stopped run wrote is (nearly all) recorded: not much more was
  // written than the map calls finished (the sub-jobs in flight at most).
  REQUIRE(written_bytes(b, 1, 0, size) <= done + 1 * MiB);

  // The rerun: only the rest is copied, and the copy is whole.
  const auto counts = b.written(1);
  const Outcome again = run_mapfile_copy(b, path, plan, 0, false, config);
  REQUIRE(again.record.existed);
  REQUIRE(again.record.finished_bytes_before == done);
  REQUIRE(again.record.bytes_to_copy == size - done);
  REQUIRE_FALSE(again.result.stopped);
  REQUIRE_FALSE(again.result.read_err);
  REQUIRE(again.result.write_err == 0);
  REQUIRE(b.disks_[1] == originals[0]);
  for (const RescueBlock& blk : parsed.map.areas_with(finished, 0, size))
    for (std::uint64_t i = blk.pos; i < blk.end(); i += 4096) REQUIRE(b.written(1)[i] == counts[i]);
  const ParsedMapfile after = read_map(path);
  REQUIRE(show(after.map.blocks()) == show({{0, size, finished}}));
  REQUIRE(after.map.current_status() == RescuePhase::finished);
}

TEST_CASE("stop() before any chunk ends: nothing is '+' that the destination does not hold", "[mapfile_copy]") {
  TempDir dir;
  const std::string path = dir.file("early-stop.map");
  constexpr std::uint64_t size = 20 * MiB;
  FaultBackend b(disks(2, size), 37);
  const auto originals = b.disks_;
  const CopyPlan plan{{0, 0, bytes_to_sectors(size)}, {{1, 0, bytes_to_sectors(size)}}};
  // Stopped at once after start(): the jobs start no sub-job (or few).
  const Outcome o =
      run_mapfile_copy(b, path, plan, 0, false, small_client, [](KcopydClient& client) { client.stop(); });
  REQUIRE(o.result.stopped);
  const ParsedMapfile parsed = read_map(path);
  INFO("map: " << show(parsed.map.blocks()));
  require_finished_is_held(parsed.map.blocks(), b, originals[0], plan, {0});
  REQUIRE(bytes_with(parsed.map.blocks(), finished) < size);
  REQUIRE(parsed.map.current_status() != RescuePhase::finished);
}

TEST_CASE("with copy_write_seq every destination is written in ascending order across chunks", "[mapfile_copy]") {
  TempDir dir;
  const std::string path = dir.file("seq.map");
  constexpr std::uint64_t size = 36 * MiB;  // three chunks at least
  FaultBackend b(disks(3, size), 47);
  const auto originals = b.disks_;
  const CopyPlan plan{{0, 0, bytes_to_sectors(size)}, {{1, 0, bytes_to_sectors(size)}, {2, 0, bytes_to_sectors(size)}}};
  const auto endpoints = names(2);
  MapfileCopy m(path, plan, endpoints, copy_write_seq, false, 60.0);
  WriteOrder* order = nullptr;
  {
    auto backend = std::make_unique<WriteOrder>(b);
    order = backend.get();
    KcopydClient client(std::move(backend), {.pages = 256, .io_size = 256 * 1024, .io_thread = false});
    m.start(client);
    client.wait();
    const JobResult r = m.finish();
    REQUIRE_FALSE(r.read_err);
    REQUIRE(r.write_err == 0);
    for (unsigned ep = 1; ep <= 2; ++ep) {
      INFO("destination " << ep);
      const auto& w = order->offsets[ep];
      REQUIRE(w.size() == size / (256 * 1024));
      const auto wrong = std::is_sorted_until(w.begin(), w.end());
      INFO("first write out of order: #" << (wrong - w.begin()));
      REQUIRE(wrong == w.end());
      REQUIRE(b.disks_[ep] == originals[0]);
    }
  }
  REQUIRE(show(read_map(path).map.blocks()) == show({{0, size, finished}}));
}
