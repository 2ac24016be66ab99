#include "kcopy/zero_offload.hpp"

#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/fs.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>

#include <algorithm>
#include <cerrno>
#include <fstream>
#include <optional>
#include <string>

namespace kcopy {

namespace {

// What one fallocate's answer means for the request.
enum class Answer {
  done,    // the range reads as zeroes
  cannot,  // this endpoint never will with this mode: remember, write instead
  write,   // not this range (or not now): write it instead, ask again next time
  failed,  // a real error: the request fails with it
};

Answer classify(int rc) {
  switch (rc) {
    case 0:
      return Answer::done;
    case -EOPNOTSUPP:  // the file system or device has no such mode (== ENOTSUP)
    case -ENOSYS:      // no fallocate at all
    case -ENOTTY:
    case -ENODEV:  // not a regular file or block device
    case -ESPIPE:  // a pipe or socket
      return Answer::cannot;
    case -EINVAL:  // a block device: unaligned, or past its end
    case -EBUSY:   // a block device: cached pages it could not drop
      return Answer::write;
    default:
      return Answer::failed;
  }
}

// Whether block device `rdev` has a write-zeroes offload: sysfs's
// queue/write_zeroes_max_bytes, which a partition takes from its whole disk.
// Unknown (no sysfs) counts as yes: the first fallocate then tells.
bool has_write_zeroes(dev_t rdev) {
  const std::string dir = "/sys/dev/block/" + std::to_string(major(rdev)) + ":" + std::to_string(minor(rdev));
  for (const char* rel : {"/queue/write_zeroes_max_bytes", "/../queue/write_zeroes_max_bytes"}) {
    std::ifstream in(dir + rel);
    unsigned long long bytes = 0;
    if (in >> bytes) return bytes > 0;
  }
  return true;
}

}  // namespace

ZeroOffload::ZeroOffload(std::span<const FdEndpoint> endpoints) {
  endpoints_.reserve(std::max(endpoints.size(), max_endpoints));
  for (const FdEndpoint& fds : endpoints) add(fds);
}

void ZeroOffload::add(const FdEndpoint& fds) {
  Endpoint ep;
  ep.fd = fds.direct_fd >= 0 ? fds.direct_fd : fds.buffered_fd;
  ep.alignment = std::max<std::uint32_t>(fds.alignment, 1);
  struct stat st {};
  if (ep.fd >= 0 && ::fstat(ep.fd, &st) == 0 && S_ISBLK(st.st_mode)) {
    int lbs = 0;
    if (::ioctl(ep.fd, BLKSSZGET, &lbs) == 0 && lbs > 0)
      ep.alignment = std::max(ep.alignment, static_cast<std::uint32_t>(lbs));
    else
      ep.alignment = std::max<std::uint32_t>(ep.alignment, 512);
    ep.can_zero = ep.can_punch = has_write_zeroes(st.st_rdev);
  }
  endpoints_.push_back(ep);
}

int ZeroOffload::fallocate_range(int fd, int mode, const IoRequest& req) {
  int rc;
  do {
    rc = ::fallocate(fd, mode, static_cast<off_t>(req.offset), static_cast<off_t>(req.buffer.size()));
  } while (rc < 0 && errno == EINTR);
  return rc < 0 ? -errno : 0;
}

bool ZeroOffload::can(unsigned endpoint, IoOp op) const {
  const Endpoint& ep = endpoints_[endpoint];
  switch (op) {
    case IoOp::zero:
      return ep.can_zero;
    case IoOp::punch:
      return ep.can_punch;
    case IoOp::read:
    case IoOp::write:
      break;
  }
  return false;
}

// One fallocate of `mode` for `req`: true when the request is complete (done,
// or failed with a real error), false when it must be written instead, nothing
// when this endpoint can never do `mode` (then `can` is cleared).
std::optional<bool> ZeroOffload::attempt(int fd, int mode, IoRequest& req, bool& can) {
  const int rc = fallocate_range(fd, mode, req);
  switch (classify(rc)) {
    case Answer::done:
      req.result = static_cast<long>(req.buffer.size());
      return true;
    case Answer::failed:
      req.result = rc;
      return true;
    case Answer::write:
      return false;
    case Answer::cannot:
      can = false;
      break;
  }
  return std::nullopt;
}

bool ZeroOffload::try_in_place(IoRequest& req) {
  if ((req.op != IoOp::zero && req.op != IoOp::punch) || req.buffer.empty()) return false;
  Endpoint& ep = endpoints_[req.endpoint];
  if (req.offset % ep.alignment != 0 || req.buffer.size() % ep.alignment != 0) return false;

  // Punch first when asked to; where the endpoint cannot punch, zeroing in
  // place still beats writing.
  if (req.op == IoOp::punch && ep.can_punch)
    if (const auto done = attempt(ep.fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE, req, ep.can_punch)) return *done;
  if (!ep.can_zero) return false;
  return attempt(ep.fd, FALLOC_FL_ZERO_RANGE | FALLOC_FL_KEEP_SIZE, req, ep.can_zero).value_or(false);
}

}  // namespace kcopy
