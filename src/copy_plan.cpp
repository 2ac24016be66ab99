#include "kcopy/copy_plan.hpp"

#include "kcopy/error.hpp"
#include "kcopy/quote.hpp"
#include "kcopy/units.hpp"

namespace kcopy {
namespace {

std::string describe(const EndpointInfo& ep, const IoRegion& r) {
  return ep.role + " " + quote(ep.path) + " (sectors " + std::to_string(r.sector) + "+" + std::to_string(r.count) + ")";
}

// Where a region's bytes begin on its endpoint's medium.
std::uint64_t medium_byte(const EndpointInfo& ep, const IoRegion& r) {
  return ep.medium.offset + sectors_to_bytes(r.sector);
}

bool overlaps(const EndpointInfo& ea, const IoRegion& a, const EndpointInfo& eb, const IoRegion& b) {
  if (ea.medium.id != eb.medium.id) return false;
  const std::uint64_t at = medium_byte(ea, a), bt = medium_byte(eb, b);
  return at < bt + sectors_to_bytes(b.count) && bt < at + sectors_to_bytes(a.count);
}

}  // namespace

CopyPlan plan_copy(std::span<const RegionArg> args, std::span<const EndpointInfo> endpoints) {
  if (args.size() < 2) throw Error("need a SOURCE and at least one DEST (see --help)");
  if (args.size() - 1 > max_destinations)
    throw Error("at most " + std::to_string(max_destinations) + " destinations, got " +
                std::to_string(args.size() - 1));

  const EndpointInfo& src = endpoints[0];
  const std::uint64_t src_sectors = bytes_to_sectors(src.size_bytes);
  CopyPlan plan;
  plan.from.endpoint = 0;
  plan.from.sector = args[0].sector.value_or(0);
  if (plan.from.sector >= src_sectors && !args[0].count)
    throw Error(src.role + " " + quote(src.path) + ": nothing to copy: it has " + std::to_string(src_sectors) +
                " sectors and the copy starts at sector " + std::to_string(plan.from.sector));
  plan.from.count = args[0].count.value_or(src_sectors - plan.from.sector);
  if (plan.from.sector > src_sectors || plan.from.count > src_sectors - plan.from.sector)
    throw Error(describe(src, plan.from) + " ends past the end of the device (" + std::to_string(src_sectors) +
                " sectors)");

  for (std::size_t i = 1; i < args.size(); ++i) {
    const EndpointInfo& ep = endpoints[i];
    IoRegion d{static_cast<unsigned>(i), args[i].sector.value_or(0), args[i].count.value_or(plan.from.count)};
    if (d.count != plan.from.count)
      throw Error(describe(ep, d) + ": COUNT " + std::to_string(d.count) + " differs from the source's " +
                  std::to_string(plan.from.count));
    if (d.sector > UINT64_MAX / sector_size - d.count)
      throw Error(describe(ep, d) + ": ends past the largest possible byte offset");
    const std::uint64_t ep_sectors = bytes_to_sectors(ep.size_bytes);
    if (!ep.growable && (d.sector > ep_sectors || d.count > ep_sectors - d.sector))
      throw Error(describe(ep, d) + " ends past the end of the device (" + std::to_string(ep_sectors) + " sectors)");
    if (ep.medium.id == src.medium.id && medium_byte(ep, d) == medium_byte(src, plan.from))
      throw Error(describe(ep, d) + " is the source range itself: nothing to copy");
    for (std::size_t j = 0; j < plan.dests.size(); ++j)
      if (overlaps(endpoints[j + 1], plan.dests[j], ep, d))
        throw Error(describe(ep, d) + " overlaps " + describe(endpoints[j + 1], plan.dests[j]));
    plan.dests.push_back(d);
  }

  // A destination overlapping the source is copied like memmove: in descending
  // order when it lies above the source, ascending when below. Two that need
  // opposite orders cannot both be served.
  const EndpointInfo* above = nullptr;
  const EndpointInfo* below = nullptr;
  for (std::size_t i = 0; i < plan.dests.size(); ++i) {
    const IoRegion& d = plan.dests[i];
    if (overlaps(endpoints[i + 1], d, src, plan.from))
      (medium_byte(endpoints[i + 1], d) > medium_byte(src, plan.from) ? above : below) = &endpoints[i + 1];
  }
  if (above && below)
    throw Error(above->role + " and " + below->role +
                " overlap the source from opposite sides: no copy order keeps the source intact; copy in two runs");
  return plan;
}

}  // namespace kcopy
