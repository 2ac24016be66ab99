#include "kcopy/sync_backend.hpp"

#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdint>

namespace kcopy {

SyncBackend::SyncBackend(std::vector<FdEndpoint> endpoints, std::size_t max_requests)
    : endpoints_(std::move(endpoints)), zero_(endpoints_) {
  endpoints_.reserve(max_endpoints);  // add_endpoint never moves one
  done_.reserve(max_requests);
}

void SyncBackend::submit(std::span<IoRequest* const> requests) {
  for (IoRequest* req : requests) {
    done_.push_back(req);
    if (zero_.try_in_place(*req)) continue;
    // A read, a write, or zeroing that has to be written.
    const int fd = endpoints_[req->endpoint].fd_for(req->offset, req->buffer);
    const auto offset = static_cast<off_t>(req->offset);
    ssize_t rc;
    do {
      rc = req->op == IoOp::read ? ::pread(fd, req->buffer.data(), req->buffer.size(), offset)
                                 : ::pwrite(fd, req->buffer.data(), req->buffer.size(), offset);
    } while (rc < 0 && errno == EINTR);
    req->result = rc < 0 ? -errno : rc;
  }
}

std::size_t SyncBackend::reap(std::span<IoRequest*> out, std::size_t /*min_completions*/) {
  const std::size_t n = std::min(out.size(), done_.size() - next_);
  std::copy_n(done_.begin() + static_cast<std::ptrdiff_t>(next_), n, out.begin());
  next_ += n;
  if (next_ == done_.size()) {
    done_.clear();  // keeps its capacity: no allocation on the next submit
    next_ = 0;
  }
  return n;
}

int SyncBackend::add_endpoint(const FdEndpoint& endpoint) {
  if (endpoints_.size() >= max_endpoints) return -ENFILE;
  zero_.add(endpoint);
  endpoints_.push_back(endpoint);
  return static_cast<int>(endpoints_.size() - 1);
}

int SyncBackend::flush(unsigned endpoint) { return ::fdatasync(endpoints_[endpoint].direct_fd) == 0 ? 0 : -errno; }

}  // namespace kcopy
