#include "kcopy/sub_job_plan.hpp"

#include <algorithm>

namespace kcopy {

SubJobPlan::SubJobPlan(std::uint64_t source_offset, std::uint64_t total_bytes, std::uint64_t io_size,
                       std::uint32_t alignment)
    : total_(total_bytes), io_size_(io_size) {
  head_ = std::min<std::uint64_t>((alignment - source_offset % alignment) % alignment, total_bytes);
  const std::uint64_t body = total_ - head_;
  count_ = (head_ ? 1 : 0) + (body + io_size_ - 1) / io_size_;
}

Extent SubJobPlan::at(std::uint64_t index) const {
  if (head_) {
    if (index == 0) return {0, head_};
    --index;
  }
  const std::uint64_t offset = head_ + index * io_size_;
  return {offset, std::min(io_size_, total_ - offset)};
}

}  // namespace kcopy
