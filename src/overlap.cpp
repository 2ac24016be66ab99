#include "kcopy/overlap.hpp"

namespace kcopy {
namespace {

bool overlaps(const MediumSpan& a, const MediumSpan& b) {
  return a.medium == b.medium && a.length > 0 && b.length > 0 && a.begin < b.begin + b.length &&
         b.begin < a.begin + a.length;
}

}  // namespace

OverlapOrder overlap_order(const MediumSpan& source, std::span<const MediumSpan> dests) {
  OverlapOrder order;
  std::optional<unsigned> above, below;
  for (unsigned d = 0; d < dests.size(); ++d) {
    for (unsigned e = 0; e < d && !order.dests_overlap; ++e)
      if (overlaps(dests[e], dests[d])) order.dests_overlap = {e, d};
    if (!overlaps(dests[d], source)) continue;
    if (dests[d].begin == source.begin) {
      if (!order.source_itself) order.source_itself = d;
      continue;
    }
    order.gated |= 1u << d;
    std::optional<unsigned>& side = dests[d].begin > source.begin ? above : below;
    if (!side) side = d;
  }
  order.descending = above.has_value();
  if (above && below) order.opposite = {*above, *below};
  return order;
}

}  // namespace kcopy
