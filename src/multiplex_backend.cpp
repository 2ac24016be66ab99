#include "kcopy/multiplex_backend.hpp"

#include <algorithm>
#include <cassert>
#include <cerrno>

#include "kcopy/device.hpp"

namespace kcopy {

namespace {

// The earlier of two poll(2) timeouts (-1: none).
int earlier(int a, int b) {
  if (a < 0) return b;
  if (b < 0) return a;
  return std::min(a, b);
}

}  // namespace

MultiplexBackend::MultiplexBackend(std::vector<std::unique_ptr<IoBackend>> children, std::vector<Route> routes,
                                   std::size_t max_requests)
    : children_(std::move(children)),
      routes_(std::max(routes.size(), max_endpoints)),
      reverse_(children_.size()),
      in_flight_(children_.size()),
      batches_(children_.size()) {
  assert(!children_.empty());
  for (std::size_t c = 0; c < children_.size(); ++c) {
    std::size_t size = max_endpoints;
    for (const Route& r : routes)
      if (r.child == c) size = std::max<std::size_t>(size, r.endpoint + 1);
    reverse_[c].assign(size, no_endpoint);
    batches_[c].reserve(std::max<std::size_t>(max_requests, 1));
  }
  for (std::size_t i = 0; i < routes.size(); ++i) {
    const Route r = routes[i];
    assert(r.child < children_.size());
    assert(reverse_[r.child][r.endpoint] == no_endpoint && "two endpoints routed to one child endpoint");
    reverse_[r.child][r.endpoint] = static_cast<unsigned>(i);
    routes_[i] = r;
  }
  route_count_.store(routes.size(), std::memory_order_release);

  std::size_t fds = 0;
  for (const auto& child : children_) fds += child->poll_fd_count();
  pollfds_.resize(fds);
  // Set the children's descriptors up now, before anything is submitted (see
  // IoBackend::poll_fds); the answers themselves are asked again when waiting.
  std::size_t at = 0;
  for (const auto& child : children_) {
    const std::size_t count = child->poll_fd_count();
    (void)child->poll_fds(std::span(pollfds_).subspan(at, count));
    at += count;
  }
}

void MultiplexBackend::submit(std::span<IoRequest* const> requests) {
  for (IoRequest* req : requests) {
    const Route r = routes_[req->endpoint];
    req->endpoint = r.endpoint;  // the child's index while the child has it
    batches_[r.child].push_back(req);
  }
  for (std::size_t c = 0; c < children_.size(); ++c) {
    if (batches_[c].empty()) continue;
    in_flight_[c] += batches_[c].size();
    children_[c]->submit(batches_[c]);
    batches_[c].clear();
  }
}

std::size_t MultiplexBackend::in_flight() const {
  std::size_t total = 0;
  for (const std::size_t n : in_flight_) total += n;
  return total;
}

std::size_t MultiplexBackend::reap(std::span<IoRequest*> out, std::size_t min_completions) {
  std::size_t n = 0;
  for (;;) {
    // What every child has, without waiting.
    const auto count = static_cast<unsigned>(children_.size());
    for (unsigned i = 0; i < count && n < out.size(); ++i) {
      const unsigned c = (first_ + i) % count;
      if (in_flight_[c] == 0) continue;
      const std::size_t got = children_[c]->reap(out.subspan(n), 0);
      for (std::size_t k = n; k < n + got; ++k) out[k]->endpoint = engine_endpoint(c, out[k]->endpoint);
      in_flight_[c] -= got;
      n += got;
    }
    first_ = (first_ + 1) % count;
    if (n >= min_completions || n == out.size() || in_flight() == 0) return n;
    n = wait(out, n);
  }
}

// The poll descriptors of every child with requests in flight, into `out`, and
// the earliest of their timeouts; `unpollable`: the last child with requests
// in flight that cannot be polled, or -1. Returns how many descriptors, or
// -ENOSPC.
int MultiplexBackend::gather(std::span<pollfd> out, int& timeout_ms, int& unpollable) {
  int n = 0;
  timeout_ms = -1;
  unpollable = -1;
  for (std::size_t c = 0; c < children_.size(); ++c) {
    if (in_flight_[c] == 0) continue;
    const int got = children_[c]->poll_fds(out.subspan(static_cast<std::size_t>(n)));
    if (got == -ENOSPC) return got;
    if (got < 0) {
      unpollable = static_cast<int>(c);
      continue;
    }
    n += got;
    timeout_ms = earlier(timeout_ms, children_[c]->poll_timeout_ms());
  }
  return n;
}

// Waits until some child may have completions; returns n plus what a child
// reaped while waiting (only an unpollable child waited for in its own reap()).
std::size_t MultiplexBackend::wait(std::span<IoRequest*> out, std::size_t n) {
  int timeout = -1;
  int unpollable = -1;
  int fds = gather(pollfds_, timeout, unpollable);
  if (fds < 0) fds = 0, timeout = 1;  // cannot happen (sized by poll_fd_count): look again soon
  if (unpollable >= 0) {
    const auto c = static_cast<unsigned>(unpollable);
    if (in_flight_[c] == in_flight()) {
      // The only one with anything in flight: its own reap() waits.
      const std::size_t got = children_[c]->reap(out.subspan(n), 1);
      for (std::size_t k = n; k < n + got; ++k) out[k]->endpoint = engine_endpoint(c, out[k]->endpoint);
      in_flight_[c] -= got;
      return n + got;
    }
    timeout = earlier(timeout, 1);
  }
  // Nothing to wait on but requests in flight: a child's state we cannot see; look again soon.
  if (fds == 0 && timeout < 0) timeout = 1;
  (void)::poll(pollfds_.data(), static_cast<nfds_t>(fds), timeout);  // EINTR: the caller looks again
  return n;
}

int MultiplexBackend::add_endpoint(const FdEndpoint& endpoint) {
  const std::size_t i = route_count_.load(std::memory_order_relaxed);
  if (i >= routes_.size()) return -ENFILE;
  for (std::size_t c = 0; c < children_.size(); ++c) {
    const int e = children_[c]->add_endpoint(endpoint);
    if (e == -ENOTSUP) continue;
    if (e < 0) return e;
    if (static_cast<std::size_t>(e) >= reverse_[c].size()) return -ENFILE;
    routes_[i] = {static_cast<unsigned>(c), static_cast<unsigned>(e), endpoint.placement};
    reverse_[c][static_cast<std::size_t>(e)] = static_cast<unsigned>(i);
    route_count_.store(i + 1, std::memory_order_release);
    return static_cast<int>(i);
  }
  return -ENOTSUP;
}

void MultiplexBackend::register_buffers(std::span<std::byte> memory) {
  for (const auto& child : children_) child->register_buffers(memory);
}

int MultiplexBackend::flush(unsigned endpoint) {
  const Route r = routes_[endpoint];
  return children_[r.child]->flush(r.endpoint);
}

std::uint32_t MultiplexBackend::alignment(unsigned endpoint) const {
  const Route r = routes_[endpoint];
  return children_[r.child]->alignment(r.endpoint);
}

int MultiplexBackend::drop_cache(unsigned endpoint, std::uint64_t offset, std::uint64_t length) {
  const Route r = routes_[endpoint];
  return children_[r.child]->drop_cache(r.endpoint, offset, length);
}

std::uint64_t MultiplexBackend::next_data(unsigned endpoint, std::uint64_t offset) {
  const Route r = routes_[endpoint];
  return children_[r.child]->next_data(r.endpoint, offset);
}

Placement MultiplexBackend::placement(unsigned endpoint) const { return routes_[endpoint].placement; }

int MultiplexBackend::poll_fds(std::span<pollfd> out) {
  int timeout = -1;
  int unpollable = -1;
  const int n = gather(out, timeout, unpollable);
  if (n < 0) return n;
  return unpollable >= 0 ? -ENOTSUP : n;
}

int MultiplexBackend::poll_timeout_ms() const {
  int timeout = -1;
  for (std::size_t c = 0; c < children_.size(); ++c)
    if (in_flight_[c] > 0) timeout = earlier(timeout, children_[c]->poll_timeout_ms());
  return timeout;
}

}  // namespace kcopy
