#pragma once
// The page pool: every data buffer kcopy uses, allocated up front
// (kcopyd_client_create's reserved pages, dm_kcopyd_client->pages).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <span>
#include <vector>

namespace kcopy {

/// `pages` 4 KiB pages, carved into equal page-aligned buffers of `buffer_bytes`
/// each (one buffer holds one sub-job's data). Allocated once at construction;
/// get() and put() never allocate, never throw, and are O(1).
///
/// Not thread-safe: the engine's I/O loop is its only user.
class PagePool {
 public:
  /// Throws kcopy::Error if `pages` is 0, `buffer_bytes` is 0 or not a multiple
  /// of 512, `buffer_bytes` exceeds the pool (pages * 4096), or memory cannot be had.
  PagePool(std::uint64_t pages, std::uint64_t buffer_bytes);

  /// Takes one free buffer (buffer_bytes long, aligned to 4096), or an empty span
  /// when all are in use. The buffer stays valid until put() or the pool's end.
  std::span<std::byte> get();
  /// Returns a buffer obtained from get(). Each buffer must be put exactly once.
  void put(std::span<std::byte> buffer);

  /// How many buffers a pool of `pages` pages in buffers of `buffer_bytes` holds
  /// (each buffer is rounded up to whole pages), without allocating it.
  static std::size_t capacity_for(std::uint64_t pages, std::uint64_t buffer_bytes);

  /// How many buffers the pool holds in all, and how many are free now.
  std::size_t capacity() const { return capacity_; }
  std::size_t available() const { return free_.size(); }
  std::uint64_t buffer_bytes() const { return buffer_bytes_; }
  /// The whole allocation, every buffer get() hands out included (capacity()
  /// buffers, each rounded up to whole pages; page-aligned). Owned by the pool;
  /// valid until its end. For IoBackend::register_buffers.
  std::span<std::byte> memory() const;

 private:
  struct FreeDeleter {
    void operator()(std::byte* p) const;
  };
  std::unique_ptr<std::byte[], FreeDeleter> memory_;
  std::uint64_t buffer_bytes_;
  std::size_t capacity_;
  std::vector<std::byte*> free_;  // stack of free buffers; reserved to capacity_
};

}  // namespace kcopy
