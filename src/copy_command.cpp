#include "kcopy/copy_command.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <optional>

#include "kcopy/copy_plan.hpp"
#include "kcopy/device.hpp"
#include "kcopy/dry_run_plan.hpp"
#include "kcopy/error.hpp"
#include "kcopy/io_engine.hpp"
#include "kcopy/kcopyd.hpp"
#include "kcopy/overlap.hpp"
#include "kcopy/page_pool.hpp"
#include "kcopy/progress.hpp"
#include "kcopy/quote.hpp"
#include "kcopy/region.hpp"
#include "kcopy/report.hpp"
#include "kcopy/stop_signals.hpp"
#include "kcopy/sub_job_plan.hpp"

namespace kcopy {
namespace {

// Region i's role: the source, then destination 1, 2...; with --zero every
// region is a destination.
std::string role_of(std::size_t i, const Options& options) {
  if (options.zero) return "destination " + std::to_string(i + 1);
  return i == 0 ? "source" : "destination " + std::to_string(i);
}

// The byte just past a region, on its device.
std::uint64_t end_byte(const IoRegion& r) { return sectors_to_bytes(r.sector + r.count); }

// Undoes what setup changed when it fails, so that a refused command leaves
// every destination as it was: files it created are removed, files it grew get
// their old size back.
struct SetupUndo {
  std::vector<std::string> created;
  std::vector<std::pair<std::string, std::uint64_t>> grown;  // path, old size
  bool committed = false;
  ~SetupUndo() {
    if (committed) return;
    for (auto it = grown.rbegin(); it != grown.rend(); ++it)  // latest first: a file grown twice ends as it was
      [[maybe_unused]] int rc = ::truncate(it->first.c_str(), static_cast<off_t>(it->second));
    for (const auto& p : created) ::unlink(p.c_str());
  }
};

// The devices of a copy: each opened once, whatever number of regions it holds
// (a second O_EXCL open of a block device would fail with EBUSY), so that the
// engine sees regions on one endpoint as regions on one device (memmove order).
struct OpenedDevices {
  std::vector<Device> devices;
  std::vector<std::size_t> device_of;  // region i is on devices[device_of[i]]
};

OpenedDevices open_devices(const std::vector<RegionArg>& args, const Options& options, SetupUndo& undo) {
  OpenedDevices out;
  std::vector<std::optional<DeviceIdentity>> ids;
  std::vector<std::size_t> first_region;  // of each device
  for (std::size_t i = 0; i < args.size(); ++i) {
    ids.push_back(Device::identify(args[i].path));
    std::size_t k = 0;
    while (k < first_region.size() && !(ids[i] && ids[first_region[k]] == ids[i])) ++k;
    if (k == first_region.size()) first_region.push_back(i);
    out.device_of.push_back(k);
  }
  for (std::size_t k = 0; k < first_region.size(); ++k) {
    const std::size_t i = first_region[k];
    const auto first_dest = out.device_of.begin() + (options.zero ? 0 : 1);
    const bool has_dest = std::find(first_dest, out.device_of.end(), k) != out.device_of.end();
    // Read: the source, and destinations that --verify reads back.
    const OpenOptions open{.read = (!options.zero && out.device_of[0] == k) || (options.verify && has_dest),
                           .write = has_dest,
                           .buffered = options.buffered,
                           .exclusive = !options.force,
                           .dry_run = options.dry_run};
    const Device& dev = out.devices.emplace_back(Device::open(args[i].path, role_of(i, options), open));
    if (dev.created()) undo.created.push_back(dev.path());
    if (dev.direct_refused())
      spdlog::info("{} {}: O_DIRECT is not supported there; using buffered I/O", role_of(i, options),
                   quote(dev.path()));
  }
  return out;
}

// The backend's view of the devices: one endpoint each, with its placement on
// the medium it shares with other endpoints (a loop device and its backing file).
std::vector<FdEndpoint> fd_endpoints(const std::vector<Device>& devices) {
  std::vector<FdEndpoint> fds;
  for (const Device& dev : devices) {
    FdEndpoint ep = dev.endpoint();
    unsigned medium = 0;
    while (!(devices[medium].medium().id == dev.medium().id)) ++medium;
    ep.placement = {medium, dev.medium().offset};
    fds.push_back(ep);
  }
  return fds;
}

// What setup found of region i on `dev` (opened for writing when `written`).
void record_device(RegionRecord& r, const Device& dev, bool written, const Options& options) {
  r.opened = true;
  r.is_block = dev.is_block();
  r.size_bytes = dev.size_bytes();
  r.logical_block_size = dev.logical_block_size();
  r.direct = dev.is_direct();
  r.written = written;
  r.exclusive = written && dev.is_block() && !options.force;
  r.would_create = dev.would_create();
}

// The pool a copy can use: never more buffers than it has sub-jobs (plus a
// shortened head), so that a large --pages costs nothing on a small copy.
std::uint64_t pages_for_copy(const Options& options, std::uint64_t copy_bytes) {
  const std::uint64_t pages_per_buffer = (options.io_size + page_size - 1) / page_size;
  const std::uint64_t buffers = (copy_bytes + options.io_size - 1) / options.io_size + 1;
  return std::min(options.pages, buffers * pages_per_buffer);
}

// How the copy is done: the engine, its sub-jobs and pool, and the memmove
// order where a destination overlaps the source (the engine's own rules).
EngineRecord describe_engine(const ChosenBackend& chosen, const ClientConfig& config, const CopyPlan& plan,
                             const std::vector<Device>& devices, const std::vector<FdEndpoint>& fds, bool zero) {
  std::uint32_t alignment = devices[plan.from.endpoint].alignment();
  for (const IoRegion& d : plan.dests) alignment = std::max(alignment, devices[d.endpoint].alignment());
  const auto span_of = [&](const IoRegion& r) {
    const Placement& p = fds[r.endpoint].placement;
    return MediumSpan{p.medium, p.offset + sectors_to_bytes(r.sector), sectors_to_bytes(r.count)};
  };
  std::vector<MediumSpan> dests;
  for (const IoRegion& d : plan.dests) dests.push_back(span_of(d));
  const OverlapOrder order = zero ? OverlapOrder{} : overlap_order(span_of(plan.from), dests);
  const SubJobPlan sub_jobs(sectors_to_bytes(plan.from.sector), sectors_to_bytes(plan.from.count), config.io_size,
                            alignment);
  return {
      .engine = io_engine_name(chosen.engine),
      .reason = chosen.reason,
      .io_size = config.io_size,
      .sub_jobs = sub_jobs.count(),
      .pool_pages = config.pages,
      .in_flight = PagePool::capacity_for(config.pages, config.io_size),
      .descending = order.descending,
      .overlapping = order.gated,
  };
}

// Everything a copy needs once setup has passed every check. `undo` comes
// first, so that it runs last: after the devices are closed.
struct PreparedCopy {
  SetupUndo undo;
  OpenedDevices opened;
  std::vector<EndpointInfo> endpoints;  // of the regions (0 = source)
  CopyPlan plan;                        // endpoints are indexes into opened.devices
  ClientConfig config;
  ChosenBackend chosen;
};

// Parses the regions, opens the devices (read-only for a dry run), checks the
// plan and chooses the engine, recording each step in `record`. Throws
// kcopy::Error at the first thing the copy cannot do; nothing is written.
void prepare_copy(const Options& options, PreparedCopy& p, RunRecord& record) {
  const auto exists = [](const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
  };
  for (std::size_t i = 0; i < options.regions.size(); ++i) {
    RegionRecord& r = record.regions.emplace_back();
    r.role = role_of(i, options);
    r.argument = options.regions[i];
  }
  std::vector<RegionArg> args;
  for (std::size_t i = 0; i < options.regions.size(); ++i) {
    const RegionArg& arg = args.emplace_back(parse_region(options.regions[i], role_of(i, options), exists));
    record.regions[i].path = arg.path;
    record.regions[i].sector = arg.sector;
    record.regions[i].count = arg.count;
  }

  p.opened = open_devices(args, options, p.undo);
  const std::vector<Device>& devices = p.opened.devices;
  const std::vector<std::size_t>& device_of = p.opened.device_of;
  const std::size_t first_dest = options.zero ? 0 : 1;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const Device& dev = devices[device_of[i]];
    p.endpoints.push_back({role_of(i, options), args[i].path, dev.size_bytes(), !dev.is_block(), dev.medium()});
    const bool written = std::find(device_of.begin() + first_dest, device_of.end(), device_of[i]) != device_of.end();
    record_device(record.regions[i], dev, written, options);
  }
  CopyPlan& plan = p.plan = options.zero ? plan_zero(args, p.endpoints) : plan_copy(args, p.endpoints);
  // The reports name destination d by endpoints[d + 1]: a zero run has no source there.
  if (options.zero) p.endpoints.insert(p.endpoints.begin(), EndpointInfo{"source", "", 0, false, {}});
  for (auto& d : plan.dests) d.endpoint = static_cast<unsigned>(device_of[d.endpoint]);
  plan.from.endpoint = options.zero ? plan.dests[0].endpoint : static_cast<unsigned>(device_of[0]);
  if (!options.zero) {
    record.regions[0].sector = plan.from.sector;
    record.regions[0].count = plan.from.count;
  }
  for (std::size_t d = 0; d < plan.dests.size(); ++d) {
    const IoRegion& r = plan.dests[d];
    const Device& dev = devices[r.endpoint];
    dev.check_can_grow_to(end_byte(r));
    RegionRecord& rec = record.regions[d + first_dest];
    rec.sector = r.sector;
    rec.count = r.count;
    if (!dev.is_block() && end_byte(r) > dev.size_bytes()) rec.grows_to = end_byte(r);
  }

  const std::uint64_t copy_bytes = sectors_to_bytes(plan.from.count);
  // --verify reads back into a second buffer per sub-job.
  p.config = {(options.verify ? 2 : 1) * pages_for_copy(options, copy_bytes), options.io_size, /*io_thread=*/false,
              options.throttle, options.max_rate};
  const std::size_t max_requests = KcopydClient::max_requests(p.config, static_cast<unsigned>(plan.dests.size()));
  const std::vector<FdEndpoint> fds = fd_endpoints(devices);
  p.chosen = make_backend(options.io_engine, fds, max_requests, copy_bytes, options.io_size);
  spdlog::debug("I/O engine: {} ({})", io_engine_name(p.chosen.engine), p.chosen.reason);
  record.engine = describe_engine(p.chosen, p.config, plan, devices, fds, options.zero);
}

// Runs the prepared copy on this thread (no I/O thread to start: start-up
// matters to scripts doing many small copies), with the progress line if asked
// for; reports on stderr and returns the exit status.
int run_copy(const Options& options, PreparedCopy& p, StopSignals& signals, StderrSink& sink, RunRecord& record) {
  const CopyPlan& plan = p.plan;
  JobResult result;
  const auto start = std::chrono::steady_clock::now();
  {
    KcopydClient client(std::move(p.chosen.backend), p.config);
    const unsigned flags = (options.no_flush ? copy_no_flush : 0u) | (options.ignore_errors ? copy_ignore_errors : 0u) |
                           (options.write_seq ? copy_write_seq : 0u) | (options.verify ? copy_verify : 0u) |
                           (options.sparse ? copy_sparse : 0u);
    // Queued before anything is grown: the engine's own refusals change nothing.
    const auto done = [&](const JobResult& r) { result = r; };
    if (options.zero)
      client.zero(plan.dests, flags, done);
    else
      client.copy(plan.from, plan.dests, flags, done);
    if (options.write_seq && options.ignore_errors)
      spdlog::info(
          "--write-seq: --ignore-errors does not apply (as in dm-kcopyd): a write error drops that destination");
    for (const IoRegion& d : plan.dests) {
      Device& dev = p.opened.devices[d.endpoint];
      if (!dev.is_block()) p.undo.grown.emplace_back(dev.path(), dev.size_bytes());
      dev.grow_to(end_byte(d));
    }
    p.undo.committed = true;  // from here on, data is written
    signals.attach(client, plan.from.count);
    std::optional<ProgressReporter> progress;
    if (options.progress) {
      try {
        progress.emplace(sink, ::isatty(STDERR_FILENO) ? ProgressStyle::redraw : ProgressStyle::lines, client,
                         plan.from.count, static_cast<unsigned>(plan.dests.size()), signals);
      } catch (const std::exception& e) {
        spdlog::warn("no progress line: {}", e.what());  // the copy goes on without
      }
    }
    client.wait();  // returns when the copy has ended
    if (progress) progress->finish(result);
    signals.detach();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  record.result = result;
  record.stop_signal = signals.received();
  record.seconds = seconds;

  report_result(result, plan, p.endpoints, options.ignore_errors && !options.write_seq);
  report_summary(result, plan.dests.size(), seconds);
  return exit_status(result, signals.received());
}

}  // namespace

int run_copy_command(const Options& options, StderrSink& sink, RunRecord& record) {
  StopSignals signals(options.verbosity < 0);
  record.dry_run = options.dry_run;
  record.zeroing = options.zero;
  PreparedCopy prepared;
  prepare_copy(options, prepared, record);
  if (options.dry_run) {
    // Everything the copy would check has been checked: print the plan, write nothing.
    if (!options.json) std::cout << dry_run_plan(record) << std::flush;
    return 0;
  }
  return run_copy(options, prepared, signals, sink, record);
}

}  // namespace kcopy
