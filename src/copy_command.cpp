#include "kcopy/copy_command.hpp"

#include <spdlog/spdlog.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstring>

#include "kcopy/aio_backend.hpp"
#include "kcopy/copy_plan.hpp"
#include "kcopy/device.hpp"
#include "kcopy/error.hpp"
#include "kcopy/kcopyd.hpp"
#include "kcopy/region.hpp"
#include "kcopy/report.hpp"
#include "kcopy/stop_signals.hpp"
#include "kcopy/sync_backend.hpp"

namespace kcopy {
namespace {

std::string role_of(std::size_t i) { return i == 0 ? "source" : "destination " + std::to_string(i); }

// Removes the destination files this run created when setup fails, so that a
// refused command leaves nothing behind.
struct CreatedFiles {
  std::vector<std::string> paths;
  bool keep = false;
  ~CreatedFiles() {
    if (!keep)
      for (const auto& p : paths) ::unlink(p.c_str());
  }
};

// The devices of a copy: each opened once, whatever number of regions it holds
// (a second O_EXCL open of a block device would fail with EBUSY), so that the
// engine sees regions on one endpoint as regions on one device (memmove order).
struct OpenedDevices {
  std::vector<Device> devices;
  std::vector<std::size_t> device_of;  // region i is on devices[device_of[i]]
};

OpenedDevices open_devices(const std::vector<RegionArg>& args, const Options& options, CreatedFiles& created) {
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
    if (dev.created()) created.paths.push_back(dev.path());
    if (dev.direct_refused())
      spdlog::info("{} '{}': O_DIRECT is not supported there; using buffered I/O", role_of(i), dev.path());
  }
  return out;
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

  CreatedFiles created;
  OpenedDevices opened = open_devices(args, options, created);
  const std::vector<Device>& devices = opened.devices;
  const std::vector<std::size_t>& device_of = opened.device_of;
  std::vector<EndpointInfo> endpoints;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const Device& dev = devices[device_of[i]];
    endpoints.push_back({role_of(i), args[i].path, dev.size_bytes(), !dev.is_block(), dev.identity()});
  }
  CopyPlan plan = plan_copy(args, endpoints);
  plan.from.endpoint = static_cast<unsigned>(device_of[0]);
  for (auto& d : plan.dests) d.endpoint = static_cast<unsigned>(device_of[d.endpoint]);

  // A copy of one sub-job or less is done with plain pread/pwrite: an AIO
  // context costs more to tear down (an RCU grace period) than it would save.
  std::vector<FdEndpoint> fds;
  for (const auto& dev : devices) fds.push_back(dev.endpoint());
  const ClientConfig config{options.pages, options.io_size, /*io_thread=*/false};
  const std::size_t max_requests = KcopydClient::max_requests(config, static_cast<unsigned>(plan.dests.size()));
  std::unique_ptr<IoBackend> backend;
  if (sectors_to_bytes(plan.from.count) <= options.io_size)
    backend = std::make_unique<SyncBackend>(std::move(fds), max_requests);
  else
    backend = std::make_unique<AioBackend>(std::move(fds), max_requests);

  JobResult result;
  const auto start = std::chrono::steady_clock::now();
  {
    // The copy runs on this thread (no I/O thread to start: start-up matters
    // to scripts doing many small copies); wait() returns when it has ended.
    KcopydClient client(std::move(backend), config);
    for (std::size_t d = 0; d < plan.dests.size(); ++d)
      opened.devices[plan.dests[d].endpoint].grow_to(sectors_to_bytes(plan.dests[d].sector + plan.dests[d].count));
    created.keep = true;  // from here on, data is written
    const unsigned flags = (options.no_flush ? copy_no_flush : 0u) | (options.ignore_errors ? copy_ignore_errors : 0u);
    client.copy(plan.from, plan.dests, flags, [&](const JobResult& r) { result = r; });
    signals.attach(client);
    client.wait();
    signals.detach();
  }
  const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();

  report_result(result, plan, endpoints, options.ignore_errors);
  const double mib = static_cast<double>(sectors_to_bytes(plan.from.count)) / (1 << 20);
  spdlog::debug("copied {} sectors to {} destination(s) in {:.3f} s ({:.1f} MiB/s)", plan.from.count, plan.dests.size(),
                seconds, seconds > 0 ? mib / seconds : 0.0);
  return exit_status(result, signals.received());
}

}  // namespace kcopy
