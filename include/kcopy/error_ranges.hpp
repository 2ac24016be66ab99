#pragma once
// The failed sector ranges of one endpoint, as a job collects them.

#include <cstddef>
#include <cstdint>
#include <vector>

namespace kcopy {

/// A range of sectors that failed, on one endpoint.
struct ErrorRange {
  std::uint64_t sector = 0;  ///< first failed sector, on that endpoint
  std::uint64_t count = 0;   ///< sectors
  int error = 0;             ///< positive errno
  bool operator==(const ErrorRange&) const = default;
};

/// A bounded list of failed ranges. Room for `capacity` ranges is allocated up
/// front; add() never allocates (a range adjacent to the last one with the same
/// error is merged into it; past capacity, ranges are only counted).
class ErrorRanges {
 public:
  ErrorRanges() = default;
  explicit ErrorRanges(std::size_t capacity) { ranges_.reserve(capacity); }

  /// Records `count` sectors from `sector` that failed with `error` (positive errno).
  void add(std::uint64_t sector, std::uint64_t count, int error) {
    if (!ranges_.empty()) {
      ErrorRange& last = ranges_.back();
      if (last.error == error && last.sector + last.count == sector) {
        last.count += count;
        return;
      }
    }
    if (ranges_.size() < ranges_.capacity())
      ranges_.push_back({sector, count, error});
    else
      ++not_listed_;
  }

  /// Sorts by sector and merges adjacent ranges with the same error (ranges
  /// arrive out of order when sub-jobs complete out of order). In place.
  void sort_and_merge();

  const std::vector<ErrorRange>& ranges() const { return ranges_; }
  bool empty() const { return ranges_.empty() && not_listed_ == 0; }
  /// Ranges that did not fit in the list.
  std::uint64_t not_listed() const { return not_listed_; }

 private:
  std::vector<ErrorRange> ranges_;
  std::uint64_t not_listed_ = 0;
};

}  // namespace kcopy
