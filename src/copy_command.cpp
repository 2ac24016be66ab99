#include "kcopy/copy_command.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "kcopy/copy_plan.hpp"
#include "kcopy/device.hpp"
#include "kcopy/error.hpp"
#include "kcopy/io_engine.hpp"
#include "kcopy/kcopyd.hpp"
#include "kcopy/quote.hpp"
#include "kcopy/region.hpp"
#include "kcopy/report.hpp"
#include "kcopy/stop_signals.hpp"

namespace kcopy {
namespace {

std::string role_of(std::size_t i) { return i == 0 ? "source" : "destination " + std::to_string(i); }

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
    const bool has_dest = std::find(out.device_of.begin() + 1, out.device_of.end(), k) != out.device_of.end();
    const OpenOptions open{
        .read = out.device_of[0] == k, .write = has_dest, .buffered = options.buffered, .exclusive = !options.force};
    const Device& dev = out.devices.emplace_back(Device::open(args[i].path, role_of(i), open));
    if (dev.created()) undo.created.push_back(dev.path());
    if (dev.direct_refused())
      spdlog::info("{} {}: O_DIRECT is not supported there; using buffered I/O", role_of(i), quote(dev.path()));
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

// The pool a copy can use: never more buffers than it has sub-jobs (plus a
// shortened head), so that a large --pages costs nothing on a small copy.
std::uint64_t pages_for_copy(const Options& options, std::uint64_t copy_bytes) {
  const std::uint64_t pages_per_buffer = (options.io_size + page_size - 1) / page_size;
  const std::uint64_t buffers = (copy_bytes + options.io_size - 1) / options.io_size + 1;
  return std::min(options.pages, buffers * pages_per_buffer);
}

}  // namespace

int run_copy_command(const Options& options) {
  StopSignals signals(options.verbosity < 0);
  const auto exists = [](const std::string& p) {
    struct stat st {};
    return ::stat(p.c_str(), &st) == 0;
  };

  std::vector<RegionArg> args;
  for (std::size_t i = 0; i < options.regions.size(); ++i)
    args.push_back(parse_region(options.regions[i], role_of(i), exists));

  SetupUndo undo;
  OpenedDevices opened = open_devices(args, options, undo);
  std::vector<Device>& devices = opened.devices;
  const std::vector<std::size_t>& device_of = opened.device_of;
  std::vector<EndpointInfo> endpoints;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const Device& dev = devices[device_of[i]];
    endpoints.push_back({role_of(i), args[i].path, dev.size_bytes(), !dev.is_block(), dev.medium()});
  }
  CopyPlan plan = plan_copy(args, endpoints);
  plan.from.endpoint = static_cast<unsigned>(device_of[0]);
  for (auto& d : plan.dests) d.endpoint = static_cast<unsigned>(device_of[d.endpoint]);
  const auto end_of = [](const IoRegion& r) { return sectors_to_bytes(r.sector + r.count); };
  for (const IoRegion& d : plan.dests) devices[d.endpoint].check_can_grow_to(end_of(d));

  const std::uint64_t copy_bytes = sectors_to_bytes(plan.from.count);
  const ClientConfig config{pages_for_copy(options, copy_bytes), options.io_size, /*io_thread=*/false};
  const std::size_t max_requests = KcopydClient::max_requests(config, static_cast<unsigned>(plan.dests.size()));
  ChosenBackend chosen =
      make_backend(options.io_engine, fd_endpoints(devices), max_requests, copy_bytes, options.io_size);
  spdlog::debug("I/O engine: {} ({})", io_engine_name(chosen.engine), chosen.reason);

  JobResult result;
  const auto start = std::chrono::steady_clock::now();
  {
    // The copy runs on this thread (no I/O thread to start: start-up matters
    // to scripts doing many small copies); wait() returns when it has ended.
    KcopydClient client(std::move(chosen.backend), config);
    for (const IoRegion& d : plan.dests) {
      Device& dev = devices[d.endpoint];
      if (!dev.is_block()) undo.grown.emplace_back(dev.path(), dev.size_bytes());
      dev.grow_to(end_of(d));
    }
    undo.committed = true;  // from here on, data is written
    const unsigned flags = (options.no_flush ? copy_no_flush : 0u) | (options.ignore_errors ? copy_ignore_errors : 0u);
    client.copy(plan.from, plan.dests, flags, [&](const JobResult& r) { result = r; });
    signals.attach(client, plan.from.count);
    client.wait();
    signals.detach();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  report_result(result, plan, endpoints, options.ignore_errors);
  report_summary(result, plan.dests.size(), seconds);
  return exit_status(result, signals.received());
}

}  // namespace kcopy
