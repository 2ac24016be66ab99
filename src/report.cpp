#include "kcopy/report.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cstring>

#include "kcopy/quote.hpp"

namespace kcopy {

int exit_status(const JobResult& result, int signal) {
  if (result.stopped && signal > 0) return 128 + signal;
  return static_cast<int>(result.write_err & 63) | (result.read_err ? 64 : 0);
}

namespace {

void report_ranges(const EndpointInfo& ep, const char* what, const ErrorRanges& errors, const char* tail) {
  const std::string name = ep.role + " " + quote(ep.path);
  for (const ErrorRange& e : errors.ranges())
    spdlog::error("{}: {} error at sectors {}-{} ({} sectors): {}{}", name, what, e.sector, e.sector + e.count - 1,
                  e.count, e.error == verify_mismatch ? "read back different data" : std::strerror(e.error), tail);
  if (errors.overflow_sectors())
    spdlog::error("{}: {} errors from sector {} on are not listed: {} more failed sectors", name, what,
                  errors.overflow_from(), errors.overflow_sectors());
}

}  // namespace

void report_result(const JobResult& result, const CopyPlan& plan, std::span<const EndpointInfo> endpoints,
                   bool ignore_errors) {
  report_ranges(endpoints[0], "read", result.read_errors, "");
  for (std::size_t d = 0; d < plan.dests.size(); ++d) {
    const EndpointInfo& ep = endpoints[d + 1];
    report_ranges(ep, "write", result.write_errors[d], ignore_errors ? "" : "; nothing more was written to it");
    report_ranges(ep, "verify", result.verify_errors[d], "");
    if (const int err = result.flush_error[d])
      spdlog::error("{} {}: flush (fdatasync) failed: {}", ep.role, quote(ep.path), std::strerror(err));
  }
  if (result.stopped || (result.read_err && !ignore_errors)) {
    for (std::size_t d = 0; d < plan.dests.size(); ++d)
      spdlog::warn("{} {}: {} of {} sectors written", endpoints[d + 1].role, quote(endpoints[d + 1].path),
                   result.sectors_written[d], result.sectors_total);
  }
}

void report_summary(const JobResult& result, std::size_t destinations, double seconds) {
  // What really reached the destinations, never the size of the plan.
  const auto written = std::span(result.sectors_written).first(destinations);
  const std::uint64_t most = *std::max_element(written.begin(), written.end());
  const auto complete = std::count(written.begin(), written.end(), result.sectors_total);
  const double mib_per_s = seconds > 0 ? static_cast<double>(sectors_to_bytes(most)) / (1 << 20) / seconds : 0.0;
  if (static_cast<std::size_t>(complete) == destinations && result.write_err == 0)
    spdlog::debug("copied {} sectors to {} destination(s) in {:.3f} s ({:.1f} MiB/s)", result.sectors_total,
                  destinations, seconds, mib_per_s);
  else
    spdlog::debug(
        "copied {} of {} sectors (the most any destination got; complete on {} of {} destinations) in "
        "{:.3f} s ({:.1f} MiB/s)",
        most, result.sectors_total, complete, destinations, seconds, mib_per_s);
}

}  // namespace kcopy
