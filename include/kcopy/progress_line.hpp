#pragma once
// What the progress line says, and how it fits a terminal: pure functions.

#include <cstddef>
#include <cstdint>
#include <deque>
#include <optional>
#include <string>
#include <utility>

namespace kcopy {

/// One frame of the progress line.
struct ProgressFrame {
  std::uint64_t done_bytes = 0;   ///< copied to every destination still written
  std::uint64_t total_bytes = 0;  ///< the copy's size
  double elapsed_seconds = 0;
  /// Bytes per second: over the last few seconds (see RateWindow), or, in the
  /// final frame, over the whole copy. Unset: not known yet.
  std::optional<double> rate;
  unsigned destinations = 1;  ///< 1 to 6
  unsigned failed = 0;        ///< bit d: destination d+1 failed (a write or flush error)
  bool final = false;         ///< the last frame: no ETA, and `rate` is the average
};

/// A byte count in binary units with one decimal: "0 B", "512 B", "1.5 KiB",
/// "372.9 MiB", "2.0 TiB" (floored, so that a copy not finished never shows its total).
std::string format_bytes(std::uint64_t bytes);

/// A duration as a clock: "0:07", "12:34", "1:02:03" (whole seconds, floored).
std::string format_duration(double seconds);

/// The progress line, without a newline, at most `width` characters (0: no limit):
///
///     kcopy: 1.5 GiB of 2.0 GiB (75.0%), 372.9 MiB/s, 0:05 elapsed, ETA 0:02, dest 1:ok 2:FAILED 3:ok
///
/// The percentage is floored to a tenth (100.0% only when all is done). The
/// ETA is the bytes left at the current rate ("ETA --:--" while the rate is 0
/// or unknown); the final frame has none. Each destination is "N:ok" while it
/// is written (in the final frame: it holds the copy, as far as the copy got)
/// and "N:FAILED" once it had an error. When the line is wider than `width`,
/// parts are shortened or left out, in this order, until it fits: the
/// destination list to its failed destinations only, the elapsed time, the
/// "kcopy: " prefix, the total ("1.5 GiB (75.0%)"), the bytes done (the
/// percentage stays), the ETA, the rate, the failed destinations; what then
/// still does not fit is cut.
/// ASCII only: one character is one column.
std::string format_progress_line(const ProgressFrame& frame, std::size_t width);

/// The rate of a growing byte counter over the last `window_seconds`, from
/// samples taken now and then (the progress thread takes one per frame).
class RateWindow {
 public:
  explicit RateWindow(double window_seconds = 3.0) : window_(window_seconds) {}
  /// Records that the counter was `bytes` at `seconds` (never decreasing).
  void add(double seconds, std::uint64_t bytes);
  /// Bytes per second between the oldest sample still in the window (the
  /// newest one at least `window_seconds` old, so that the window is always
  /// full once the copy has run that long) and the newest sample; unset with
  /// fewer than two samples at different times.
  std::optional<double> rate() const;

 private:
  double window_;
  std::deque<std::pair<double, std::uint64_t>> samples_;  // oldest first
};

}  // namespace kcopy
