#pragma once
// The synchronous backend: pread/pwrite at submit time. For copies of one
// sub-job or less, where an AIO context costs more than it saves (tearing one
// down waits for an RCU grace period, tens of milliseconds).

#include <cstddef>
#include <vector>

#include "kcopy/device.hpp"
#include "kcopy/io_backend.hpp"
#include "kcopy/zero_offload.hpp"

namespace kcopy {

/// IoBackend doing each request to completion inside submit() (short transfers
/// are returned as they are; the engine continues them). Endpoint i is endpoints[i].
/// Zero and punch requests are done by fallocate where the endpoint can, else
/// written (ZeroOffload).
class SyncBackend final : public IoBackend {
 public:
  /// `max_requests` bounds how many completed requests may wait for reap().
  SyncBackend(std::vector<FdEndpoint> endpoints, std::size_t max_requests);

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

 private:
  std::vector<FdEndpoint> endpoints_;
  ZeroOffload zero_;
  std::vector<IoRequest*> done_;
  std::size_t next_ = 0;  // first of done_ not yet reaped
};

}  // namespace kcopy
