#pragma once
// A move-only owner of one io_uring instance (io_uring_queue_init_params /
// io_uring_queue_exit), after Seastar's RAII owners and fio's engines/io_uring.c.

#include <liburing.h>
#include <sys/uio.h>

#include <span>

namespace kcopy {

/// Owns a struct io_uring: its submission (SQ) and completion (CQ) rings, and
/// the buffers registered with it. Used from one thread at a time.
class UringRing {
 public:
  /// Sets up a ring of `sq_entries` SQEs and at least `cq_entries` CQEs (the
  /// kernel rounds both up to powers of two, and clamps them to its maxima:
  /// sq_entries() and cq_entries() say what was granted). Throws kcopy::Error
  /// saying why io_uring cannot be had: a kernel without it (ENOSYS), a
  /// seccomp filter or /proc/sys/kernel/io_uring_disabled (EPERM), memory or
  /// RLIMIT_MEMLOCK (ENOMEM), or the errno.
  UringRing(unsigned sq_entries, unsigned cq_entries);
  UringRing(UringRing&& other) noexcept;
  UringRing& operator=(UringRing&&) = delete;
  UringRing(const UringRing&) = delete;
  ~UringRing();

  io_uring* get() { return &ring_; }
  unsigned sq_entries() const { return ring_.sq.ring_entries; }
  unsigned cq_entries() const { return ring_.cq.ring_entries; }

  /// io_uring_submit of the SQEs prepared since the last call, retried on EINTR.
  /// Returns how many the kernel consumed (from the front; the rest stay in the
  /// SQ ring for the next call), or -errno when it took none: -EAGAIN or -EBUSY
  /// mean "reap, then retry"; others are the ring's own errors. A consumed SQE
  /// that fails (bad fd, bad address) comes back as a CQE with -errno.
  int submit();

  /// Waits until at least `nr` CQEs are in the CQ ring (io_uring_wait_cqe_nr),
  /// retried on EINTR so that a signal loses nothing. Returns 0 or -errno.
  int wait(unsigned nr);

  /// Takes back the SQEs that submit() handed over but the kernel did not
  /// consume (after an error other than a partial submit): calls
  /// `on_each(user_data)` for each, oldest first, and rewinds the SQ tail so
  /// the kernel never sees them. Safe because the ring has no SQ polling thread:
  /// the kernel reads the SQ ring only inside io_uring_enter.
  template <class F>
  void take_back_unsubmitted(F&& on_each) {
    io_uring_sq& sq = ring_.sq;
    const unsigned head = io_uring_smp_load_acquire(sq.khead);
    for (unsigned i = head; i != sq.sqe_tail; ++i) on_each(sq.sqes[i & sq.ring_mask].user_data);
    sq.sqe_head = sq.sqe_tail = head;
    io_uring_smp_store_release(sq.ktail, head);
  }

  /// Registers `iovecs` as fixed buffers (index i is iovecs[i], each at most
  /// 1 GiB): true on success. Pins the memory (RLIMIT_MEMLOCK without
  /// CAP_IPC_LOCK); the memory must stay mapped while requests use it.
  bool register_buffers(std::span<const iovec> iovecs);
  /// Registers `fd`, an eventfd, to be signalled on every CQE posted from now
  /// on (io_uring_register_eventfd): true on success. The ring keeps its own
  /// reference to the eventfd until it is torn down.
  bool register_eventfd(int fd);

 private:
  io_uring ring_{};
  bool live_ = false;
  bool buffers_ = false;
};

}  // namespace kcopy
