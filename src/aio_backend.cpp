#include "kcopy/aio_backend.hpp"

#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>

namespace kcopy {

AioBackend::AioBackend(std::vector<FdEndpoint> endpoints, std::size_t max_requests)
    : endpoints_(std::move(endpoints)),
      zero_(endpoints_),
      ctx_(static_cast<unsigned>(max_requests)),
      iocbs_(max_requests) {
  endpoints_.reserve(max_endpoints);  // add_endpoint never moves one
  free_iocbs_.reserve(max_requests);
  for (auto& cb : iocbs_) free_iocbs_.push_back(&cb);
  pending_.reserve(max_requests);
  completed_.reserve(max_requests);
  events_.resize(max_requests);
}

void AioBackend::submit(std::span<IoRequest* const> requests) {
  for (IoRequest* req : requests) {
    if (zero_.try_in_place(*req)) {
      completed_.push_back(req);
      continue;
    }
    // A read, a write, or zeroing that has to be written.
    iocb* cb = free_iocbs_.back();
    free_iocbs_.pop_back();
    const int fd = endpoints_[req->endpoint].fd_for(req->offset, req->buffer);
    if (req->op == IoOp::read)
      io_prep_pread(cb, fd, req->buffer.data(), req->buffer.size(), static_cast<long long>(req->offset));
    else
      io_prep_pwrite(cb, fd, req->buffer.data(), req->buffer.size(), static_cast<long long>(req->offset));
    if (eventfd_) io_set_eventfd(cb, eventfd_.get());
    cb->data = req;
    pending_.push_back(cb);
  }
  submit_pending();
}

// Hands pending iocbs to the kernel. A partial submit leaves the rest pending;
// EAGAIN (no room in the kernel) waits for the next reap, unless nothing is in
// flight to make room, in which case the request fails rather than spin.
void AioBackend::submit_pending() {
  std::size_t done = 0;
  while (done < pending_.size()) {
    const int rc = ctx_.submit(std::span(pending_).subspan(done));
    if (rc > 0) {
      done += static_cast<std::size_t>(rc);
      in_kernel_ += static_cast<std::size_t>(rc);
      continue;
    }
    if (rc == -EAGAIN && in_kernel_ > 0) break;
    // This iocb alone is refused (EBADF, EINVAL, EAGAIN with nothing in flight):
    // complete it with the error.
    iocb* cb = pending_[done++];
    auto* req = static_cast<IoRequest*>(cb->data);
    req->result = rc < 0 ? rc : -EIO;
    completed_.push_back(req);
    free_iocbs_.push_back(cb);
  }
  pending_.erase(pending_.begin(), pending_.begin() + static_cast<std::ptrdiff_t>(done));
}

std::size_t AioBackend::reap(std::span<IoRequest*> out, std::size_t min_completions) {
  std::size_t n = 0;
  // Read the eventfd empty before io_getevents: a completion after that
  // signals it again, so a caller polling it misses none.
  if (eventfd_) {
    eventfd_t count = 0;
    (void)::eventfd_read(eventfd_.get(), &count);  // EAGAIN: nothing signalled
  }
  while (!completed_.empty() && n < out.size()) {
    out[n++] = completed_.back();
    completed_.pop_back();
  }
  if (in_kernel_ == 0 || n == out.size()) return n;
  const std::size_t want = min_completions > n ? min_completions - n : 0;
  const std::size_t room = std::min(out.size() - n, events_.size());
  const int got = ctx_.get_events(std::span(events_).first(room), static_cast<long>(std::min(want, room)));
  for (int i = 0; i < got; ++i) {
    const io_event& ev = events_[static_cast<std::size_t>(i)];
    auto* req = static_cast<IoRequest*>(ev.data);
    req->result = static_cast<long>(ev.res);  // bytes, or -errno
    free_iocbs_.push_back(ev.obj);
    out[n++] = req;
  }
  if (got > 0) {
    in_kernel_ -= static_cast<std::size_t>(got);
    submit_pending();  // room was made: retry what EAGAIN held back
  }
  return n;
}

int AioBackend::poll_fds(std::span<pollfd> out) {
  if (!eventfd_) {
    eventfd_ = FileDesc(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!eventfd_) return -errno;
  }
  if (out.empty()) return -ENOSPC;
  out[0] = {eventfd_.get(), POLLIN, 0};
  return 1;
}

int AioBackend::add_endpoint(const FdEndpoint& endpoint) {
  if (endpoints_.size() >= max_endpoints) return -ENFILE;
  zero_.add(endpoint);
  endpoints_.push_back(endpoint);
  return static_cast<int>(endpoints_.size() - 1);
}

int AioBackend::flush(unsigned endpoint) { return ::fdatasync(endpoints_[endpoint].direct_fd) == 0 ? 0 : -errno; }

}  // namespace kcopy
