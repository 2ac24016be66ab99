#pragma once
// Zeroing in place for the file backends (sync, libaio, io_uring): the zero and
// punch requests of IoRequest::make_zero / make_punch done by fallocate(2)
// instead of writing zeroes. Each endpoint's answer is probed once and
// remembered when it says "not supported", with a plain write as the fallback
// (nbdcopy's file_zero with can_zero_range / can_punch_hole). dm-kcopyd's
// REQ_OP_WRITE_ZEROES jobs are the zero requests; punch has no counterpart there.

#include <cstdint>
#include <optional>
#include <span>
#include <vector>

#include "kcopy/device.hpp"
#include "kcopy/io_backend.hpp"

namespace kcopy {

/// What a backend's endpoints can zero in place, and the call that does it.
/// Used from the I/O loop's thread only.
///
/// - zero:  fallocate(FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE). On a block
///   device Linux turns it into blkdev_issue_zeroout (the device's write-zeroes
///   offload); on a file, unwritten extents.
/// - punch: fallocate(FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE). On a file a
///   hole; on a block device a zeroout that may unmap (and fails rather than
///   write zeroes itself). Where punch cannot be done, zero is tried.
///
/// KEEP_SIZE: a range past the end of a regular file does not grow it (the
/// engine grows destination files first: Device::grow_to).
class ZeroOffload {
 public:
  /// Looks at each endpoint once: fstat of its direct descriptor; for a block
  /// device its logical block size (BLKSSZGET) and whether it has a write-zeroes
  /// offload at all (sysfs queue/write_zeroes_max_bytes; without one the kernel
  /// would write the zeroes itself inside fallocate, blocking the I/O loop, so
  /// such a device gets ordinary asynchronous writes). Setup: allocates; never
  /// throws but std::bad_alloc. A descriptor that is not open is kept as it is
  /// (its requests fail with -EBADF).
  explicit ZeroOffload(std::span<const FdEndpoint> endpoints);
  /// Looks at one more endpoint, as the constructor does (IoBackend::add_endpoint:
  /// room for max_endpoints is reserved, so adding moves none; the caller checks the count).
  void add(const FdEndpoint& endpoint);

  /// For a zero or punch request: makes its range (req.buffer.size() bytes at
  /// byte req.offset of req.endpoint) read as zeroes by fallocate on the
  /// endpoint's direct descriptor, synchronously (fallocate cannot be queued
  /// with libaio), sets req.result to the size or to -errno (a real failure:
  /// EIO, ENOSPC, EBADF, ...) and returns true. Returns false, changing
  /// nothing, when the request must be written instead (req.buffer, through
  /// FdEndpoint::fd_for, as a write):
  ///  - a read or write, or an empty request;
  ///  - the endpoint has said it cannot (EOPNOTSUPP, ENOSYS, ENOTTY, ENODEV,
  ///    ESPIPE): remembered for that endpoint and op, so it is asked once;
  ///  - the range is not aligned to alignment(endpoint) (not remembered: an
  ///    unaligned range does not disable the offload for aligned ones);
  ///  - EINVAL or EBUSY on an aligned range (not remembered: a block device
  ///    refuses a range past its end with EINVAL, and EBUSY comes from pages
  ///    it could not drop from its cache; the write then says what is wrong).
  /// Retries EINTR. Never allocates.
  bool try_in_place(IoRequest& req);

  /// Whether `endpoint` may still do `op` (IoOp::zero or IoOp::punch) in place:
  /// true until refused (or, for a block device, when it has no write-zeroes offload).
  bool can(unsigned endpoint, IoOp op) const;

  /// Bytes: the alignment of offset and length a range on `endpoint` needs to
  /// be zeroed in place: its FdEndpoint::alignment (the direct-I/O one), and
  /// for a block device at least its logical block size (which a block
  /// device's fallocate demands; its alignment is 1 when opened without O_DIRECT).
  std::uint32_t alignment(unsigned endpoint) const { return endpoints_[endpoint].alignment; }

 private:
  struct Endpoint {
    int fd = -1;
    std::uint32_t alignment = 1;
    bool can_zero = true;
    bool can_punch = true;
  };

  // One fallocate of `mode` over the request's range: 0 or -errno (EINTR retried).
  static int fallocate_range(int fd, int mode, const IoRequest& req);
  static std::optional<bool> attempt(int fd, int mode, IoRequest& req, bool& can);

  std::vector<Endpoint> endpoints_;
};

}  // namespace kcopy
