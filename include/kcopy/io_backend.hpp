#pragma once
// The I/O backend: how the engine reaches its endpoints. One implementation per
// kind (io_uring or libaio on real devices, synchronous pread/pwrite, and the
// tests' fault injector), like nbdcopy's one ops table per endpoint kind.

#include <poll.h>

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <span>

namespace kcopy {

/// What a request does to its byte range. `zero` and `punch` make the range
/// read as zeroes without transferring data where the endpoint can (see
/// IoRequest::make_zero); where it cannot, the backend writes their buffer (of
/// zeroes) instead, as an ordinary write.
enum class IoOp : std::uint8_t {
  read,
  write,
  zero,   ///< zeroes, allocated: fallocate(FALLOC_FL_ZERO_RANGE) (write-zeroes offload on block devices)
  punch,  ///< zeroes, deallocated where possible: fallocate(FALLOC_FL_PUNCH_HOLE) (a hole in a file)
};

/// Whether `op` changes the endpoint: a write, or zeroing (which may fall back to one).
constexpr bool is_write(IoOp op) { return op != IoOp::read; }

/// One read, write or zeroing in flight. Owned by the engine (allocated up front, one per
/// sub-job and endpoint); the backend only borrows it from submit() until it is
/// handed back by reap().
struct IoRequest {
  IoOp op = IoOp::read;
  unsigned endpoint = 0;        ///< index into the backend's endpoint table
  std::span<std::byte> buffer;  ///< the bytes still to transfer (page pool memory)
  std::uint64_t offset = 0;     ///< byte offset on the endpoint of buffer[0]
  long result = 0;              ///< set by the backend: bytes transferred (may be
                                ///< short, 0 at end of file) or -errno
  void* owner = nullptr;        ///< the engine's own: what the request belongs to

  /// Named factories (Seastar's make_read / make_write): a read of `buffer.size()`
  /// bytes into `buffer` from byte `offset` of `endpoint`, or a write of `buffer`
  /// there. The buffer is borrowed until the request comes back from reap().
  static IoRequest make_read(unsigned endpoint, std::span<std::byte> buffer, std::uint64_t offset, void* owner) {
    return {IoOp::read, endpoint, buffer, offset, 0, owner};
  }
  static IoRequest make_write(unsigned endpoint, std::span<std::byte> buffer, std::uint64_t offset, void* owner) {
    return {IoOp::write, endpoint, buffer, offset, 0, owner};
  }

  /// Requests that make `zeroes.size()` bytes from byte `offset` of `endpoint`
  /// read as zeroes: make_zero keeps them allocated (dm-kcopyd's
  /// REQ_OP_WRITE_ZEROES), make_punch deallocates them where it can (a hole in
  /// a file; an unmapping zeroout on a block device). `zeroes` must hold only
  /// zero bytes (one buffer may serve many requests at once, the backend only
  /// reads it): an endpoint that cannot do it in place, or a range not aligned
  /// to its logical block size and alignment(), gets `zeroes` written there
  /// instead (punch first tries zero; see ZeroOffload). Borrowed until the request comes
  /// back from reap(). `result`: bytes made zero (= zeroes.size() when done in
  /// place; a fallback write may be short, like any write) or -errno.
  static IoRequest make_zero(unsigned endpoint, std::span<std::byte> zeroes, std::uint64_t offset, void* owner) {
    return {IoOp::zero, endpoint, zeroes, offset, 0, owner};
  }
  static IoRequest make_punch(unsigned endpoint, std::span<std::byte> zeroes, std::uint64_t offset, void* owner) {
    return {IoOp::punch, endpoint, zeroes, offset, 0, owner};
  }
};

/// Where an endpoint's bytes lie: endpoints on one medium (a loop device and its
/// backing file, a partition and its whole disk, or one device) can overlap, at
/// byte `offset + x` of the medium for byte x of the endpoint.
struct Placement {
  unsigned medium = 0;
  std::uint64_t offset = 0;  ///< bytes
};

/// The most endpoints a backend holds (room reserved up front: see add_endpoint).
inline constexpr std::size_t max_endpoints = 256;

struct FdEndpoint;

/// The operations an I/O backend provides. Called only from the thread running
/// the engine's I/O loop (but add_endpoint); no call throws or allocates.
class IoBackend {
 public:
  virtual ~IoBackend() = default;

  /// Adds an endpoint after construction (the library's devices, opened while a
  /// client runs) and returns its index, or -ENFILE when max_endpoints are
  /// there, or -ENOTSUP for a backend without file endpoints. May run on
  /// another thread while the I/O loop uses the backend, but never
  /// concurrently with another add_endpoint, and the endpoint is used only by
  /// requests submitted after it returned (the caller's lock orders them):
  /// implementations reserve room for max_endpoints up front, so adding one
  /// never moves another. The endpoint's descriptors are borrowed (its Device
  /// must outlive the requests on it). Not registered as a fixed file: that
  /// would keep the device, and its O_EXCL claim, open after the caller closes it.
  virtual int add_endpoint(const FdEndpoint& /*endpoint*/) { return -ENOTSUP; }

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

  /// Makes the next read of bytes [offset, offset + length) of `endpoint` come
  /// from the device, not from a cache of what was just written (copy_verify
  /// calls it before reading a destination back). Synchronous; 0 or -errno. By
  /// default there is no cache to drop.
  virtual int drop_cache(unsigned /*endpoint*/, std::uint64_t /*offset*/, std::uint64_t /*length*/) { return 0; }

  /// The byte offset of the first data at or after byte `offset` of
  /// `endpoint` (SEEK_DATA): copy_sparse skips reading holes. Synchronous. By
  /// default everything is data: `offset`.
  virtual std::uint64_t next_data(unsigned /*endpoint*/, std::uint64_t offset) { return offset; }

  /// Where `endpoint`'s bytes lie (for overlap: memmove order). By default each
  /// endpoint is a medium of its own.
  virtual Placement placement(unsigned endpoint) const { return {endpoint, 0}; }

  // Waiting on several backends at once (MultiplexBackend: local devices and NBD
  // exports in one copy). Blocking in one backend's reap() would starve the
  // others, so such a caller calls reap(out, 0) on each -- which never blocks: it
  // hands back what has completed, after making whatever progress needs no
  // waiting -- and then waits in one poll(2) on all their poll_fds(), for at
  // most the smallest poll_timeout_ms(). A backend that answers neither is
  // waited for in its own reap() with min_completions > 0.

  /// The most descriptors poll_fds() stores, so that the caller can size its
  /// pollfd array up front. 0 by default.
  virtual std::size_t poll_fd_count() const { return 0; }

  /// Stores in `out` (room for poll_fd_count()) the descriptors to poll(2),
  /// with `events` set and `revents` cleared, for the requests in flight: when
  /// one is ready, reap(out, 0) has something to do. Returns how many were
  /// stored (0: none of the requests in flight needs waiting for), or -ENOTSUP
  /// (the default) for a backend that cannot be waited on this way. The first
  /// call may set the descriptors up (an eventfd that io_uring or libaio then
  /// signals on every completion): make it before the first submit(), so that
  /// no completion goes unsignalled. The descriptors stay the backend's (valid
  /// until it is destroyed); the caller only polls them. No allocation; never throws.
  virtual int poll_fds(std::span<pollfd> /*out*/) { return -ENOTSUP; }

  /// Milliseconds a caller may wait in poll(2) on poll_fds() before it must call
  /// reap(out, 0) again though no descriptor is ready: the backend's own
  /// deadline (NbdBackend's stall timeout), or -1 (the default): none.
  virtual int poll_timeout_ms() const { return -1; }
};

}  // namespace kcopy
