#include "kcopy/json_report.hpp"

#include <signal.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <nlohmann/json.hpp>

#include "kcopy/version.hpp"

namespace kcopy {
namespace {

using json = nlohmann::ordered_json;  // fields in the order written, as in the man page

// The schema's version: raised when a field changes meaning or goes away
// (fields may be added without a change).
constexpr int schema_version = 1;

template <typename T>
json or_null(const std::optional<T>& v) {
  return v ? json(*v) : json(nullptr);
}

json error_list(const ErrorRanges& errors) {
  json list = json::array();
  for (const ErrorRange& e : errors.ranges())
    list.push_back({{"sector", e.sector},
                    {"count", e.count},
                    {"error", e.error == verify_mismatch ? "MISMATCH" : errno_name(e.error)},
                    {"message", e.error == verify_mismatch ? "read back different data"
                                : e.error == ended_early   ? "ended before these sectors"
                                                           : std::strerror(e.error)}});
  return list;
}

json not_listed(const ErrorRanges& errors) {
  if (!errors.overflow_sectors()) return nullptr;
  return {{"from_sector", errors.overflow_from()}, {"sectors", errors.overflow_sectors()}};
}

json region(const RegionRecord& r) {
  json j = {
      {"argument", r.argument},
      {"path", or_null(r.path)},
      {"sector", or_null(r.sector)},
      {"count", or_null(r.count)},
      {"logical_block_size", r.opened ? json(r.logical_block_size) : json(nullptr)},
      {"device_bytes", r.opened ? json(r.size_bytes) : json(nullptr)},
      {"block_device", r.opened ? json(r.is_block) : json(nullptr)},
      {"direct_io", r.opened ? json(r.direct) : json(nullptr)},
      {"exclusive", r.opened ? json(r.exclusive) : json(nullptr)},
      {"would_create", r.would_create},
      {"grows_to", or_null(r.grows_to)},
      {"nbd_connections", r.opened && r.nbd_connections ? json(r.nbd_connections) : json(nullptr)},
  };
  return j;
}

json plan(const EngineRecord& e, std::size_t destinations) {
  json overlapping = json::array();
  for (std::size_t d = 0; d < destinations; ++d)
    if (e.overlapping & (1u << d)) overlapping.push_back(d + 1);
  return {
      {"io_engine", e.engine},
      {"io_engine_reason", e.reason},
      {"io_size", e.io_size},
      {"sub_jobs", e.sub_jobs},
      {"pool_pages", e.pool_pages},
      {"sub_jobs_in_flight", e.in_flight},
      {"order", e.descending ? "descending" : "ascending"},
      {"overlapping_destinations", overlapping},
  };
}

}  // namespace

std::string errno_name(int error) {
  const char* name = ::strerrorname_np(error);
  return name ? name : std::to_string(error);
}

std::string signal_name(int sig) {
  const char* abbrev = ::sigabbrev_np(sig);
  return abbrev ? std::string("SIG") + abbrev : std::to_string(sig);
}

const char* destination_status(const RunRecord& run, std::size_t d) {
  if (!run.result) return "not_written";
  const JobResult& r = *run.result;
  if (!r.write_errors[d].empty()) return "write_error";
  if (r.flush_error[d]) return "flush_error";
  if (!r.verify_errors[d].empty()) return "verify_error";
  if (r.write_err & (1ul << d)) return "write_error";
  if (r.sectors_written[d] < r.sectors_total) return "not_written";
  return "ok";
}

std::string json_report(const RunRecord& run) {
  const JobResult* result = run.result ? &*run.result : nullptr;
  const bool interrupted = run.exit_status > 128 && run.stop_signal > 0;

  json source = nullptr;
  json destinations = json::array();
  std::uint64_t most_written = 0;
  for (std::size_t i = 0; i < run.regions.size(); ++i) {
    json j = region(run.regions[i]);
    if (i == 0 && !run.zeroing) {
      j["errors"] = result ? error_list(result->read_errors) : json::array();
      j["errors_not_listed"] = result ? not_listed(result->read_errors) : json(nullptr);
      source = std::move(j);
      continue;
    }
    const std::size_t d = run.zeroing ? i : i - 1;
    const std::uint64_t written = result ? result->sectors_written[d] : 0;
    most_written = std::max(most_written, written);
    j["status"] = destination_status(run, d);
    j["sectors_written"] = written;
    j["errors"] = result ? error_list(result->write_errors[d]) : json::array();
    j["errors_not_listed"] = result ? not_listed(result->write_errors[d]) : json(nullptr);
    j["verify_errors"] = result ? error_list(result->verify_errors[d]) : json::array();
    j["flush_error"] = result && result->flush_error[d] ? json(errno_name(result->flush_error[d])) : json(nullptr);
    destinations.push_back(std::move(j));
  }

  // What really reached the destinations (the most any got), never the plan's size.
  const std::uint64_t bytes = sectors_to_bytes(most_written);
  const double seconds = run.seconds > 0 ? run.seconds : 0;
  json report = {
      {"version", schema_version},
      {"kcopy_version", version},
      {"dry_run", run.dry_run},
      {"exit_status", run.exit_status},
      {"interrupted_by", interrupted ? json(signal_name(run.stop_signal)) : json(nullptr)},
      {"error", or_null(run.error)},
      {"read_err", result ? result->read_err : false},
      {"write_err", result ? static_cast<std::uint64_t>(result->write_err & 63) : 0},
      {"source", source},
      {"destinations", destinations},
      {"bytes", bytes},
      {"mapfile", run.mapfile ? json{{"path", run.mapfile->path},
                                     {"existed", run.mapfile->existed},
                                     {"finished_bytes_before", run.mapfile->finished_bytes_before},
                                     {"finished_bytes", run.mapfile->finished_bytes},
                                     {"bytes_to_copy", run.mapfile->bytes_to_copy}}
                              : json(nullptr)},
      {"seconds", std::round(seconds * 1e6) / 1e6},
      {"bytes_per_second", seconds > 0 ? static_cast<std::uint64_t>(std::llround(bytes / seconds)) : 0},
      {"plan", run.engine ? plan(*run.engine, destinations.size()) : json(nullptr)},
  };
  return report.dump(2, ' ', false, json::error_handler_t::replace) + "\n";
}

}  // namespace kcopy
