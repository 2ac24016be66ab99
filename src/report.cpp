#include "kcopy/report.hpp"

#include <spdlog/spdlog.h>

#include <cstring>

namespace kcopy {

int exit_status(const JobResult& result, int signal) {
  if (result.stopped && signal > 0) return 128 + signal;
  return static_cast<int>(result.write_err & 63) | (result.read_err ? 64 : 0);
}

namespace {

void report_ranges(const EndpointInfo& ep, const char* what, const ErrorRanges& errors, const char* tail) {
  for (const ErrorRange& e : errors.ranges())
    spdlog::error("{} '{}': {} error at sectors {}-{} ({} sectors): {}{}", ep.role, ep.path, what, e.sector,
                  e.sector + e.count - 1, e.count, std::strerror(e.error), tail);
  if (errors.not_listed())
    spdlog::error("{} '{}': {} more {} error ranges not listed", ep.role, ep.path, errors.not_listed(), what);
}

}  // namespace

void report_result(const JobResult& result, const CopyPlan& plan, std::span<const EndpointInfo> endpoints,
                   bool ignore_errors) {
  report_ranges(endpoints[0], "read", result.read_errors, "");
  for (std::size_t d = 0; d < plan.dests.size(); ++d) {
    const EndpointInfo& ep = endpoints[d + 1];
    report_ranges(ep, "write", result.write_errors[d], ignore_errors ? "" : "; nothing more was written to it");
    if (const int err = result.flush_error[d])
      spdlog::error("{} '{}': flush (fdatasync) failed: {}", ep.role, ep.path, std::strerror(err));
  }
  if (result.stopped || (result.read_err && !ignore_errors)) {
    for (std::size_t d = 0; d < plan.dests.size(); ++d)
      spdlog::warn("{} '{}': {} of {} sectors written", endpoints[d + 1].role, endpoints[d + 1].path,
                   result.sectors_written[d], result.sectors_total);
  }
}

}  // namespace kcopy
