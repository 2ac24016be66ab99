#include "kcopy/error_ranges.hpp"

#include <algorithm>

namespace kcopy {

void ErrorRanges::sort_and_merge() {
  std::sort(ranges_.begin(), ranges_.end(), [](const auto& a, const auto& b) { return a.sector < b.sector; });
  std::size_t out = 0;
  for (std::size_t i = 0; i < ranges_.size(); ++i) {
    if (out > 0) {
      ErrorRange& last = ranges_[out - 1];
      if (last.error == ranges_[i].error && last.sector + last.count == ranges_[i].sector) {
        last.count += ranges_[i].count;
        continue;
      }
    }
    ranges_[out++] = ranges_[i];
  }
  ranges_.resize(out);
}

}  // namespace kcopy
