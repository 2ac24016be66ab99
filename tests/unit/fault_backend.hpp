#pragma once
// A fault-injecting IoBackend for the engine's unit tests: endpoints are byte
// vectors in memory; requests complete in a shuffled order, may be cut short, and
// fail with a chosen errno where a fault covers them. Zero and punch requests
// zero their bytes in memory (as a device with a write-zeroes offload would) and
// are counted apart, so that a test can tell zeroing from writing.

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <mutex>
#include <random>
#include <vector>

#include "kcopy/io_backend.hpp"

namespace kcopy::test {

struct Fault {
  unsigned endpoint;
  IoOp op;                   // read, write, punch, or zero (zero also covers punch requests)
  std::uint64_t begin, end;  // bytes: a request touching [begin, end) fails
  int error;
  std::size_t min_length = 0;  // ... if it is at least this long (a merged request)
};

class FaultBackend final : public IoBackend {
 public:
  explicit FaultBackend(std::vector<std::vector<std::byte>> disks, unsigned seed = 1)
      : disks_(std::move(disks)), rng_(seed), writes_(disks_.size()), written_(disks_.size()), zeroed_(disks_.size()) {
    for (std::size_t i = 0; i < disks_.size(); ++i) written_[i].assign(disks_[i].size(), 0);
  }

  // --- knobs, set before the copy starts ---
  std::vector<Fault> faults;
  std::size_t short_cap = 0;  ///< when > 0, no transfer (zeroing too) moves more bytes than this
  int flush_error_on = -1;    ///< endpoint whose flush fails with EIO
  std::uint32_t align = 512;

  // --- what the test inspects after the copy ---
  std::vector<std::vector<std::byte>> disks_;
  std::size_t max_reads_in_flight = 0;
  std::size_t reads_submitted = 0;
  std::vector<std::size_t> write_submit_sizes;  ///< requests per submit() that held writes (zeroings count)
  std::vector<unsigned> flushed;
  std::size_t nonzero_zeroings = 0;  ///< zero/punch requests whose buffer held a non-zero byte

  /// How many times each byte of `endpoint` was written or zeroed (1 everywhere = exactly once).
  const std::vector<unsigned char>& written(unsigned endpoint) const { return written_[endpoint]; }
  /// Writes submitted to `endpoint` after one of its writes had failed.
  std::size_t writes_after_failure(unsigned endpoint) const { return writes_[endpoint].after_failure; }
  /// Bytes of `endpoint` made zero by zero or punch requests (a --sparse copy's holes).
  std::uint64_t zeroed_bytes(unsigned endpoint) const { return zeroed_[endpoint]; }

  void submit(std::span<IoRequest* const> requests) override {
    std::size_t writes = 0;
    for (IoRequest* r : requests) {
      pending_.push_back(r);
      if (r->op == IoOp::read) ++reads_submitted;
      if (is_write(r->op)) {
        ++writes;
        if (writes_[r->endpoint].failed) ++writes_[r->endpoint].after_failure;
      }
    }
    if (writes) write_submit_sizes.push_back(writes);
    const auto reads = std::count_if(pending_.begin(), pending_.end(), [](auto* r) { return r->op == IoOp::read; });
    max_reads_in_flight = std::max(max_reads_in_flight, static_cast<std::size_t>(reads));
  }

  std::size_t reap(std::span<IoRequest*> out, std::size_t min_completions) override {
    std::shuffle(pending_.begin(), pending_.end(), rng_);
    const std::size_t most = std::min(out.size(), pending_.size());
    const std::size_t least = std::min(min_completions, most);
    const std::size_t n = least + (most > least ? rng_() % (most - least + 1) : 0);
    for (std::size_t i = 0; i < n; ++i) {
      IoRequest* r = pending_.back();
      pending_.pop_back();
      complete(*r);
      out[i] = r;
    }
    return n;
  }

  int flush(unsigned endpoint) override {
    flushed.push_back(endpoint);
    return static_cast<int>(endpoint) == flush_error_on ? -EIO : 0;
  }
  std::uint32_t alignment(unsigned) const override { return align; }

 private:
  struct WriteLog {
    bool failed = false;
    std::size_t after_failure = 0;
  };

  void complete(IoRequest& r) {
    for (const Fault& f : faults) {
      const bool op_matches = f.op == r.op || (f.op == IoOp::zero && r.op == IoOp::punch);
      if (f.endpoint == r.endpoint && op_matches && r.offset < f.end && f.begin < r.offset + r.buffer.size() &&
          r.buffer.size() >= f.min_length) {
        r.result = -f.error;
        if (is_write(r.op)) writes_[r.endpoint].failed = true;
        return;
      }
    }
    auto& disk = disks_[r.endpoint];
    std::size_t n = r.buffer.size();
    if (short_cap) n = std::min(n, short_cap);
    if (r.offset >= disk.size()) n = 0;
    n = std::min<std::size_t>(n, disk.size() - std::min<std::size_t>(r.offset, disk.size()));
    switch (r.op) {
      case IoOp::read:
        std::memcpy(r.buffer.data(), disk.data() + r.offset, n);
        break;
      case IoOp::write:
        std::memcpy(disk.data() + r.offset, r.buffer.data(), n);
        break;
      case IoOp::zero:
      case IoOp::punch:
        if (std::any_of(r.buffer.begin(), r.buffer.end(), [](std::byte b) { return b != std::byte{0}; }))
          ++nonzero_zeroings;
        std::memset(disk.data() + r.offset, 0, n);
        zeroed_[r.endpoint] += n;
        break;
    }
    if (is_write(r.op))
      for (std::size_t i = 0; i < n; ++i) ++written_[r.endpoint][r.offset + i];
    r.result = static_cast<long>(n);
  }

  std::mt19937 rng_;
  std::vector<IoRequest*> pending_;
  std::vector<WriteLog> writes_;
  std::vector<std::vector<unsigned char>> written_;
  std::vector<std::uint64_t> zeroed_;
};

/// Lends a FaultBackend to a KcopydClient (which owns its backend), so that the
/// test can still look at it after the client is gone.
class Borrowed final : public IoBackend {
 public:
  explicit Borrowed(IoBackend& b) : b_(b) {}
  void submit(std::span<IoRequest* const> r) override { b_.submit(r); }
  std::size_t reap(std::span<IoRequest*> out, std::size_t min) override { return b_.reap(out, min); }
  int flush(unsigned e) override { return b_.flush(e); }
  std::uint32_t alignment(unsigned e) const override { return b_.alignment(e); }
  Placement placement(unsigned e) const override { return b_.placement(e); }
  std::uint64_t next_data(unsigned e, std::uint64_t offset) override { return b_.next_data(e, offset); }
  int drop_cache(unsigned e, std::uint64_t offset, std::uint64_t length) override {
    return b_.drop_cache(e, offset, length);
  }

 private:
  IoBackend& b_;
};

}  // namespace kcopy::test
