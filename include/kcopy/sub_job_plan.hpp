#pragma once
// How a job is split into sub-jobs (dm-kcopyd's split_job / sub_job_size).

#include <cstdint>

namespace kcopy {

/// One sub-job's piece of the job, in bytes from the start of the job's range.
struct Extent {
  std::uint64_t offset = 0;
  std::uint64_t length = 0;
  bool operator==(const Extent&) const = default;
};

/// Splits a job of `total_bytes` into sub-jobs of at most `io_size` bytes that
/// cover it exactly once, in order. The first sub-job is shortened so that every
/// later one starts on an `alignment` boundary of the source (the source range
/// starts at byte `source_offset`): then only the head and the tail of the range
/// can be unaligned, and everything between goes by direct I/O.
///
/// `io_size` must be a positive multiple of `alignment`; `alignment` a power of two.
class SubJobPlan {
 public:
  SubJobPlan(std::uint64_t source_offset, std::uint64_t total_bytes, std::uint64_t io_size, std::uint32_t alignment);

  /// How many sub-jobs there are.
  std::uint64_t count() const { return count_; }
  /// Sub-job `index` (< count()).
  Extent at(std::uint64_t index) const;

 private:
  std::uint64_t total_;
  std::uint64_t io_size_;
  std::uint64_t head_;  // length of a shortened first sub-job, or 0 when none
  std::uint64_t count_;
};

}  // namespace kcopy
