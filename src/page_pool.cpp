#include "kcopy/page_pool.hpp"

#include <algorithm>
#include <cassert>
#include <cstdlib>
#include <string>

#include "kcopy/error.hpp"
#include "kcopy/units.hpp"

namespace kcopy {

namespace {
std::uint64_t pages_of(std::uint64_t bytes) { return (bytes + page_size - 1) / page_size; }
}  // namespace

std::size_t PagePool::capacity_for(std::uint64_t pages, std::uint64_t bytes) {
  return static_cast<std::size_t>(pages / std::max<std::uint64_t>(pages_of(bytes), 1));
}

void PagePool::FreeDeleter::operator()(std::byte* p) const { std::free(p); }

PagePool::PagePool(std::uint64_t pages) : pages_(pages), free_pages_(pages) {
  if (pages == 0) throw Error("a page pool needs at least 1 page");
  if (pages > (UINT64_MAX / page_size) || pages * page_size > SIZE_MAX)
    throw Error("a page pool of " + std::to_string(pages) + " pages is too large");
  used_.resize((pages + 63) / 64);
  void* raw = nullptr;
  if (posix_memalign(&raw, page_size, pages * page_size) != 0)
    throw Error("cannot allocate the page pool (" + std::to_string(pages * page_size) + " bytes)");
  memory_.reset(static_cast<std::byte*>(raw));
}

std::span<std::byte> PagePool::get(std::uint64_t bytes) {
  const std::uint64_t need = pages_of(bytes);
  if (need == 0 || need > free_pages_) return {};
  // Next fit: from the cursor to the end, then from the start; a run never wraps.
  for (std::uint64_t pass = 0, from = cursor_; pass < 2; ++pass, from = 0) {
    std::uint64_t run = 0;
    for (std::uint64_t p = from; p < pages_;) {
      if (run == 0 && p % 64 == 0 && used_[p / 64] == ~std::uint64_t{0}) {
        p += 64;  // a whole word in use
        continue;
      }
      run = used(p) ? 0 : run + 1;
      ++p;
      if (run == need) {
        const std::uint64_t first = p - need;
        mark(first, need, true);
        cursor_ = p == pages_ ? 0 : p;
        return {memory_.get() + first * page_size, bytes};
      }
    }
  }
  return {};
}

void PagePool::put(std::span<std::byte> buffer) {
  const auto first = static_cast<std::uint64_t>(buffer.data() - memory_.get()) / page_size;
  mark(first, pages_of(buffer.size()), false);
}

void PagePool::mark(std::uint64_t first, std::uint64_t count, bool in_use) {
  for (std::uint64_t p = first; p < first + count; ++p) {
    assert(used(p) != in_use);
    const std::uint64_t bit = std::uint64_t{1} << (p % 64);
    used_[p / 64] = in_use ? used_[p / 64] | bit : used_[p / 64] & ~bit;
  }
  free_pages_ = in_use ? free_pages_ - count : free_pages_ + count;
}

std::span<std::byte> PagePool::memory() const { return {memory_.get(), pages_ * page_size}; }

}  // namespace kcopy
