#pragma once
// One IoBackend over several: local devices on io_uring (or libaio, or sync)
// and NBD exports in one copy, without the engine knowing (nbdcopy's rw_ops
// behind one interface). Requests are routed to the child that holds their
// endpoint; completions are collected from every child, waiting on all of them
// at once with poll(2) (IoBackend::poll_fds).

#include <poll.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <vector>

#include "kcopy/io_backend.hpp"

namespace kcopy {

/// IoBackend whose endpoint i is endpoint routes[i].endpoint of child
/// routes[i].child. Owns the children. Same thread rules as any IoBackend.
class MultiplexBackend final : public IoBackend {
 public:
  /// Where one of the multiplexer's endpoints lives, and where its bytes lie:
  /// placements are the caller's, over every child (one owner numbers the
  /// media of a copy, so that a FUSE file on libaio and a loop device over it
  /// on io_uring are still seen as one medium).
  struct Route {
    unsigned child = 0;     ///< index into the children
    unsigned endpoint = 0;  ///< the child's endpoint index
    Placement placement;    ///< returned as is by placement()
  };

  /// `children` (at least one) and the route of each endpoint: each (child,
  /// endpoint) pair at most once, so that a request's endpoint can be given back
  /// as it was submitted. `max_requests` bounds the requests in flight, as for
  /// every backend. Asks every child for its poll descriptors once, before any
  /// submit (so that io_uring and libaio children set their eventfd up).
  /// Allocates everything submit() and reap() need. Never throws but std::bad_alloc.
  MultiplexBackend(std::vector<std::unique_ptr<IoBackend>> children, std::vector<Route> routes,
                   std::size_t max_requests);

  /// Hands each request to its child, translated to the child's endpoint
  /// (IoRequest::endpoint is rewritten while the child has it, and restored
  /// before reap() gives it back); one submit per child and call.
  void submit(std::span<IoRequest* const> requests) override;
  /// As IoBackend says. Takes what every child has without waiting (reap with
  /// min 0, starting with a different child each time so that none is
  /// starved); while that is fewer than `min_completions`, waits in poll(2) on
  /// all the children's descriptors at once, at most until the earliest of
  /// their poll_timeout_ms(). A child that cannot be polled is waited for in
  /// its own reap() when it is the only one with requests in flight, else
  /// looked at every millisecond. A signal ends one wait; the loop goes on.
  std::size_t reap(std::span<IoRequest*> out, std::size_t min_completions) override;
  /// Adds a file endpoint to the first child that takes one (IoBackend::add_endpoint),
  /// placed where `endpoint.placement` says, and routes the next endpoint index to it: that index, -ENOTSUP when no
  /// child takes file endpoints, -ENFILE when max_endpoints are there.
  int add_endpoint(const FdEndpoint& endpoint) override;
  /// Every child gets the page pool's memory.
  void register_buffers(std::span<std::byte> memory) override;
  int flush(unsigned endpoint) override;
  std::uint32_t alignment(unsigned endpoint) const override;
  int drop_cache(unsigned endpoint, std::uint64_t offset, std::uint64_t length) override;
  std::uint64_t next_data(unsigned endpoint, std::uint64_t offset) override;
  /// The route's placement (as the caller gave it).
  Placement placement(unsigned endpoint) const override;

  /// The children's, together (so that a multiplexer can be a child too):
  /// -ENOTSUP when a child with requests in flight cannot be polled.
  std::size_t poll_fd_count() const override { return pollfds_.size(); }
  int poll_fds(std::span<pollfd> out) override;
  int poll_timeout_ms() const override;

  /// Child `i` (for its own accessors: NbdBackend::nbd_export, ...).
  IoBackend& child(unsigned i) { return *children_[i]; }
  /// The route of `endpoint`.
  Route route(unsigned endpoint) const { return routes_[endpoint]; }

 private:
  static constexpr unsigned no_endpoint = ~0u;

  // The engine's endpoint index of child c's endpoint e.
  unsigned engine_endpoint(unsigned c, unsigned e) const { return reverse_[c][e]; }
  std::size_t in_flight() const;
  int gather(std::span<pollfd> out, int& timeout_ms, int& unpollable);
  std::size_t wait(std::span<IoRequest*> out, std::size_t n);

  std::vector<std::unique_ptr<IoBackend>> children_;
  // Sized for max_endpoints up front (add_endpoint may run on another thread:
  // nothing moves); route_count_ of them are in use.
  std::vector<Route> routes_;
  std::atomic<std::size_t> route_count_{0};
  std::vector<std::vector<unsigned>> reverse_;    // child -> its endpoint -> ours (no_endpoint: none)
  std::vector<std::size_t> in_flight_;            // per child: submitted, not yet reaped
  std::vector<std::vector<IoRequest*>> batches_;  // per child: submit()'s requests for it
  std::vector<pollfd> pollfds_;
  unsigned first_ = 0;  // the child reap() asks first
};

}  // namespace kcopy
