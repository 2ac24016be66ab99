#pragma once
// The failed sector ranges of one endpoint, as a job collects them.

#include <cerrno>
#include <cstddef>
#include <cstdint>
#include <limits>
#include <vector>

#include "kcopy/api.hpp"

namespace kcopy {

/// The error a range records for a lost connection: the errnos that say so
/// (ECONNRESET, ENOTCONN, ESHUTDOWN, EPIPE, ECONNABORTED, as the requests in
/// flight to a dead NBD server fail) are one cause.
inline constexpr int connection_lost = ENOTCONN;

/// The cause `error` (positive errno) is recorded as: connection_lost for every
/// errno of a lost connection, else `error` itself.
constexpr int error_cause(int error) {
  switch (error) {
    case ECONNRESET:
    case ENOTCONN:
    case ESHUTDOWN:
    case EPIPE:
    case ECONNABORTED:
      return connection_lost;
    default:
      return error;
  }
}

/// A range of sectors that failed, on one endpoint.
struct ErrorRange {
  std::uint64_t sector = 0;  ///< first failed sector, on that endpoint
  std::uint64_t count = 0;   ///< sectors
  int error = 0;             ///< positive errno (its error_cause)
  bool operator==(const ErrorRange&) const = default;
};

/// The failed ranges of one endpoint, always sorted by sector and merged: a bad
/// area recorded in pieces, in any order (concurrent scans of neighbouring
/// sub-jobs interleave), is one range as soon as its pieces touch.
///
/// Room for `capacity` disjoint ranges is allocated up front; add() never
/// allocates. When the list is full, it keeps the lowest ranges exactly and only
/// counts the sectors of the rest: ranges() is then every failed range below
/// overflow_from(), and overflow_sectors() the failed sectors from there on.
class ErrorRanges {
 public:
  ErrorRanges() = default;
  explicit ErrorRanges(std::size_t capacity) { ranges_.reserve(capacity); }

  /// Records `count` sectors from `sector` that failed with `error` (positive
  /// errno, recorded as its error_cause), merging it with the ranges it touches
  /// that have the same cause.
  /// A sector is recorded at most once.
  KCOPY_API void add(std::uint64_t sector, std::uint64_t count, int error);

  /// Every failed range below overflow_from(), sorted, merged.
  const std::vector<ErrorRange>& ranges() const { return ranges_; }
  bool empty() const { return ranges_.empty() && overflow_sectors_ == 0; }
  /// The first sector of the ranges that found no room (no_overflow when none did).
  std::uint64_t overflow_from() const { return overflow_from_; }
  /// How many failed sectors lie at or past overflow_from() (not in ranges()).
  std::uint64_t overflow_sectors() const { return overflow_sectors_; }
  static constexpr std::uint64_t no_overflow = std::numeric_limits<std::uint64_t>::max();

 private:
  void overflow(std::uint64_t sector, std::uint64_t count);

  std::vector<ErrorRange> ranges_;
  std::uint64_t overflow_from_ = no_overflow;
  std::uint64_t overflow_sectors_ = 0;
};

}  // namespace kcopy
