#include "kcopy/report.hpp"

#include <fcntl.h>
#include <linux/fs.h>
#include <spdlog/spdlog.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>

#include "kcopy/nbd_uri.hpp"
#include "kcopy/quote.hpp"

namespace kcopy {

int exit_status(const JobResult& result, int signal) {
  if (result.stopped && signal > 0) return 128 + signal;
  return static_cast<int>(result.write_err & 63) | (result.read_err ? 64 : 0);
}

namespace {

// "1 sector", "8 sectors".
std::string sectors(std::uint64_t n) { return std::to_string(n) + (n == 1 ? " sector" : " sectors"); }

// How long the file or block device at `path` is now, in words ("8192 sectors",
// "1000 bytes"), or "" when it cannot be told (gone, an NBD export).
std::string length_now(const std::string& path) {
  struct stat st {};
  if (is_nbd_uri(path) || ::stat(path.c_str(), &st) != 0) return "";
  std::uint64_t bytes = static_cast<std::uint64_t>(st.st_size);
  if (S_ISBLK(st.st_mode)) {
    const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    const bool ok = fd >= 0 && ::ioctl(fd, BLKGETSIZE64, &bytes) == 0;
    if (fd >= 0) ::close(fd);
    if (!ok) return "";
  } else if (!S_ISREG(st.st_mode)) {
    return "";
  }
  return bytes % sector_size ? std::to_string(bytes) + " bytes" : sectors(bytes_to_sectors(bytes));
}

// The cause of a failed range, in words.
std::string cause(const EndpointInfo& ep, int error) {
  if (error == verify_mismatch) return "read back different data";
  if (error == ended_early) return "it ended before these sectors";
  if (error == connection_lost && is_nbd_uri(ep.path)) return "the server closed the connection";
  return std::strerror(error);
}

void report_ranges(const EndpointInfo& ep, const char* what, const ErrorRanges& errors, const char* tail) {
  const std::string name = ep.role + " " + quote(ep.path);
  bool ended = false;  // a source that ended early is said once, where it ended
  for (const ErrorRange& e : errors.ranges()) {
    if (e.error == ended_early && ep.role == "source") {
      if (ended) continue;
      ended = true;
      const std::string now = length_now(ep.path);
      spdlog::error("{}: the source ended early at sector {}{}{}", name, e.sector,
                    now.empty() ? "" : " (it is now " + now + " long)", tail);
      continue;
    }
    spdlog::error("{}: {} error at sectors {}-{} ({}): {}{}", name, what, e.sector, e.sector + e.count - 1,
                  sectors(e.count), cause(ep, e.error), tail);
  }
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
      spdlog::warn("{} {}: {} of {} written", endpoints[d + 1].role, quote(endpoints[d + 1].path),
                   result.sectors_written[d], sectors(result.sectors_total));
  }
}

void report_summary(const JobResult& result, std::size_t destinations, double seconds) {
  // What really reached the destinations, never the size of the plan.
  const auto written = std::span(result.sectors_written).first(destinations);
  const std::uint64_t most = *std::max_element(written.begin(), written.end());
  const auto complete = std::count(written.begin(), written.end(), result.sectors_total);
  const double mib_per_s = seconds > 0 ? static_cast<double>(sectors_to_bytes(most)) / (1 << 20) / seconds : 0.0;
  if (static_cast<std::size_t>(complete) == destinations && result.write_err == 0)
    spdlog::debug("copied {} to {} destination(s) in {:.3f} s ({:.1f} MiB/s)", sectors(result.sectors_total),
                  destinations, seconds, mib_per_s);
  else
    spdlog::debug(
        "copied {} of {} (the most any destination got; complete on {} of {} destinations) in "
        "{:.3f} s ({:.1f} MiB/s)",
        most, sectors(result.sectors_total), complete, destinations, seconds, mib_per_s);
}

}  // namespace kcopy
