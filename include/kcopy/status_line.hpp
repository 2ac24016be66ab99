#pragma once
// The SIGUSR1 status line (dd's habit), built without allocation, locks or
// locale, so that a signal handler may build and write it.

#include <cstddef>
#include <cstdint>
#include <string_view>

namespace kcopy {

/// A line of at most 160 bytes in a fixed buffer; what does not fit is cut.
/// Every member is async-signal-safe.
class SignalSafeLine {
 public:
  SignalSafeLine& text(const char* s);
  /// `n` in decimal.
  SignalSafeLine& number(std::uint64_t n);
  /// `tenths` / 10 with one decimal: 1234 -> "123.4".
  SignalSafeLine& tenths(std::uint64_t tenths);
  std::string_view view() const { return {buf_, len_}; }
  /// write(2) to standard error; a failed write (a closed or dead stderr) is ignored.
  void write_to_stderr() const;

 private:
  char buf_[160];
  std::size_t len_ = 0;
};

/// What the status line reports: sectors copied to every live destination
/// (KcopydClient::sectors_done), the job's size, and the time since the copy started.
struct StatusCounters {
  std::uint64_t done_sectors = 0;
  std::uint64_t total_sectors = 0;
  std::uint64_t elapsed_ms = 0;
};

/// "kcopy: N of M sectors copied (P%), T s, R MiB/s\n": P floored, T and R
/// (the average rate since the start) with one decimal. Async-signal-safe.
SignalSafeLine status_line(const StatusCounters& counters);

}  // namespace kcopy
