#include "kcopy/uring_backend.hpp"

#include <fcntl.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cassert>
#include <cerrno>
#include <cstdint>

namespace kcopy {

namespace {

constexpr std::size_t max_sq_entries = 4096;
// The kernel's largest CQ (IORING_MAX_CQ_ENTRIES); with IORING_SETUP_CLAMP it
// grants that much when asked for more.
constexpr std::size_t max_cq_entries = 65536;
// The kernel registers a fixed buffer of at most 1 GiB.
constexpr std::size_t fixed_buffer_piece = std::size_t{1} << 30;
// Bytes of one SQE at most (its length is 32 bits, and the kernel stops a
// transfer near 2 GiB anyway): the rest of a larger buffer comes back short.
constexpr std::size_t max_transfer = std::size_t{1} << 30;

unsigned ring_size(std::size_t max_requests, std::size_t cap) {
  return static_cast<unsigned>(std::bit_ceil(std::clamp<std::size_t>(max_requests, 1, cap)));
}

}  // namespace

UringBackend::UringBackend(std::vector<FdEndpoint> endpoints, std::size_t max_requests)
    : zero_(endpoints),
      ring_(ring_size(max_requests, max_sq_entries), ring_size(max_requests, max_cq_entries)),
      max_in_kernel_(std::min<std::size_t>(std::max<std::size_t>(max_requests, 1), ring_.cq_entries())),
      pending_(std::max<std::size_t>(max_requests, 1)) {
  completed_.reserve(pending_.size());
  endpoints_.reserve(std::max(endpoints.size(), max_endpoints));  // add_endpoint never moves one
  for (const FdEndpoint& ep : endpoints) endpoints_.push_back(ep);
}

void UringBackend::register_buffers(std::span<std::byte> memory) {
  std::vector<iovec> pieces;
  for (std::size_t at = 0; at < memory.size(); at += fixed_buffer_piece)
    pieces.push_back({memory.data() + at, std::min(fixed_buffer_piece, memory.size() - at)});
  fixed_buffers_.clear();
  if (!pieces.empty() && ring_.register_buffers(pieces)) fixed_buffers_ = std::move(pieces);
}

// The index of the registered piece that holds all of `buffer`, or -1 (none
// registered, or the buffer lies elsewhere or across two pieces).
int UringBackend::fixed_buffer_of(std::span<const std::byte> buffer) const {
  if (fixed_buffers_.empty() || buffer.empty()) return -1;
  const auto base = reinterpret_cast<std::uintptr_t>(fixed_buffers_.front().iov_base);
  const auto begin = reinterpret_cast<std::uintptr_t>(buffer.data());
  if (begin < base) return -1;
  const std::size_t i = (begin - base) / fixed_buffer_piece;
  if (i >= fixed_buffers_.size()) return -1;
  const iovec& piece = fixed_buffers_[i];
  if (begin + buffer.size() > reinterpret_cast<std::uintptr_t>(piece.iov_base) + piece.iov_len) return -1;
  return static_cast<int>(i);
}

void UringBackend::prepare(io_uring_sqe* sqe, IoRequest* req) {
  const int file = endpoints_[req->endpoint].fd_for(req->offset, req->buffer);
  const auto len = static_cast<unsigned>(std::min(req->buffer.size(), max_transfer));
  const int buf = fixed_buffer_of(req->buffer.first(len));
  switch (req->op) {
    case IoOp::read:
      if (buf >= 0)
        io_uring_prep_read_fixed(sqe, file, req->buffer.data(), len, req->offset, buf);
      else
        io_uring_prep_read(sqe, file, req->buffer.data(), len, req->offset);
      break;
    case IoOp::write:
    case IoOp::zero:  // not done in place (submit): written
    case IoOp::punch:
      if (buf >= 0)
        io_uring_prep_write_fixed(sqe, file, req->buffer.data(), len, req->offset, buf);
      else
        io_uring_prep_write(sqe, file, req->buffer.data(), len, req->offset);
      break;
  }
  io_uring_sqe_set_data(sqe, req);
}

void UringBackend::submit(std::span<IoRequest* const> requests) {
  for (IoRequest* req : requests) {
    if (zero_.try_in_place(*req)) {
      completed_.push_back(req);
      continue;
    }
    assert(pending_count_ < pending_.size() && "more requests in flight than max_requests");
    pending_[(pending_head_ + pending_count_++) % pending_.size()] = req;
  }
  submit_pending();
}

// Moves pending requests into the SQ ring and hands the ring to the kernel,
// keeping at most max_in_kernel_ in the kernel so that the CQ never overflows.
// Leaves nothing waiting unless something is in the kernel whose reap will
// call this again.
void UringBackend::submit_pending() {
  for (;;) {
    while (pending_count_ > 0 && in_kernel_ + queued_ < max_in_kernel_) {
      io_uring_sqe* sqe = io_uring_get_sqe(ring_.get());
      if (sqe == nullptr) break;  // the SQ ring is full: submit it first
      prepare(sqe, pending_[pending_head_]);
      pending_head_ = (pending_head_ + 1) % pending_.size();
      --pending_count_;
      ++queued_;
    }
    if (queued_ == 0) return;
    const int rc = ring_.submit();
    if (rc > 0) {
      // Possibly a partial submit (the kernel stops at an SQE it cannot take;
      // a bad one is consumed and completes with -errno): the rest stay in
      // the SQ ring and go with the next submit, right away.
      in_kernel_ += static_cast<std::size_t>(rc);
      queued_ -= std::min(queued_, static_cast<std::size_t>(rc));
      continue;
    }
    // No room in the kernel (EAGAIN: no memory for requests; EBUSY: CQ
    // backlog): leave the SQ ring as it is; reap makes room and calls us again.
    if ((rc == -EAGAIN || rc == -EBUSY || rc == 0) && in_kernel_ > 0) return;
    // Nothing in flight would ever make room, or the ring itself failed: the
    // queued requests fail rather than spin.
    refuse_unsubmitted(rc < 0 ? rc : -EAGAIN);
  }
}

void UringBackend::refuse_unsubmitted(int err) {
  ring_.take_back_unsubmitted([this, err](std::uint64_t user_data) {
    auto* req = reinterpret_cast<IoRequest*>(static_cast<std::uintptr_t>(user_data));
    req->result = err;
    completed_.push_back(req);
  });
  queued_ = 0;
}

std::size_t UringBackend::reap(std::span<IoRequest*> out, std::size_t min_completions) {
  std::size_t n = 0;
  // Read the eventfd empty before looking at the CQ ring: a CQE posted after
  // the look signals it again, so a caller polling it misses none.
  if (eventfd_) {
    eventfd_t count = 0;
    (void)::eventfd_read(eventfd_.get(), &count);  // EAGAIN: nothing signalled
  }
  for (;;) {
    while (!completed_.empty() && n < out.size()) {
      out[n++] = completed_.back();
      completed_.pop_back();
    }
    // Completions already in the CQ ring: no system call.
    std::size_t got = 0;
    unsigned head = 0;
    io_uring_cqe* cqe = nullptr;
    io_uring_for_each_cqe(ring_.get(), head, cqe) {
      if (n == out.size()) break;
      auto* req = static_cast<IoRequest*>(io_uring_cqe_get_data(cqe));
      req->result = cqe->res;  // bytes, or -errno
      out[n++] = req;
      ++got;
    }
    if (got > 0) {
      io_uring_cq_advance(ring_.get(), static_cast<unsigned>(got));
      in_kernel_ -= got;
      submit_pending();  // room was made: submit what waited for it
      continue;
    }
    if (n >= min_completions || n == out.size() || in_kernel_ == 0) return n;
    // Wait for the rest (a signal does not end the wait: UringRing::wait
    // retries EINTR, and completions stay in the CQ ring meanwhile).
    const auto want = static_cast<unsigned>(std::min(min_completions - n, in_kernel_));
    if (ring_.wait(want) < 0) return n;  // the ring cannot wait: give what we have, as AioBackend does
  }
}

int UringBackend::poll_fds(std::span<pollfd> out) {
  if (!eventfd_) {
    FileDesc fd(::eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    if (!fd) return -errno;
    if (!ring_.register_eventfd(fd.get())) return -ENOTSUP;
    eventfd_ = std::move(fd);
  }
  if (out.empty()) return -ENOSPC;
  out[0] = {eventfd_.get(), POLLIN, 0};
  return 1;
}

int UringBackend::add_endpoint(const FdEndpoint& endpoint) {
  if (endpoint.on_fuse) return -ENOTSUP;  // see FdEndpoint::on_fuse
  if (endpoints_.size() >= max_endpoints) return -ENFILE;
  zero_.add(endpoint);
  endpoints_.push_back(endpoint);
  return static_cast<int>(endpoints_.size() - 1);
}

int UringBackend::flush(unsigned endpoint) { return ::fdatasync(endpoints_[endpoint].direct_fd) == 0 ? 0 : -errno; }

}  // namespace kcopy
