#include "kcopy/copy_endpoints.hpp"

#include <spdlog/spdlog.h>

#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cmath>
#include <limits>
#include <memory>

#include "kcopy/error.hpp"
#include "kcopy/nbd_program.hpp"
#include "kcopy/nbd_uri.hpp"
#include "kcopy/quote.hpp"
#include "kcopy/units.hpp"

#ifdef KCOPY_HAVE_NBD
#include "kcopy/multiplex_backend.hpp"
#include "kcopy/nbd_backend.hpp"
#else
namespace kcopy {
class NbdExport {};  // a build without libnbd opens none
}  // namespace kcopy
#endif

namespace kcopy {
namespace {

#ifdef KCOPY_HAVE_NBD
// An NBD export's medium: no local device has this identity; `ino` tells exports apart.
Medium nbd_medium(std::size_t export_index) {
  return {{false, std::numeric_limits<dev_t>::max(), static_cast<ino_t>(export_index)}, 0};
}
#endif

// Device::open, with the command's way out of "in use" (the library's callers have their own).
Device open_with_hint(const std::string& path, const std::string& role, const OpenOptions& open) {
  try {
    return Device::open(path, role, open);
  } catch (const Error& e) {
    if (e.error_number() != EBUSY) throw;
    throw Error(std::string(e.what()) + "; use --force to write to it anyway", EBUSY);
  }
}

}  // namespace

CopyEndpoints::CopyEndpoints(std::span<const RegionArg> args, std::span<const std::string> roles,
                             const Options& options, std::vector<std::string>& created)
    : nbd_timeout_seconds_(options.nbd_timeout) {
  // Group the regions: one endpoint per device (by identity) or URI (by string).
  std::vector<std::optional<DeviceIdentity>> ids;
  std::vector<std::size_t> first_region;  // of each endpoint
  const auto same = [&](std::size_t a, std::size_t b) {
    if (args[a].nbd || args[b].nbd) return args[a].nbd && args[b].nbd && args[a].path == args[b].path;
    return ids[a] && ids[a] == ids[b];
  };
  for (std::size_t i = 0; i < args.size(); ++i) {
    ids.push_back(args[i].nbd ? std::nullopt : Device::identify(args[i].path));
    std::size_t k = 0;
    while (k < first_region.size() && !same(first_region[k], i)) ++k;
    if (k == first_region.size()) first_region.push_back(i);
    endpoint_of_.push_back(k);
  }
  const std::size_t first_dest = options.zero ? 0 : 1;
  for (std::size_t k = 0; k < first_region.size(); ++k) {
    const std::size_t i = first_region[k];
    const bool has_dest = std::find(endpoint_of_.begin() + first_dest, endpoint_of_.end(), k) != endpoint_of_.end();
    EndpointFacts f;
    if (args[i].nbd) {
#ifdef KCOPY_HAVE_NBD
      NbdExport& ex = exports_.emplace_back(NbdExport::open(args[i].path, roles[i], {.write = has_dest}));
      f = {.name = redacted_uri(args[i].path),
           .size_bytes = ex.size_bytes(),
           .alignment = ex.min_block_size(),
           .logical_block_size = std::max<std::uint32_t>(ex.min_block_size(), sector_size),
           .medium = nbd_medium(exports_.size() - 1),
           .nbd_connections = static_cast<unsigned>(ex.connections())};
      spdlog::debug("{} {}: NBD export of {} bytes, block sizes minimum {} preferred {}, {} connection(s){}", roles[i],
                    quote(f.name), ex.size_bytes(), ex.min_block_size(), ex.preferred_block_size(), ex.connections(),
                    ex.can_multi_conn() ? " (multi-conn)" : "");
      local_.emplace_back();
      nbd_.push_back(exports_.size() - 1);
#else
      std::string where;
      for (const std::string& p : nbd_program_paths()) where += (where.empty() ? "" : " or ") + quote(p);
      throw Error(roles[i] + " " + quote(redacted_uri(args[i].path)) + ": NBD copies run in kcopy-nbd, and " + where +
                      " could not be run (kcopy was built without libnbd-dev?)",
                  ENOSYS);
#endif
    } else {
      // Read: the source, and destinations that --verify reads back.
      const OpenOptions open{.read = (!options.zero && endpoint_of_[0] == k) || (options.verify && has_dest),
                             .write = has_dest,
                             .buffered = options.buffered,
                             .exclusive = !options.force,
                             .dry_run = options.dry_run};
      const Device& dev = devices_.emplace_back(open_with_hint(args[i].path, roles[i], open));
      if (dev.created()) created.push_back(dev.created_path());
      if (dev.direct_refused())
        spdlog::info("{} {}: O_DIRECT is not supported there; using buffered I/O", roles[i], quote(dev.path()));
      f = {.name = dev.path(),
           .size_bytes = dev.size_bytes(),
           .alignment = dev.alignment(),
           .logical_block_size = dev.logical_block_size(),
           .medium = dev.medium(),
           .growable = !dev.is_block()};
      local_.push_back(devices_.size() - 1);
      nbd_.push_back(0);
    }
    f.written = has_dest;
    facts_.push_back(f);
  }
}

CopyEndpoints::~CopyEndpoints() = default;

Placement CopyEndpoints::placement(std::size_t k) const {
  unsigned medium = 0;
  while (!(facts_[medium].medium.id == facts_[k].medium.id)) ++medium;
  return {medium, facts_[k].medium.offset};
}

ChosenBackend CopyEndpoints::make_backend(IoEngine engine, std::size_t max_requests, std::uint64_t copy_bytes,
                                          std::uint64_t io_size) {
  // The local devices, in endpoint order, placed on their media.
  std::vector<FdEndpoint> fds;
  for (std::size_t k = 0; k < size(); ++k) {
    if (!local_[k]) continue;
    FdEndpoint ep = devices_[*local_[k]].endpoint();
    ep.placement = placement(k);
    fds.push_back(ep);
  }
  ChosenBackend chosen;
  if (exports_.empty()) {
    chosen = kcopy::make_backend(engine, std::move(fds), max_requests, copy_bytes, io_size);
  } else {
#ifdef KCOPY_HAVE_NBD
    auto nbd = std::make_unique<NbdBackend>(
        std::move(exports_), max_requests,
        std::chrono::milliseconds(static_cast<std::int64_t>(std::ceil(nbd_timeout_seconds_ * 1000))));
    exports_.clear();
    if (fds.empty()) {
      chosen = {std::move(nbd), engine, "every endpoint is an NBD export (libnbd)"};
    } else {
      ChosenBackend local = kcopy::make_backend(engine, std::move(fds), max_requests, copy_bytes, io_size);
      std::vector<MultiplexBackend::Route> routes;
      for (std::size_t k = 0; k < size(); ++k)  // the local child's endpoints are devices_, in order
        routes.push_back(local_[k] ? MultiplexBackend::Route{0, static_cast<unsigned>(*local_[k]), placement(k)}
                                   : MultiplexBackend::Route{1, static_cast<unsigned>(nbd_[k]), placement(k)});
      std::vector<std::unique_ptr<IoBackend>> children;
      children.push_back(std::move(local.backend));
      children.push_back(std::move(nbd));
      chosen = {std::make_unique<MultiplexBackend>(std::move(children), std::move(routes), max_requests), local.engine,
                local.reason + "; NBD exports through libnbd", std::move(local.methods)};
    }
#endif
  }
  // -v names each endpoint's I/O method.
  for (std::size_t k = 0; k < size(); ++k)
    spdlog::debug("{}: I/O through {}", quote(facts_[k].name),
                  local_[k] ? io_engine_name(chosen.methods.at(*local_[k])) : "libnbd");
  return chosen;
}

}  // namespace kcopy
