#include "kcopy/copy_command.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cerrno>
#include <chrono>
#include <cstring>
#include <iostream>
#include <memory>
#include <optional>

#include "kcopy/copy_endpoints.hpp"
#include "kcopy/copy_plan.hpp"
#include "kcopy/device.hpp"
#include "kcopy/dry_run_plan.hpp"
#include "kcopy/error.hpp"
#include "kcopy/io_engine.hpp"
#include "kcopy/kcopyd.hpp"
#include "kcopy/mapfile_copy.hpp"
#include "kcopy/mapfile_identity.hpp"
#include "kcopy/mapfile_lock.hpp"
#include "kcopy/nbd_uri.hpp"
#include "kcopy/overlap.hpp"
#include "kcopy/own_files.hpp"
#include "kcopy/page_pool.hpp"
#include "kcopy/progress.hpp"
#include "kcopy/quote.hpp"
#include "kcopy/region.hpp"
#include "kcopy/report.hpp"
#include "kcopy/standard_output.hpp"
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

// What setup found of region i on endpoint k (written to when `written`).
void record_endpoint(RegionRecord& r, const CopyEndpoints& endpoints, std::size_t k, bool written,
                     const Options& options) {
  const EndpointFacts& f = endpoints.facts(k);
  const Device* dev = endpoints.device(k);
  r.opened = true;
  r.is_block = dev && dev->is_block();
  r.size_bytes = f.size_bytes;
  r.logical_block_size = f.logical_block_size;
  r.direct = dev && dev->is_direct();
  r.written = written;
  r.exclusive = written && r.is_block && !options.force;
  r.would_create = dev && dev->would_create();
  if (dev && dev->created_path() != dev->path()) r.symlink_target = dev->created_path();
  r.nbd_connections = f.nbd_connections;
}

// The pool a copy can use: never more buffers than it has sub-jobs (plus a
// shortened head), so that a large --pages costs nothing on a small copy.
// A copy with an NBD endpoint takes nbd_default_pages unless --pages says otherwise.
std::uint64_t pages_for_copy(const Options& options, std::uint64_t copy_bytes, bool nbd) {
  const std::uint64_t pages_per_buffer = (options.io_size + page_size - 1) / page_size;
  const std::uint64_t buffers = (copy_bytes + options.io_size - 1) / options.io_size + 1;
  const std::uint64_t pages = nbd && !options.pages_given ? std::max(options.pages, nbd_default_pages) : options.pages;
  return std::min(pages, buffers * pages_per_buffer);
}

// How the copy is done: the engine, its sub-jobs and pool, and the memmove
// order where a destination overlaps the source (the engine's own rules).
EngineRecord describe_engine(const ChosenBackend& chosen, const ClientConfig& config, const CopyPlan& plan,
                             const CopyEndpoints& endpoints, bool zero) {
  std::uint32_t alignment = endpoints.facts(plan.from.endpoint).alignment;
  for (const IoRegion& d : plan.dests) alignment = std::max(alignment, endpoints.facts(d.endpoint).alignment);
  const auto span_of = [&](const IoRegion& r) {
    const Placement p = endpoints.placement(r.endpoint);
    return MediumSpan{p.medium, p.offset + sectors_to_bytes(r.sector), sectors_to_bytes(r.count)};
  };
  std::vector<MediumSpan> dests;
  for (const IoRegion& d : plan.dests) dests.push_back(span_of(d));
  const OverlapOrder order = zero ? OverlapOrder{} : overlap_order(span_of(plan.from), dests);
  const SubJobPlan sub_jobs(sectors_to_bytes(plan.from.sector), sectors_to_bytes(plan.from.count), config.io_size,
                            alignment);
  return {
      .engine = !endpoints.has_local()
                    ? "nbd"
                    : std::string(io_engine_name(chosen.engine)) + (endpoints.has_nbd() ? "+nbd" : ""),
      .reason = chosen.reason,
      .io_size = config.io_size,
      .sub_jobs = sub_jobs.count(),
      .pool_pages = config.pages,
      .in_flight = std::min<std::uint64_t>(PagePool::capacity_for(config.pages, config.io_size), sub_jobs.count()),
      .descending = order.descending,
      .overlapping = order.gated,
  };
}

// The files the regions are on, for the checks of own_files.hpp (region i of `record`).
std::vector<RegionFile> region_files(const CopyEndpoints& opened, const RunRecord& record) {
  std::vector<RegionFile> files;
  for (std::size_t i = 0; i < record.regions.size(); ++i) {
    RegionFile& f = files.emplace_back(RegionFile{record.regions[i].role, *record.regions[i].path, {}, {}, {}});
    const Device* dev = opened.device(opened.endpoint_of(i));
    if (dev && dev->would_create()) {
      f.create = dev->path();
    } else if (dev) {
      f.id = dev->identity();
      f.medium = dev->medium().id;
    }
  }
  return files;
}

// Everything a copy needs once setup has passed every check. `undo` comes
// first, so that it runs last: after the devices are closed.
struct PreparedCopy {
  SetupUndo undo;
  MapfileLock mapfile_lock;  // --mapfile: held until the end of the run
  std::unique_ptr<CopyEndpoints> opened;
  std::vector<EndpointInfo> endpoints;  // of the regions (0 = source)
  CopyPlan plan;                        // endpoints are indexes into opened's endpoints
  ClientConfig config;
  ChosenBackend chosen;
  std::unique_ptr<MapfileCopy> mapfile;  // --mapfile
};

// The job flags of the options, as the engine runs them (effective_flags:
// --write-seq turns --ignore-errors off, for --mapfile and the reports too).
unsigned copy_flags(const Options& options) {
  return effective_flags((options.no_flush ? copy_no_flush : 0u) | (options.ignore_errors ? copy_ignore_errors : 0u) |
                         (options.write_seq ? copy_write_seq : 0u) | (options.verify ? copy_verify : 0u) |
                         (options.sparse ? copy_sparse : 0u));
}

// Parses the regions, opens the devices (read-only for a dry run), checks the
// plan and chooses the engine, recording each step in `record`. Throws
// kcopy::Error at the first thing the copy cannot do; nothing is written.
void prepare_copy(const Options& options, PreparedCopy& p, RunRecord& record) {
  const auto exists = [](const std::string& path) {
    struct stat st {};
    return ::stat(path.c_str(), &st) == 0;
  };
  std::vector<std::string> roles;
  for (std::size_t i = 0; i < options.regions.size(); ++i) {
    RegionRecord& r = record.regions.emplace_back();
    r.role = roles.emplace_back(role_of(i, options));
    r.argument = is_nbd_uri(options.regions[i]) ? redacted_region(options.regions[i]) : options.regions[i];
  }
  std::vector<RegionArg> args;
  for (std::size_t i = 0; i < options.regions.size(); ++i) {
    const RegionArg& arg = args.emplace_back(parse_region(options.regions[i], roles[i], exists));
    record.regions[i].path = arg.nbd ? redacted_uri(arg.path) : arg.path;
    record.regions[i].sector = arg.sector;
    record.regions[i].count = arg.count;
  }

  if (!options.mapfile.empty()) p.mapfile_lock = MapfileLock::acquire(options.mapfile, options.dry_run);
  p.opened = std::make_unique<CopyEndpoints>(args, roles, options, p.undo.created);
  const CopyEndpoints& opened = *p.opened;
  const std::vector<RegionFile> files = region_files(opened, record);
  refuse_standard_streams_as_regions(files);
  if (!options.mapfile.empty()) refuse_mapfile_as_region(options.mapfile, files);
  const std::size_t first_dest = options.zero ? 0 : 1;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const std::size_t k = opened.endpoint_of(i);
    const EndpointFacts& f = opened.facts(k);
    // Each region is named as typed (a symlink or another name of the same device included).
    p.endpoints.push_back({roles[i], *record.regions[i].path, f.size_bytes, f.growable, f.medium});
    record_endpoint(record.regions[i], opened, k, f.written, options);
  }
  CopyPlan& plan = p.plan = options.zero ? plan_zero(args, p.endpoints) : plan_copy(args, p.endpoints);
  // The reports name destination d by endpoints[d + 1]: a zero run has no source there.
  if (options.zero) p.endpoints.insert(p.endpoints.begin(), EndpointInfo{"source", "", 0, false, {}});
  for (auto& d : plan.dests) d.endpoint = static_cast<unsigned>(opened.endpoint_of(d.endpoint));
  plan.from.endpoint = options.zero ? plan.dests[0].endpoint : static_cast<unsigned>(opened.endpoint_of(0));
  if (!options.zero) {
    record.regions[0].sector = plan.from.sector;
    record.regions[0].count = plan.from.count;
  }
  for (std::size_t d = 0; d < plan.dests.size(); ++d) {
    const IoRegion& r = plan.dests[d];
    RegionRecord& rec = record.regions[d + first_dest];
    rec.sector = r.sector;
    rec.count = r.count;
    const Device* dev = opened.device(r.endpoint);
    if (!dev) continue;  // an NBD export: never grown (the plan checked the range)
    dev->check_can_grow_to(end_byte(r));
    if (!dev->is_block() && end_byte(r) > dev->size_bytes()) rec.grows_to = end_byte(r);
  }

  const std::uint64_t copy_bytes = sectors_to_bytes(plan.from.count);
  // --verify reads back into a second buffer per sub-job.
  p.config = {(options.verify ? 2 : 1) * pages_for_copy(options, copy_bytes, opened.has_nbd()), options.io_size,
              /*io_thread=*/false, options.throttle, options.max_rate};
  const std::size_t max_requests = KcopydClient::max_requests(p.config, static_cast<unsigned>(plan.dests.size()));
  try {
    p.chosen = p.opened->make_backend(options.io_engine, max_requests, copy_bytes, options.io_size);
  } catch (const Error& e) {
    if (e.error_number() != EAGAIN) throw;
    throw Error(std::string(e.what()) + " (--pages sets how many)", EAGAIN);
  }
  record.engine = describe_engine(p.chosen, p.config, plan, opened, options.zero);
  if (options.write_seq && record.engine->descending) {
    const unsigned gated = record.engine->overlapping;  // the destinations that overlap from above
    const EndpointInfo& d = p.endpoints[gated ? std::countr_zero(gated) + 1 : 1];
    throw Error(d.role + " " + quote(d.path) +
                ": overlaps the source from above, which needs descending writes; --write-seq writes in "
                "ascending order (copy without --write-seq, or to another place)");
  }
  if (!options.mapfile.empty()) {
    if (record.engine->overlapping)
      throw Error(
          "--mapfile: a destination overlaps the source, and such a copy cannot be resumed (it changes its "
          "own source); copy without --mapfile, or to another place");
    // Named as the map names them where they are the same files: its comments stay as they are.
    std::vector<EndpointInfo> named = p.endpoints;
    const std::vector<std::string> names = mapfile_identity_names(
        options.mapfile, read_mapfile_identity(options.mapfile), p.endpoints, plan, files, options.force);
    for (std::size_t i = 0; i < named.size(); ++i) named[i].path = names[i];
    p.mapfile = std::make_unique<MapfileCopy>(options.mapfile, plan, named, copy_flags(options), options.force,
                                              options.mapfile_interval);
    record.mapfile = p.mapfile->record();
  }
  spdlog::debug("I/O engine: {} ({}); up to {} sub-job{} in flight", record.engine->engine, p.chosen.reason,
                record.engine->in_flight, record.engine->in_flight == 1 ? "" : "s");
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
    const unsigned flags = copy_flags(options);
    // Queued before anything is grown: the engine's own refusals change nothing.
    const auto done = [&](const JobResult& r) { result = r; };
    if (p.mapfile)
      p.mapfile->start(client);
    else if (options.zero)
      client.zero(plan.dests, flags, done);
    else
      client.copy(plan.from, plan.dests, flags, done);
    if (options.write_seq && options.ignore_errors)
      spdlog::info(
          "--write-seq: --ignore-errors does not apply (as in dm-kcopyd): a write error drops that destination");
    for (const IoRegion& d : plan.dests) {
      Device* dev = p.opened->device(d.endpoint);
      if (!dev) continue;  // an NBD export
      if (!dev->is_block()) p.undo.grown.emplace_back(dev->path(), dev->size_bytes());
      dev->grow_to(end_byte(d));
    }
    p.undo.committed = true;  // from here on, data is written
    const std::uint64_t total = p.mapfile ? p.mapfile->sectors_to_copy() : plan.from.count;
    signals.attach(client, total);
    std::optional<ProgressReporter> progress;
    if (options.progress) {
      try {
        progress.emplace(sink, ::isatty(STDERR_FILENO) ? ProgressStyle::redraw : ProgressStyle::lines, client, total,
                         static_cast<unsigned>(plan.dests.size()), signals);
      } catch (const std::exception& e) {
        spdlog::warn("no progress line: {}", e.what());  // the copy goes on without
      }
    }
    client.wait();  // returns when the copy has ended
    if (p.mapfile) {
      result = p.mapfile->finish();
      record.mapfile = p.mapfile->record();
    }
    if (progress) progress->finish(result);
    signals.detach();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  record.result = result;
  record.stop_signal = signals.received();
  record.seconds = seconds;

  report_result(result, plan, p.endpoints, copy_flags(options) & copy_ignore_errors);
  report_summary(result, plan.dests.size(), seconds);
  return exit_status(result, signals.received());
}

}  // namespace

int run_copy_command(const Options& options, StopSignals& signals, StderrSink& sink, RunRecord& record) {
  record.dry_run = options.dry_run;
  record.zeroing = options.zero;
  PreparedCopy prepared;
  prepare_copy(options, prepared, record);
  if (options.dry_run) {
    // Everything the copy would check has been checked: print the plan, write nothing.
    if (!options.json) write_standard_output(dry_run_plan(record), "the plan");  // its status stays 0
    return 0;
  }
  return run_copy(options, prepared, signals, sink, record);
}

}  // namespace kcopy
