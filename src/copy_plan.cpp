#include "kcopy/copy_plan.hpp"

#include <cassert>

#include "kcopy/error.hpp"
#include "kcopy/overlap.hpp"
#include "kcopy/quote.hpp"
#include "kcopy/units.hpp"

namespace kcopy {
namespace {

std::string describe(const EndpointInfo& ep, const IoRegion& r) {
  return ep.role + " " + quote(ep.path) + " (sectors " + std::to_string(r.sector) + "+" + std::to_string(r.count) + ")";
}

// Where a region's bytes are: medium index (endpoints with one medium share the
// index of the first of them), bytes.
MediumSpan medium_span(std::span<const EndpointInfo> endpoints, std::size_t i, const IoRegion& r) {
  unsigned medium = 0;
  while (!(endpoints[medium].medium.id == endpoints[i].medium.id)) ++medium;
  return {medium, endpoints[i].medium.offset + sectors_to_bytes(r.sector), sectors_to_bytes(r.count)};
}

// Destination `i` with its defaults filled in, checked: COUNT equal to the
// copy's (`whose` names where that count comes from), within 64 bits, and inside
// a block device.
IoRegion dest_region(const EndpointInfo& ep, const RegionArg& arg, std::size_t i, std::uint64_t count,
                     const char* whose) {
  const IoRegion d{static_cast<unsigned>(i), arg.sector.value_or(0), arg.count.value_or(count)};
  if (d.count != count)
    throw Error(describe(ep, d) + ": COUNT " + std::to_string(d.count) + " differs from " + whose + " " +
                std::to_string(count));
  if (!ends_within_bytes(d.sector, d.count))
    throw Error(describe(ep, d) + ": ends past the largest possible byte offset");
  const std::uint64_t ep_sectors = bytes_to_sectors(ep.size_bytes);
  if (!ep.growable && (d.sector > ep_sectors || d.count > ep_sectors - d.sector))
    throw Error(describe(ep, d) + " ends past the end of the device (" + std::to_string(ep_sectors) + " sectors)");
  return d;
}

}  // namespace

CopyPlan plan_copy(std::span<const RegionArg> args, std::span<const EndpointInfo> endpoints) {
  assert(args.size() >= 2 && args.size() - 1 <= max_destinations && endpoints.size() == args.size());
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

  for (std::size_t i = 1; i < args.size(); ++i)
    plan.dests.push_back(dest_region(endpoints[i], args[i], i, plan.from.count, "the source's"));

  // A destination overlapping the source is copied like memmove: in descending
  // order when it lies above the source, ascending when below.
  std::vector<MediumSpan> dests;
  for (std::size_t d = 0; d < plan.dests.size(); ++d) dests.push_back(medium_span(endpoints, d + 1, plan.dests[d]));
  const OverlapOrder order = overlap_order(medium_span(endpoints, 0, plan.from), dests);
  const auto name = [&](unsigned d) { return describe(endpoints[d + 1], plan.dests[d]); };
  if (order.source_itself) throw Error(name(*order.source_itself) + " is the source range itself: nothing to copy");
  if (const auto& o = order.dests_overlap) throw Error(name(o->second) + " overlaps " + name(o->first));
  if (const auto& o = order.opposite)
    throw Error(endpoints[o->first + 1].role + " and " + endpoints[o->second + 1].role +
                " overlap the source from opposite sides: no copy order keeps the source intact; copy in two runs");
  return plan;
}

CopyPlan plan_zero(std::span<const RegionArg> args, std::span<const EndpointInfo> endpoints) {
  assert(!args.empty() && args.size() <= max_destinations && endpoints.size() == args.size());
  const EndpointInfo& first = endpoints[0];
  const std::uint64_t first_sectors = bytes_to_sectors(first.size_bytes);
  const std::uint64_t first_sector = args[0].sector.value_or(0);
  if (!args[0].count && first_sector >= first_sectors)
    throw Error(first.role + " " + quote(first.path) + ": nothing to zero: it has " + std::to_string(first_sectors) +
                " sectors and the range starts at sector " + std::to_string(first_sector) +
                (first.growable ? " (give a COUNT for a new or short file)" : ""));
  CopyPlan plan;
  const std::uint64_t count = args[0].count.value_or(first_sectors - first_sector);
  for (std::size_t i = 0; i < args.size(); ++i)
    plan.dests.push_back(dest_region(endpoints[i], args[i], i, count, "the first destination's"));
  std::vector<MediumSpan> dests;
  for (std::size_t d = 0; d < plan.dests.size(); ++d) dests.push_back(medium_span(endpoints, d, plan.dests[d]));
  if (const auto& o = overlap_order({}, dests).dests_overlap)
    throw Error(describe(endpoints[o->second], plan.dests[o->second]) + " overlaps " +
                describe(endpoints[o->first], plan.dests[o->first]));
  plan.from = {plan.dests[0].endpoint, 0, count};
  return plan;
}

}  // namespace kcopy
