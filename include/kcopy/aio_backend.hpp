#pragma once
// The libaio backend: real asynchronous O_DIRECT I/O on opened devices
// (fio's engines/libaio.c: the backend owns only kernel state; the engine owns requests).

#include <libaio.h>

#include <cstddef>
#include <vector>

#include "kcopy/aio_context.hpp"
#include "kcopy/device.hpp"
#include "kcopy/io_backend.hpp"

namespace kcopy {

/// IoBackend on libaio. Endpoint i of the IoRequests is endpoints[i].
class AioBackend final : public IoBackend {
 public:
  /// Sets up an io_context and `max_requests` iocbs, all allocated here.
  /// `max_requests` bounds how many requests may be in flight at once.
  /// Throws kcopy::Error (io_setup failure).
  AioBackend(std::vector<FdEndpoint> endpoints, std::size_t max_requests);

  void submit(std::span<IoRequest* const> requests) override;
  std::size_t reap(std::span<IoRequest*> out, std::size_t min_completions) override;
  int flush(unsigned endpoint) override;
  std::uint32_t alignment(unsigned endpoint) const override { return endpoints_[endpoint].alignment; }
  Placement placement(unsigned endpoint) const override { return endpoints_[endpoint].placement; }

 private:
  void submit_pending();

  std::vector<FdEndpoint> endpoints_;
  AioContext ctx_;
  std::vector<iocb> iocbs_;
  std::vector<iocb*> free_iocbs_;
  std::vector<iocb*> pending_;       // prepared, not yet accepted by io_submit
  std::vector<IoRequest*> refused_;  // io_submit refused them: completed with -errno
  std::vector<io_event> events_;
  std::size_t in_kernel_ = 0;  // accepted by io_submit, not yet reaped
};

}  // namespace kcopy
