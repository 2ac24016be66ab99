#include "kcopy/page_pool.hpp"

#include <cstdlib>
#include <string>

#include "kcopy/error.hpp"
#include "kcopy/units.hpp"

namespace kcopy {

namespace {
// Each buffer is rounded up to whole pages so that every buffer starts page-aligned.
std::uint64_t stride_of(std::uint64_t buffer_bytes) { return (buffer_bytes + page_size - 1) / page_size * page_size; }
}  // namespace

std::size_t PagePool::capacity_for(std::uint64_t pages, std::uint64_t buffer_bytes) {
  return static_cast<std::size_t>(pages * page_size / stride_of(buffer_bytes));
}

void PagePool::FreeDeleter::operator()(std::byte* p) const { std::free(p); }

PagePool::PagePool(std::uint64_t pages, std::uint64_t buffer_bytes) : buffer_bytes_(buffer_bytes) {
  if (pages == 0) throw Error("--pages must be at least 1");
  if (buffer_bytes == 0 || buffer_bytes % sector_size != 0)
    throw Error("--io-size must be a positive whole number of 512-byte sectors");
  if (pages > (UINT64_MAX / page_size)) throw Error("--pages " + std::to_string(pages) + " is too large");
  const std::uint64_t pool_bytes = pages * page_size;
  if (buffer_bytes > pool_bytes)
    throw Error("--io-size " + std::to_string(buffer_bytes) + " bytes does not fit in --pages " +
                std::to_string(pages) + " (" + std::to_string(pool_bytes) + " bytes)");
  capacity_ = capacity_for(pages, buffer_bytes);
  const std::uint64_t stride = stride_of(buffer_bytes);
  void* raw = nullptr;
  if (posix_memalign(&raw, page_size, stride * capacity_) != 0)
    throw Error("cannot allocate the page pool (" + std::to_string(stride * capacity_) + " bytes)");
  memory_.reset(static_cast<std::byte*>(raw));
  free_.reserve(capacity_);
  for (std::size_t i = capacity_; i-- > 0;) free_.push_back(memory_.get() + i * stride);
}

std::span<std::byte> PagePool::get() {
  if (free_.empty()) return {};
  std::byte* p = free_.back();
  free_.pop_back();
  return {p, buffer_bytes_};
}

void PagePool::put(std::span<std::byte> buffer) { free_.push_back(buffer.data()); }

std::span<std::byte> PagePool::memory() const { return {memory_.get(), capacity_ * stride_of(buffer_bytes_)}; }

}  // namespace kcopy
