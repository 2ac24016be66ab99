#include "kcopy/report.hpp"

#include <spdlog/spdlog.h>

#include <cstring>

namespace kcopy {

int exit_status(const JobResult& result, int signal) {
  if (result.stopped && signal > 0) return 128 + signal;
  return static_cast<int>(result.write_err & 63) | (result.read_err ? 64 : 0);
}

void report_result(const JobResult& result, const CopyPlan& plan, std::span<const EndpointInfo> endpoints) {
  const EndpointInfo& src = endpoints[0];
  if (result.read_err) {
    const ErrorRange& e = result.read_error;
    spdlog::error("{} '{}': read error at sector {} (+{}): {}", src.role, src.path, e.sector, e.count,
                  std::strerror(e.error));
  }
  for (std::size_t d = 0; d < plan.dests.size(); ++d) {
    const EndpointInfo& ep = endpoints[d + 1];
    if (const ErrorRange& e = result.write_error[d]; e.error)
      spdlog::error("{} '{}': write error at sector {} (+{}): {}; nothing more was written to it", ep.role, ep.path,
                    e.sector, e.count, std::strerror(e.error));
    if (const int err = result.flush_error[d])
      spdlog::error("{} '{}': flush (fdatasync) failed: {}", ep.role, ep.path, std::strerror(err));
  }
  if (result.stopped || result.read_err) {
    for (std::size_t d = 0; d < plan.dests.size(); ++d)
      spdlog::warn("{} '{}': {} of {} sectors written", endpoints[d + 1].role, endpoints[d + 1].path,
                   result.sectors_written[d], result.sectors_total);
  }
}

}  // namespace kcopy
