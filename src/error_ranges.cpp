#include "kcopy/error_ranges.hpp"

#include <algorithm>

namespace kcopy {

void ErrorRanges::overflow(std::uint64_t sector, std::uint64_t count) {
  overflow_from_ = std::min(overflow_from_, sector);
  overflow_sectors_ += count;
}

void ErrorRanges::add(std::uint64_t sector, std::uint64_t count, int error) {
  error = error_cause(error);  // a dead server's requests fail in several ways: one cause
  if (sector >= overflow_from_) return overflow(sector, count);
  const auto next = std::upper_bound(ranges_.begin(), ranges_.end(), sector,
                                     [](std::uint64_t s, const ErrorRange& r) { return s < r.sector; });
  const bool joins_next = next != ranges_.end() && next->error == error && sector + count == next->sector;
  if (next != ranges_.begin()) {
    ErrorRange& prev = *std::prev(next);
    if (prev.error == error && prev.sector + prev.count == sector) {
      prev.count += count;
      if (joins_next) {  // the new piece closed the gap between two ranges
        prev.count += next->count;
        ranges_.erase(next);
      }
      return;
    }
  }
  if (joins_next) {
    next->sector = sector;
    next->count += count;
    return;
  }
  if (ranges_.size() < ranges_.capacity()) {
    ranges_.insert(next, {sector, count, error});
    return;
  }
  // Full: keep the lowest ranges exact, count what lies past them.
  if (next == ranges_.end()) return overflow(sector, count);
  const std::ptrdiff_t at = next - ranges_.begin();
  overflow(ranges_.back().sector, ranges_.back().count);
  ranges_.pop_back();
  ranges_.insert(ranges_.begin() + at, {sector, count, error});
}

}  // namespace kcopy
