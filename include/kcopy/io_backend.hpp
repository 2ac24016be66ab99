#pragma once
// The I/O backend: how the engine reaches its endpoints. One implementation per
// kind (io_uring or libaio on real devices, synchronous pread/pwrite, and the
// tests' fault injector), like nbdcopy's one ops table per endpoint kind.

#include <cstddef>
#include <cstdint>
#include <span>

namespace kcopy {

enum class IoOp : std::uint8_t { read, write };

/// One read or write in flight. Owned by the engine (allocated up front, one per
/// sub-job and endpoint); the backend only borrows it from submit() until it is
/// handed back by reap().
struct IoRequest {
  IoOp op = IoOp::read;
  unsigned endpoint = 0;        ///< index into the backend's endpoint table
  std::span<std::byte> buffer;  ///< the bytes still to transfer (page pool memory)
  std::uint64_t offset = 0;     ///< byte offset on the endpoint of buffer[0]
  long result = 0;              ///< set by the backend: bytes transferred (may be
                                ///< short, 0 at end of file) or -errno
  void* owner = nullptr;        ///< the engine's sub-job
  unsigned tag = 0;             ///< the engine's own use
};

/// Where an endpoint's bytes lie: endpoints on one medium (a loop device and its
/// backing file, a partition and its whole disk, or one device) can overlap, at
/// byte `offset + x` of the medium for byte x of the endpoint.
struct Placement {
  unsigned medium = 0;
  std::uint64_t offset = 0;  ///< bytes
};

/// The operations an I/O backend provides. Called only from the thread running
/// the engine's I/O loop; no call throws or allocates.
class IoBackend {
 public:
  virtual ~IoBackend() = default;

  /// Called once by the client, before any submit, with the page pool's whole
  /// memory: every request's buffer lies inside it. A backend may register it
  /// with the kernel (io_uring fixed buffers); the default does nothing. The
  /// memory stays valid while requests are in flight. Never throws: a backend
  /// that cannot register it works without.
  virtual void register_buffers(std::span<std::byte> /*memory*/) {}

  /// Starts every request in `requests` (the iocbs of one io_submit). All are
  /// accepted: a request the kernel refuses comes back from reap() with -errno,
  /// and one it cannot take yet (EAGAIN) is retried by the backend. The requests
  /// and their buffers must stay valid until reap() hands them back.
  virtual void submit(std::span<IoRequest* const> requests) = 0;

  /// Waits for at least `min_completions` (and at most out.size()) completed
  /// requests and stores them in `out`; returns how many. Each submitted request
  /// comes back exactly once, with `result` set. Returns 0 only if nothing is in
  /// flight.
  virtual std::size_t reap(std::span<IoRequest*> out, std::size_t min_completions) = 0;

  /// fdatasync of one endpoint: 0 or -errno.
  virtual int flush(unsigned endpoint) = 0;

  /// The byte alignment that offsets and lengths on `endpoint` should keep to be
  /// done by direct I/O (the logical block size, or 1). Unaligned requests still
  /// work, through the page cache.
  virtual std::uint32_t alignment(unsigned endpoint) const = 0;

  /// Where `endpoint`'s bytes lie (for overlap: memmove order). By default each
  /// endpoint is a medium of its own.
  virtual Placement placement(unsigned endpoint) const { return {endpoint, 0}; }
};

}  // namespace kcopy
