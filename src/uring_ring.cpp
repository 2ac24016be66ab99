#include "kcopy/uring_ring.hpp"

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <utility>

#include "kcopy/error.hpp"

namespace kcopy {

namespace {

// Why io_uring_queue_init failed with -err, in the user's words.
std::string why_no_ring(int err) {
  switch (err) {
    case ENOSYS:
      return "this kernel has no io_uring (Linux 5.1 or later), or a seccomp filter hides it";
    case EPERM: {
      std::ifstream sysctl("/proc/sys/kernel/io_uring_disabled");
      int disabled = 0;
      if (sysctl >> disabled && disabled == 2) return "io_uring is disabled (/proc/sys/kernel/io_uring_disabled is 2)";
      if (disabled == 1)
        return "io_uring is restricted to the group in /proc/sys/kernel/io_uring_group "
               "(/proc/sys/kernel/io_uring_disabled is 1)";
      return "io_uring is not permitted here (a seccomp filter, as in many containers, or a security module)";
    }
    case ENOMEM:
      return "not enough memory for the rings (kernels before 5.12 charge them to RLIMIT_MEMLOCK: see ulimit -l)";
    case EINVAL:
      return "this kernel refused the ring's parameters (Invalid argument)";
    default:
      return std::strerror(err);
  }
}

}  // namespace

UringRing::UringRing(unsigned sq_entries, unsigned cq_entries) {
  io_uring_params params{};
  // CQSIZE: a CQ for every request in flight, not just 2 x SQ (Linux 5.5);
  // CLAMP: the kernel's maxima rather than EINVAL (Linux 5.6).
  params.flags = IORING_SETUP_CQSIZE | IORING_SETUP_CLAMP;
  params.cq_entries = cq_entries;
  int rc = io_uring_queue_init_params(sq_entries, &ring_, &params);
  if (rc == -EINVAL) {
    // Older kernels know neither flag: take the default CQ (2 x SQ); the
    // backend keeps no more requests in the kernel than cq_entries() says.
    params = io_uring_params{};
    rc = io_uring_queue_init_params(sq_entries, &ring_, &params);
  }
  if (rc < 0) throw Error("cannot set up io_uring: " + why_no_ring(-rc));
  live_ = true;
}

UringRing::UringRing(UringRing&& other) noexcept
    : ring_(other.ring_),  // the struct only points at the kernel's mappings: copying moves them
      live_(std::exchange(other.live_, false)),
      buffers_(other.buffers_) {}

UringRing::~UringRing() {
  if (!live_) return;
  io_uring_queue_exit(&ring_);
}

int UringRing::submit() {
  for (;;) {
    const int rc = io_uring_submit(&ring_);
    if (rc != -EINTR) return rc;
  }
}

int UringRing::wait(unsigned nr) {
  for (;;) {
    io_uring_cqe* cqe = nullptr;
    const int rc = io_uring_wait_cqe_nr(&ring_, &cqe, nr);
    if (rc != -EINTR) return rc;
  }
}

bool UringRing::register_buffers(std::span<const iovec> iovecs) {
  if (buffers_) io_uring_unregister_buffers(&ring_);
  buffers_ = io_uring_register_buffers(&ring_, iovecs.data(), static_cast<unsigned>(iovecs.size())) == 0;
  return buffers_;
}

bool UringRing::register_eventfd(int fd) { return io_uring_register_eventfd(&ring_, fd) == 0; }

}  // namespace kcopy
