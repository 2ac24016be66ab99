#pragma once
// The page pool: every data buffer kcopy uses, allocated up front
// (kcopyd_client_create's reserved pages, dm_kcopyd_client->pages).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace kcopy {

/// `pages` 4 KiB pages in one page-aligned allocation, handed out as runs of
/// contiguous pages: a sub-job takes the pages its bytes need, as dm-kcopyd's
/// kcopyd_get_pages takes nr_pages for a job, so small jobs (a 64 KiB region of
/// dm-mirror) share the pool with large ones. Allocated once at construction;
/// get() and put() never allocate and never throw.
///
/// get() is next-fit over a bitmap of used pages: it starts where the last run
/// ended, so equal-sized runs taken and returned in turn (a large copy) cost one
/// step each; a pool fragmented by mixed sizes costs a scan of its bitmap
/// (pages / 64 words).
///
/// Not thread-safe: the engine's I/O loop is its only user.
class PagePool {
 public:
  /// Throws kcopy::Error if `pages` is 0 or too large, or the memory cannot be had.
  explicit PagePool(std::uint64_t pages);

  /// Takes a run of the ceil(bytes / 4096) pages `bytes` (> 0) needs and
  /// returns its first `bytes` bytes (page-aligned), or an empty span when no
  /// run that long is free. Valid until put() or the pool's end.
  std::span<std::byte> get(std::uint64_t bytes);
  /// Returns a span obtained from get(), exactly once.
  void put(std::span<std::byte> buffer);

  /// How many runs of `bytes` each (rounded up to whole pages) a pool of
  /// `pages` pages holds at once, without allocating it.
  static std::size_t capacity_for(std::uint64_t pages, std::uint64_t bytes);

  std::uint64_t pages() const { return pages_; }
  std::uint64_t free_pages() const { return free_pages_; }
  /// The whole allocation (pages() pages, page-aligned): every span get() hands
  /// out lies inside it. Owned by the pool; valid until its end. For
  /// IoBackend::register_buffers.
  std::span<std::byte> memory() const;

 private:
  struct FreeDeleter {
    void operator()(std::byte* p) const;
  };
  bool used(std::uint64_t page) const { return (used_[page / 64] >> (page % 64)) & 1; }
  void mark(std::uint64_t first, std::uint64_t count, bool in_use);

  std::unique_ptr<std::byte[], FreeDeleter> memory_;
  std::uint64_t pages_;
  std::uint64_t free_pages_;
  std::vector<std::uint64_t> used_;  // bit p: page p is handed out
  std::uint64_t cursor_ = 0;         // where the next search starts: the end of the last run taken
};

}  // namespace kcopy
