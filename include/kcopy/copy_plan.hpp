#pragma once
// Turns the regions the user typed into checked sector ranges on opened devices:
// every default filled in, every rule of the contract checked, before any write.

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "kcopy/device.hpp"
#include "kcopy/kcopyd.hpp"
#include "kcopy/region.hpp"

namespace kcopy {

/// What the plan needs to know of one opened endpoint.
struct EndpointInfo {
  std::string role;  ///< "source", "destination 2": for messages
  std::string path;
  std::uint64_t size_bytes = 0;
  bool growable = false;  ///< a regular file: a destination may extend it
  Medium medium;          ///< where its bytes are stored: overlap is judged there
};

/// The checked copy: endpoint 0 is the source, endpoint i the i-th destination.
struct CopyPlan {
  IoRegion from;
  std::vector<IoRegion> dests;
};

/// Fills in the defaults (source: sector 0, up to the end; destination: sector 0,
/// the source's count) and checks, in sectors: ranges inside the source and every
/// block-device destination, destination counts equal to the source's, no two
/// destinations overlapping, no destination equal to the source range, no two
/// destinations overlapping the source from opposite sides
/// (destinations overlapping the source from one side are copied like memmove).
/// Overlap is judged on each endpoint's medium, so a loop device and its backing
/// file, or a partition and its whole disk, overlap where their bytes do.
/// A source whose size is not whole sectors ends at its
/// last whole sector.
///
/// `args[i]` goes with `endpoints[i]`; there are 2 to 7 of them (the command
/// line checks the count). Pure: throws kcopy::Error, naming the region and what
/// is wrong, and touches nothing. The overlap rules are overlap_order's.
CopyPlan plan_copy(std::span<const RegionArg> args, std::span<const EndpointInfo> endpoints);

/// The plan of a --zero run (dm_kcopyd_zero): `args[i]` are the destinations,
/// with `endpoints[i]`. The first destination's COUNT defaults to the end of
/// it, the others' to the first's; every COUNT must be equal; block devices
/// must hold their range; no two destinations may overlap. The plan's `from`
/// carries only the count (sector 0). Pure: throws kcopy::Error as plan_copy.
CopyPlan plan_zero(std::span<const RegionArg> args, std::span<const EndpointInfo> endpoints);

}  // namespace kcopy
