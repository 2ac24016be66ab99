#pragma once
// The endpoints of a command-line copy: each local device or file, and each NBD
// export, opened once however many regions it holds, and the one IoBackend the
// engine sees over all of them (nbdcopy's rw_ops: one ops table per kind).

#include <cstddef>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "kcopy/cli.hpp"
#include "kcopy/device.hpp"
#include "kcopy/io_engine.hpp"
#include "kcopy/region.hpp"

namespace kcopy {

class NbdExport;

/// What the plan and the reports need of one endpoint, whatever its kind.
struct EndpointFacts {
  std::string name;  ///< the path, or the URI with its secrets redacted: for messages
  std::uint64_t size_bytes = 0;
  std::uint32_t alignment = 1;             ///< bytes every direct request is aligned to
  std::uint32_t logical_block_size = 512;  ///< bytes (an NBD export: its minimum block, at least 512)
  Medium medium;                           ///< overlap is judged on it (an NBD export is its own)
  bool growable = false;                   ///< a regular file: a destination may extend it
  bool written = false;                    ///< a destination is on it (opened for writing)
  unsigned nbd_connections = 0;            ///< an NBD export: the connections opened (multi-conn)
};

/// The devices and exports of one copy. Endpoint k (the engine's IoRegion::endpoint)
/// is the k-th distinct one in command-line order. Not copyable; the devices stay
/// open until it is destroyed (the backend borrows their descriptors).
class CopyEndpoints {
 public:
  /// Opens the endpoints of `args` (region i has role `roles[i]`): local ones with
  /// Device::open (read for the source and, with --verify, the destinations; write
  /// for destinations; O_EXCL unless --force; read-only for a dry run), NBD URIs
  /// with NbdExport::open (in kcopy-nbd: see nbd_program.hpp). Regions on one device (the same
  /// DeviceIdentity) or one URI (the same string) share an endpoint. Files it
  /// creates are appended to `created` as they are, so the caller can remove
  /// them if a later one fails. Throws kcopy::Error (with errno) at the first
  /// endpoint that cannot be opened; an NBD URI in a build without libnbd is one.
  CopyEndpoints(std::span<const RegionArg> args, std::span<const std::string> roles, const Options& options,
                std::vector<std::string>& created);
  ~CopyEndpoints();
  CopyEndpoints(const CopyEndpoints&) = delete;
  CopyEndpoints& operator=(const CopyEndpoints&) = delete;

  std::size_t size() const { return facts_.size(); }
  /// The endpoint of region i.
  std::size_t endpoint_of(std::size_t region) const { return endpoint_of_[region]; }
  const EndpointFacts& facts(std::size_t k) const { return facts_[k]; }
  /// Whether some endpoint is a local device or file / an NBD export.
  bool has_local() const { return !devices_.empty(); }
  bool has_nbd() const { return devices_.size() < facts_.size(); }
  /// The local device of endpoint k, or null for an NBD export.
  Device* device(std::size_t k) { return local_[k] ? &devices_[*local_[k]] : nullptr; }
  const Device* device(std::size_t k) const { return local_[k] ? &devices_[*local_[k]] : nullptr; }
  /// Where endpoint k lies: the index of the first endpoint on its medium, and
  /// its offset there (bytes), as IoBackend::placement says.
  Placement placement(std::size_t k) const;

  /// The backend over every endpoint, sized for `max_requests` in flight: the
  /// local engine chosen by make_backend (`engine`, `copy_bytes`, `io_size`) for
  /// the devices, an NbdBackend for the exports, and a MultiplexBackend over both
  /// when there are both. Moves the NBD exports into it: call once.
  ChosenBackend make_backend(IoEngine engine, std::size_t max_requests, std::uint64_t copy_bytes,
                             std::uint64_t io_size);

 private:
  std::vector<Device> devices_;
  std::vector<NbdExport> exports_;
  std::vector<std::optional<std::size_t>> local_;  // per endpoint: index into devices_, or none (NBD)
  std::vector<std::size_t> nbd_;                   // per endpoint: index into exports_ (NBD ones)
  std::vector<EndpointFacts> facts_;
  std::vector<std::size_t> endpoint_of_;
  double nbd_timeout_seconds_;  // --nbd-timeout: NbdBackend's stall timeout
};

}  // namespace kcopy
