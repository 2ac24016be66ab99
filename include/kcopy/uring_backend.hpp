#pragma once
// The io_uring backend: asynchronous O_DIRECT (or page-cache) I/O on opened
// devices through one io_uring, with the page pool registered as fixed buffers
// (fio's engines/io_uring.c: the backend owns only kernel state; the engine owns
// requests). Preferred to libaio where the kernel allows it: tearing a ring down
// does not wait for an RCU grace period as io_destroy does (about 30 ms at exit).
// The descriptors are not registered as fixed files: after a SIGKILL the ring's
// registered files live on until the kernel's asynchronous teardown ends (tens
// to hundreds of ms), keeping a destination's O_EXCL claim, so that a rerun at
// once found it "in use"; and they bought no measurable speed.

#include <sys/uio.h>

#include <cstddef>
#include <vector>

#include "kcopy/device.hpp"
#include "kcopy/file_desc.hpp"
#include "kcopy/io_backend.hpp"
#include "kcopy/uring_ring.hpp"
#include "kcopy/zero_offload.hpp"

namespace kcopy {

/// IoBackend on io_uring. Endpoint i of the IoRequests is endpoints[i]; offsets
/// and lengths are bytes. A request's IoRequest* travels in its SQE's user_data.
class UringBackend final : public IoBackend {
 public:
  /// Sets up a ring for `max_requests` requests in flight: min(max_requests
  /// rounded up to a power of two, 4096) SQEs and a CQ for all of them; more
  /// than fit in the SQ ring wait inside the backend and are submitted as room
  /// is made. Requests name the endpoints' descriptors (no fixed files: see
  /// above). Everything submit() and reap() need is allocated here.
  /// Throws kcopy::Error "cannot set up io_uring: <why>" when the kernel has no
  /// io_uring, forbids it (io_uring_disabled, seccomp) or is out of memory:
  /// the caller can fall back to AioBackend and show the message.
  UringBackend(std::vector<FdEndpoint> endpoints, std::size_t max_requests);

  /// Registers `memory` (the page pool) as fixed buffers, in pieces of at most
  /// 1 GiB: requests whose buffer lies inside one piece use READ_FIXED /
  /// WRITE_FIXED, the rest plain READ / WRITE. If the kernel refuses (e.g.
  /// RLIMIT_MEMLOCK without CAP_IPC_LOCK), every request uses plain ones.
  /// Pins every page of `memory` now, faulting in those never touched (about
  /// 0.5 ms per MiB on a VM: a large pool costs more than a small copy saves).
  /// Call before any submit; allocates; never throws but std::bad_alloc.
  void register_buffers(std::span<std::byte> memory) override;

  /// As IoBackend says. A request's result is its CQE's: bytes (short at end
  /// of file, and at most 1 GiB per request) or -errno, also for a request the
  /// kernel refuses (bad descriptor, misaligned O_DIRECT). Zero and punch
  /// requests are done here by fallocate where the endpoint can (ZeroOffload,
  /// synchronously: simpler than IORING_OP_FALLOCATE, whose "not supported"
  /// would come back in a CQE to be resubmitted as a write) and come back
  /// from the next reap(); elsewhere their buffer of zeroes is written like
  /// any write.
  void submit(std::span<IoRequest* const> requests) override;
  /// As IoBackend says; waits in io_uring_enter, and a signal does not end the
  /// wait (as AioContext::get_events).
  std::size_t reap(std::span<IoRequest*> out, std::size_t min_completions) override;
  /// As IoBackend says; -ENOTSUP for a FUSE file (FdEndpoint::on_fuse), which
  /// io_uring must not serve.
  int add_endpoint(const FdEndpoint& endpoint) override;
  /// fdatasync(2) of the endpoint's direct descriptor, done here synchronously
  /// (as AioBackend does): 0 or -errno.
  int flush(unsigned endpoint) override;
  std::uint32_t alignment(unsigned endpoint) const override { return endpoints_[endpoint].alignment; }
  Placement placement(unsigned endpoint) const override { return endpoints_[endpoint].placement; }
  int drop_cache(unsigned endpoint, std::uint64_t offset, std::uint64_t length) override {
    return endpoints_[endpoint].drop_cache(offset, length);
  }
  std::uint64_t next_data(unsigned endpoint, std::uint64_t offset) override {
    return endpoints_[endpoint].next_data(offset);
  }

  /// One descriptor: an eventfd (made and registered with the ring by the
  /// first poll_fds() call) that every completion from then on signals;
  /// reap() reads it empty. -errno if it cannot be had (the caller then waits
  /// in reap()).
  std::size_t poll_fd_count() const override { return 1; }
  int poll_fds(std::span<pollfd> out) override;

  /// Whether the memory given to register_buffers() is registered as fixed
  /// buffers (for diagnostics and tests).
  bool fixed_buffers() const { return !fixed_buffers_.empty(); }
  /// How many SQEs the ring has.
  unsigned sq_entries() const { return ring_.sq_entries(); }

 private:
  void submit_pending();
  void prepare(io_uring_sqe* sqe, IoRequest* req);
  int fixed_buffer_of(std::span<const std::byte> buffer) const;
  void refuse_unsubmitted(int err);

  std::vector<FdEndpoint> endpoints_;
  ZeroOffload zero_;
  UringRing ring_;
  std::size_t max_in_kernel_;         // at most the CQ size: completions never overflow it
  std::vector<iovec> fixed_buffers_;  // registered pieces of the page pool, 1 GiB each but the last

  // Requests accepted by submit(): a FIFO of pending_count_ from pending_head_
  // in pending_ (sized max_requests), then `queued_` in the SQ ring that the
  // kernel has not consumed, then `in_kernel_` consumed but not yet reaped.
  std::vector<IoRequest*> pending_;
  std::size_t pending_head_ = 0;
  std::size_t pending_count_ = 0;
  std::size_t queued_ = 0;
  std::size_t in_kernel_ = 0;
  // Completed without the ring, waiting for reap(): refused before reaching
  // the kernel (-errno), or zeroed in place by submit().
  std::vector<IoRequest*> completed_;
  FileDesc eventfd_;  // signalled on each CQE once poll_fds() made it; else none
};

}  // namespace kcopy
