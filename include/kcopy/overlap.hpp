#pragma once
// The overlap rules of a copy, in one place: which destinations overlap the
// source (memmove order) and which layouts no order can serve. Pure.

#include <cstdint>
#include <optional>
#include <span>

namespace kcopy {

/// A region where its bytes are: on medium `medium`, `length` bytes from `begin`.
struct MediumSpan {
  unsigned medium = 0;
  std::uint64_t begin = 0;  ///< bytes
  std::uint64_t length = 0;
};

/// What the rules say of one copy (destination indexes are 0-based).
struct OverlapOrder {
  bool descending = false;  ///< a destination overlaps the source from above: copy from the end
  unsigned gated = 0;       ///< bit d: destination d overlaps the source (its writes wait for the reads)
  // Refusals, the first found of each kind:
  std::optional<unsigned> source_itself;                       ///< a destination is the source range
  std::optional<std::pair<unsigned, unsigned>> dests_overlap;  ///< two destinations overlap each other
  std::optional<std::pair<unsigned, unsigned>> opposite;       ///< one above and one below the source
  bool refused() const { return source_itself || dests_overlap || opposite; }
};

/// The memmove order of a copy from `source` to `dests`: a destination that
/// overlaps the source from above is copied in descending order, one from
/// below in ascending order; a destination equal to the source range, two
/// destinations that overlap, and two that need opposite orders are refused.
OverlapOrder overlap_order(const MediumSpan& source, std::span<const MediumSpan> dests);

}  // namespace kcopy
