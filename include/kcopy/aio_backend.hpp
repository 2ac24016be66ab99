#pragma once
// The libaio backend: real asynchronous O_DIRECT I/O on opened devices
// (fio's engines/libaio.c: the backend owns only kernel state; the engine owns requests).

#include <libaio.h>

#include <cstddef>
#include <vector>

#include "kcopy/aio_context.hpp"
#include "kcopy/device.hpp"
#include "kcopy/file_desc.hpp"
#include "kcopy/io_backend.hpp"
#include "kcopy/zero_offload.hpp"

namespace kcopy {

/// IoBackend on libaio. Endpoint i of the IoRequests is endpoints[i].
/// Zero and punch requests are done inside submit() by fallocate where the
/// endpoint can (ZeroOffload: libaio cannot queue it) and come back from the
/// next reap(); elsewhere their buffer of zeroes is written like any write.
class AioBackend final : public IoBackend {
 public:
  /// Sets up an io_context and `max_requests` iocbs, all allocated here.
  /// `max_requests` bounds how many requests may be in flight at once.
  /// Throws kcopy::Error (io_setup failure).
  AioBackend(std::vector<FdEndpoint> endpoints, std::size_t max_requests);

  void submit(std::span<IoRequest* const> requests) override;
  std::size_t reap(std::span<IoRequest*> out, std::size_t min_completions) override;
  int add_endpoint(const FdEndpoint& endpoint) override;
  int flush(unsigned endpoint) override;
  std::uint32_t alignment(unsigned endpoint) const override { return endpoints_[endpoint].alignment; }
  Placement placement(unsigned endpoint) const override { return endpoints_[endpoint].placement; }
  int drop_cache(unsigned endpoint, std::uint64_t offset, std::uint64_t length) override {
    return endpoints_[endpoint].drop_cache(offset, length);
  }
  std::uint64_t next_data(unsigned endpoint, std::uint64_t offset) override {
    return endpoints_[endpoint].next_data(offset);
  }

  /// One descriptor: an eventfd (made by the first poll_fds() call) that every
  /// request submitted from then on signals when it completes (io_set_eventfd);
  /// reap() reads it empty. -errno if it cannot be had.
  std::size_t poll_fd_count() const override { return 1; }
  int poll_fds(std::span<pollfd> out) override;

 private:
  void submit_pending();

  std::vector<FdEndpoint> endpoints_;
  ZeroOffload zero_;
  AioContext ctx_;
  std::vector<iocb> iocbs_;
  std::vector<iocb*> free_iocbs_;
  std::vector<iocb*> pending_;  // prepared, not yet accepted by io_submit
  // Completed without the kernel's AIO, waiting for reap(): refused by
  // io_submit (-errno), or zeroed in place by submit().
  std::vector<IoRequest*> completed_;
  std::vector<io_event> events_;
  std::size_t in_kernel_ = 0;  // accepted by io_submit, not yet reaped
  FileDesc eventfd_;           // signalled by each completion once poll_fds() made it; else none
};

}  // namespace kcopy
